//! Collection leases (docs/design.md, scale-out): several processes on one Postgres share collections by claiming
//! them with `FOR UPDATE SKIP LOCKED`, renewing the lease while they work, and fencing every
//! write with the lease epoch (`Fence`). A dead process's collections are claimed by
//! another once the lease expires. SQLite serves one process: a process lock says so.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{with_pool, Store, StoreError};
use crate::ids::{CollectionId, WeekId};
use crate::status::{CollectionStatus, WeekStatus};

impl Store {
    /// Unfinished (pending or running) collections whose lease owner matches the SQL `LIKE`
    /// pattern (the multi-process benchmark counts a process's collections by its pid).
    pub async fn open_collections_leased_like(&self, pattern: &str) -> Result<i64, StoreError> {
        let sql = "SELECT COUNT(*) FROM report_data_collections \
                   WHERE lease_owner LIKE $1 AND status IN ($2, $3)";
        Ok(with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(pattern)
            .bind(CollectionStatus::Pending.as_str())
            .bind(CollectionStatus::Running.as_str())
            .fetch_one(pool)
            .await)?)
    }

    /// Claims up to `limit` runnable collections that no live process holds; returns each with the
    /// new lease epoch (the fencing token).
    pub async fn claim_collections(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<(CollectionId, i64)>, StoreError> {
        let claimed = match self {
            Store::Postgres(pool) => {
                let sql = "WITH c AS ( \
                      SELECT id FROM report_data_collections \
                      WHERE status IN ($4, $5) \
                        AND (lease_owner IS NULL OR lease_expires_at < now()) \
                      ORDER BY created_at, id LIMIT $3 \
                      FOR UPDATE SKIP LOCKED) \
                    UPDATE report_data_collections t SET lease_owner = $1, \
                      lease_expires_at = now() + make_interval(secs => $2), \
                      lease_epoch = t.lease_epoch + 1 \
                    FROM c WHERE t.id = c.id RETURNING t.id, t.lease_epoch";
                sqlx::query_as::<_, (CollectionId, i64)>(sql)
                    .bind(owner)
                    .bind(lease.as_secs_f64())
                    .bind(limit)
                    .bind(CollectionStatus::Pending.as_str())
                    .bind(CollectionStatus::Running.as_str())
                    .fetch_all(pool)
                    .await?
            }
            // One process per SQLite file (see `lock_process`): every unowned runnable collection is ours.
            Store::Sqlite(pool) => {
                let sql = "UPDATE report_data_collections SET lease_owner = $1, \
                      lease_expires_at = $2, lease_epoch = lease_epoch + 1 \
                    WHERE id IN (SELECT id FROM report_data_collections \
                      WHERE status IN ($4, $5) \
                        AND (lease_owner IS NULL OR lease_owner <> $1) \
                      ORDER BY created_at, id LIMIT $3) \
                    RETURNING id, lease_epoch";
                sqlx::query_as::<_, (CollectionId, i64)>(sql)
                    .bind(owner)
                    .bind(expiry(lease))
                    .bind(limit)
                    .bind(CollectionStatus::Pending.as_str())
                    .bind(CollectionStatus::Running.as_str())
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(claimed)
    }

    /// Claims up to `limit` runnable collections that no live process holds and that have weeks
    /// in flight (an execution on AMC, or a result being downloaded). The supervisor claims these
    /// whatever its `max_collections` cap: their executions hold the instance's AMC slots (the
    /// database counts them for every process) and their result links expire, so leaving them
    /// until a process has room could starve every process of slots for good.
    pub async fn claim_abandoned_in_flight(
        &self,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<(CollectionId, i64)>, StoreError> {
        // `$6`..`$8`: the week statuses `WeekStatus::is_in_flight` names.
        let claimed = match self {
            Store::Postgres(pool) => {
                let sql = "WITH a AS ( \
                      SELECT c.id FROM report_data_collections c \
                      WHERE c.status IN ($4, $5) \
                        AND (c.lease_owner IS NULL OR c.lease_expires_at < now()) \
                        AND EXISTS (SELECT 1 FROM report_data_weeks w \
                          WHERE w.collection_id = c.id AND w.status IN ($6, $7, $8)) \
                      ORDER BY c.created_at, c.id LIMIT $3 \
                      FOR UPDATE OF c SKIP LOCKED) \
                    UPDATE report_data_collections t SET lease_owner = $1, \
                      lease_expires_at = now() + make_interval(secs => $2), \
                      lease_epoch = t.lease_epoch + 1 \
                    FROM a WHERE t.id = a.id RETURNING t.id, t.lease_epoch";
                sqlx::query_as::<_, (CollectionId, i64)>(sql)
                    .bind(owner)
                    .bind(lease.as_secs_f64())
                    .bind(limit)
                    .bind(CollectionStatus::Pending.as_str())
                    .bind(CollectionStatus::Running.as_str())
                    .bind(WeekStatus::Submitting.as_str())
                    .bind(WeekStatus::Running.as_str())
                    .bind(WeekStatus::Downloading.as_str())
                    .fetch_all(pool)
                    .await?
            }
            // One process per SQLite file: what another owner left is abandoned.
            Store::Sqlite(pool) => {
                let sql = "UPDATE report_data_collections SET lease_owner = $1, \
                      lease_expires_at = $2, lease_epoch = lease_epoch + 1 \
                    WHERE id IN (SELECT c.id FROM report_data_collections c \
                      WHERE c.status IN ($4, $5) \
                        AND (c.lease_owner IS NULL OR c.lease_owner <> $1) \
                        AND EXISTS (SELECT 1 FROM report_data_weeks w \
                          WHERE w.collection_id = c.id AND w.status IN ($6, $7, $8)) \
                      ORDER BY c.created_at, c.id LIMIT $3) \
                    RETURNING id, lease_epoch";
                sqlx::query_as::<_, (CollectionId, i64)>(sql)
                    .bind(owner)
                    .bind(expiry(lease))
                    .bind(limit)
                    .bind(CollectionStatus::Pending.as_str())
                    .bind(CollectionStatus::Running.as_str())
                    .bind(WeekStatus::Submitting.as_str())
                    .bind(WeekStatus::Running.as_str())
                    .bind(WeekStatus::Downloading.as_str())
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(claimed)
    }

    /// Extends every lease the owner holds; returns the collections it still holds.
    pub async fn renew_leases(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<CollectionId>, StoreError> {
        let held = match self {
            Store::Postgres(pool) => {
                let sql = "UPDATE report_data_collections \
                    SET lease_expires_at = now() + make_interval(secs => $2) \
                    WHERE lease_owner = $1 RETURNING id";
                sqlx::query_scalar(sql)
                    .bind(owner)
                    .bind(lease.as_secs_f64())
                    .fetch_all(pool)
                    .await?
            }
            Store::Sqlite(pool) => {
                let sql = "UPDATE report_data_collections SET lease_expires_at = $2 \
                    WHERE lease_owner = $1 RETURNING id";
                sqlx::query_scalar(sql)
                    .bind(owner)
                    .bind(expiry(lease))
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(held)
    }

    /// Gives leases back (a finished collection, or all of them at shutdown) so another process
    /// can take the work at once instead of after the lease expires.
    pub async fn release_leases(
        &self,
        owner: &str,
        ids: Option<&[CollectionId]>,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE report_data_collections SET lease_owner = NULL, lease_expires_at = NULL \
                   WHERE lease_owner = $1 AND ($2 IS NULL OR id = $2)";
        match ids {
            None => {
                with_pool!(self, |pool| sqlx::query(sql)
                    .bind(owner)
                    .bind(None::<CollectionId>)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected()))?;
            }
            Some(ids) => {
                for id in ids {
                    with_pool!(self, |pool| sqlx::query(sql)
                        .bind(owner)
                        .bind(Some(*id))
                        .execute(pool)
                        .await
                        .map(|done| done.rows_affected()))?;
                }
            }
        }
        Ok(())
    }

    /// Weeks possibly in flight on AMC in collections the owner holds, with their AMC instance id.
    pub async fn in_flight_weeks_of(
        &self,
        owner: &str,
    ) -> Result<Vec<(WeekId, CollectionId, String)>, StoreError> {
        let sql = "SELECT w.id, w.collection_id, i.instance_id FROM report_data_weeks w \
                   JOIN report_data_collections c ON c.id = w.collection_id \
                   JOIN amc_instances i ON i.id = c.instance_id \
                   WHERE w.status IN ($2, $3) AND c.lease_owner = $1";
        Ok(with_pool!(self, |pool| sqlx::query_as::<
            _,
            (WeekId, CollectionId, String),
        >(sql)
        .bind(owner)
        .bind(WeekStatus::Submitting.as_str())
        .bind(WeekStatus::Running.as_str())
        .fetch_all(pool)
        .await)?)
    }

    /// SQLite only: takes the single-process lock, refusing while another live process holds it.
    /// Postgres needs no such lock.
    ///
    /// The take is one conditional upsert checked by rows affected, so two processes starting at
    /// the same moment cannot both win (SQLite runs one writer at a time; the second sees the
    /// first's row). A holder on this host whose process is gone is replaced by compare-and-swap.
    pub async fn lock_process(&self, owner: &str, lease: Duration) -> Result<(), StoreError> {
        let Store::Sqlite(pool) = self else {
            return Ok(());
        };
        // A few rounds only because a dead holder can be replaced by someone else meanwhile.
        for _ in 0..3 {
            let taken = sqlx::query(
                "INSERT INTO process_lock (id, owner, expires_at) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, \
                   expires_at = excluded.expires_at \
                 WHERE process_lock.owner = excluded.owner \
                    OR julianday(process_lock.expires_at) < julianday($3)",
            )
            .bind(owner)
            .bind(expiry(lease))
            .bind(Utc::now())
            .execute(pool)
            .await?
            .rows_affected();
            if taken == 1 {
                return Ok(());
            }
            let holder: Option<String> =
                sqlx::query_scalar("SELECT owner FROM process_lock WHERE id = 1")
                    .fetch_optional(pool)
                    .await?;
            let Some(holder) = holder else {
                continue; // released meanwhile: try again
            };
            if holder_is_alive(&holder) {
                return Err(another_process(&holder));
            }
            let replaced = sqlx::query(
                "UPDATE process_lock SET owner = $1, expires_at = $2 WHERE id = 1 AND owner = $3",
            )
            .bind(owner)
            .bind(expiry(lease))
            .bind(&holder)
            .execute(pool)
            .await?
            .rows_affected();
            if replaced == 1 {
                return Ok(());
            }
        }
        let holder: Option<String> =
            sqlx::query_scalar("SELECT owner FROM process_lock WHERE id = 1")
                .fetch_optional(pool)
                .await?;
        Err(another_process(holder.as_deref().unwrap_or("unknown")))
    }

    /// SQLite only: extends the single-process lock this process holds. Only our own row is
    /// extended: a lock that another process took, or a row that changed or vanished, is
    /// `ProcessLockLost` and this process must stop (it is no longer the only one at work).
    pub async fn renew_process_lock(&self, owner: &str, lease: Duration) -> Result<(), StoreError> {
        let Store::Sqlite(pool) = self else {
            return Ok(());
        };
        let renewed =
            sqlx::query("UPDATE process_lock SET expires_at = $2 WHERE id = 1 AND owner = $1")
                .bind(owner)
                .bind(expiry(lease))
                .execute(pool)
                .await?
                .rows_affected();
        if renewed == 1 {
            return Ok(());
        }
        let holder: Option<String> =
            sqlx::query_scalar("SELECT owner FROM process_lock WHERE id = 1")
                .fetch_optional(pool)
                .await?;
        Err(StoreError::ProcessLockLost(match holder {
            Some(holder) => format!(
                "lost the SQLite process lock to another amc-collector process ({holder}); \
                 stopping (SQLite serves one process at a time)"
            ),
            None => "lost the SQLite process lock (its row was removed); stopping \
                     (SQLite serves one process at a time)"
                .to_string(),
        }))
    }

    /// SQLite only: frees the single-process lock at shutdown.
    pub async fn unlock_process(&self, owner: &str) -> Result<(), StoreError> {
        if let Store::Sqlite(pool) = self {
            sqlx::query("DELETE FROM process_lock WHERE owner = $1")
                .bind(owner)
                .execute(pool)
                .await?;
        }
        Ok(())
    }
}

fn another_process(holder: &str) -> StoreError {
    StoreError::Conflict(format!(
        "another amc-collector process ({holder}) is running on this SQLite database; \
         SQLite serves one process at a time (use Postgres to run several)"
    ))
}

/// Owners are `host:pid:suffix`. A holder on this host whose process is gone (killed with -9, so it
/// could not unlock) does not block a restart; a holder on another host is trusted until expiry.
fn holder_is_alive(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
        return true;
    };
    if host != host_name() {
        return true;
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into())
}

/// A name for this process in leases: host, pid and a random suffix (pids repeat across hosts
/// and restarts).
pub fn process_owner() -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{}:{}:{}", host_name(), std::process::id(), &suffix[..8])
}

fn expiry(lease: Duration) -> DateTime<Utc> {
    let now = Utc::now();
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .unwrap_or(now + chrono::Duration::seconds(30))
}
