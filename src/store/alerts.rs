//! The alert outbox (`alert_outbox`): alerts are written here, in the same transaction
//! as the state change they report where there is one (a week failed for good, a collection
//! completed, failed or cancelled), so a crash can neither lose nor invent one; the daemon's
//! alerter (`crate::alerts`) claims, delivers and marks them, at least once.
//!
//! Writers inside a transaction use `OutboxTx`, implemented for both backends' connections, so a
//! transition's code adds one call on its open transaction. A collection's alert is written once
//! per arrival at its end status: `report_data_collections.alerted_status` remembers the last
//! status reported, and is cleared when the collection is reopened (`retry-failed`).
//!
//! Alerts never carry a secret: only ids, statuses and the reasons the state machine stores.

use chrono::{DateTime, Utc};

use super::{with_pool, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId, WeekId};

/// The events an alert reports (the JSON `"event"` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertEvent {
    WeekFailed,
    CollectionCompleted,
    CollectionFailed,
    CollectionCancelled,
    CredentialsFailing,
    CredentialsRecovered,
    QuotaWaiting,
    /// A collection AMC will never run was held (`store::held`).
    CollectionHeld,
}

impl AlertEvent {
    pub const ALL: [AlertEvent; 8] = [
        AlertEvent::WeekFailed,
        AlertEvent::CollectionCompleted,
        AlertEvent::CollectionFailed,
        AlertEvent::CollectionCancelled,
        AlertEvent::CredentialsFailing,
        AlertEvent::CredentialsRecovered,
        AlertEvent::QuotaWaiting,
        AlertEvent::CollectionHeld,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::WeekFailed => "week.failed",
            AlertEvent::CollectionCompleted => "collection.completed",
            AlertEvent::CollectionFailed => "collection.failed",
            AlertEvent::CollectionCancelled => "collection.cancelled",
            AlertEvent::CredentialsFailing => "credentials.failing",
            AlertEvent::CredentialsRecovered => "credentials.recovered",
            AlertEvent::QuotaWaiting => "quota.waiting",
            AlertEvent::CollectionHeld => "collection.held",
        }
    }
}

/// An alert to write outside a state transition (credentials, quota).
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub event: AlertEvent,
    pub collection_id: Option<CollectionId>,
    /// Writing the same key twice writes one alert (e.g. one `quota.waiting` per wait).
    pub dedup_key: Option<String>,
    /// Extra fields of the delivered JSON (an object).
    pub payload: serde_json::Value,
}

/// One alert claimed for delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxAlert {
    pub id: i64,
    pub event: String,
    pub collection_id: Option<CollectionId>,
    pub week_id: Option<WeekId>,
    pub execution_id: Option<ExecutionId>,
    /// A JSON object of the event's extra fields.
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
}

/// Alerts not yet taken by the webhook (`status`, metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UndeliveredAlerts {
    pub count: i64,
    /// Of those, alerts whose delivery already failed at least once.
    pub retrying: i64,
    pub oldest_at: Option<DateTime<Utc>>,
}

/// Statuses a collection ends in, each reported once per arrival: `('completed', ...)`.
static ENDED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use crate::status::CollectionStatus::{Cancelled, Completed, Failed};
    format!("({})", super::status_list(&[Completed, Failed, Cancelled]))
});

/// Longest reason copied into an alert (AMC's reasons can be long).
const MAX_REASON_CHARS: usize = 500;

/// Alert writes on an open transaction (or connection), for both backends.
#[allow(async_fn_in_trait)] // crate-internal; the futures' `Send` is known at each concrete call
pub(crate) trait OutboxTx {
    /// A week failed for good: its `week.failed` alert, then the alert of its collection if the
    /// failure ended it. Call after the collection's status was re-derived.
    async fn alert_week_failed(
        &mut self,
        collection_id: CollectionId,
        week_id: WeekId,
        execution_id: Option<ExecutionId>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error>;

    /// Writes the alert of each collection that arrived at completed, failed or cancelled since
    /// its last one. With `reopen`, also forgets the reported status of collections that left
    /// their end status (operators' controls). Call after the status change.
    async fn alert_collections(
        &mut self,
        collections: &[CollectionId],
        now: DateTime<Utc>,
        reopen: bool,
    ) -> Result<(), sqlx::Error>;

    /// Writes one alert (a repeated `dedup_key` writes nothing).
    async fn alert_insert(
        &mut self,
        alert: &NewAlert,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error>;
}

fn truncated(reason: &str) -> String {
    reason.chars().take(MAX_REASON_CHARS).collect()
}

/// The collection ids as one JSON array parameter.
fn id_array(ids: &[CollectionId]) -> String {
    serde_json::Value::from(ids.iter().map(|id| id.to_string()).collect::<Vec<_>>()).to_string()
}

macro_rules! outbox_tx {
    ($conn:ty, ids = $ids:expr, week_payload = $week_payload:expr, collection_payload = $collection_payload:expr) => {
        impl OutboxTx for $conn {
            async fn alert_week_failed(
                &mut self,
                collection_id: CollectionId,
                week_id: WeekId,
                execution_id: Option<ExecutionId>,
                reason: &str,
                now: DateTime<Utc>,
            ) -> Result<(), sqlx::Error> {
                // A repeated failure message of the same execution writes nothing more.
                let dedup = execution_id.map(|e| format!("week.failed:{week_id}:{e}"));
                let sql = format!(
                    "INSERT INTO alert_outbox (event, collection_id, week_id, execution_id, \
                     dedup_key, payload, created_at, next_attempt_at) \
                     SELECT 'week.failed', w.collection_id, w.id, $2, $3, {}, $5, $5 \
                     FROM report_data_weeks w WHERE w.id = $1 \
                     ON CONFLICT (dedup_key) DO NOTHING",
                    $week_payload
                );
                sqlx::query(&sql)
                    .bind(week_id)
                    .bind(execution_id)
                    .bind(dedup)
                    .bind(truncated(reason))
                    .bind(now)
                    .execute(&mut *self)
                    .await?;
                self.alert_collections(&[collection_id], now, false).await
            }

            async fn alert_collections(
                &mut self,
                collections: &[CollectionId],
                now: DateTime<Utc>,
                reopen: bool,
            ) -> Result<(), sqlx::Error> {
                if collections.is_empty() {
                    return Ok(());
                }
                let ids = id_array(collections);
                let unreported = "(c.alerted_status IS NULL OR c.alerted_status <> c.status)";
                let insert = format!(
                    "INSERT INTO alert_outbox (event, collection_id, payload, created_at, \
                     next_attempt_at) \
                     SELECT 'collection.' || c.status, c.id, {}, $2, $2 \
                     FROM report_data_collections c WHERE c.id IN ({}) \
                     AND c.status IN {} AND {unreported}",
                    $collection_payload, $ids, *ENDED
                );
                let written = sqlx::query(&insert)
                    .bind(&ids)
                    .bind(now)
                    .execute(&mut *self)
                    .await?
                    .rows_affected();
                if written == 0 && !reopen {
                    return Ok(());
                }
                let remember = format!(
                    "UPDATE report_data_collections SET alerted_status = \
                     CASE WHEN status IN {ended} THEN status ELSE NULL END \
                     WHERE id IN ({}) AND (alerted_status IS NOT NULL OR status IN {ended})",
                    $ids,
                    ended = *ENDED
                );
                sqlx::query(&remember)
                    .bind(&ids)
                    .execute(&mut *self)
                    .await?;
                Ok(())
            }

            async fn alert_insert(
                &mut self,
                alert: &NewAlert,
                now: DateTime<Utc>,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO alert_outbox (event, collection_id, dedup_key, payload, \
                     created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5) \
                     ON CONFLICT (dedup_key) DO NOTHING",
                )
                .bind(alert.event.as_str())
                .bind(alert.collection_id)
                .bind(&alert.dedup_key)
                .bind(alert.payload.to_string())
                .bind(now)
                .execute(&mut *self)
                .await?;
                Ok(())
            }
        }
    };
}

outbox_tx!(
    sqlx::PgConnection,
    ids = "SELECT CAST(value AS uuid) FROM json_array_elements_text(CAST($1 AS json))",
    week_payload = "CAST(json_build_object('reason', CAST($4 AS TEXT), \
        'week_start_date', w.week_start_date, 'attempts', w.attempts) AS TEXT)",
    collection_payload = "CAST(json_build_object('detail', c.error_message) AS TEXT)"
);
outbox_tx!(
    sqlx::SqliteConnection,
    ids = "SELECT value FROM json_each($1)",
    week_payload = "json_object('reason', $4, 'week_start_date', w.week_start_date, \
        'attempts', w.attempts)",
    collection_payload = "json_object('detail', c.error_message)"
);

const COLUMNS: &str =
    "id, event, collection_id, week_id, execution_id, payload, created_at, attempts";

impl Store {
    /// Writes one alert on its own (credentials, quota: no state transition carries them).
    pub async fn enqueue_alert(&self, alert: &NewAlert) -> Result<(), StoreError> {
        let now = Utc::now();
        with_pool!(self, |pool| {
            let mut connection = pool.acquire().await?;
            connection.alert_insert(alert, now).await
        })?;
        Ok(())
    }

    /// Leases up to `limit` alerts due for delivery to `owner` until `until`, oldest first. On
    /// Postgres rows another process is claiming are skipped, and a lease that expired (its
    /// process died mid-delivery) is taken over: an alert goes out at least once.
    pub async fn claim_alerts(
        &self,
        owner: &str,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxAlert>, StoreError> {
        let now = Utc::now();
        // The ids are picked once, in a materialized CTE: as a plain `IN (subquery LIMIT n
        // FOR UPDATE SKIP LOCKED)`, Postgres may run the subquery again per row and claim more
        // than `limit` alerts (seen: 2 claimed with a limit of 1).
        let (materialized, lock) = match self {
            Store::Postgres(_) => ("MATERIALIZED", "FOR UPDATE SKIP LOCKED"),
            Store::Sqlite(_) => ("", ""),
        };
        let due = "delivered_at IS NULL AND next_attempt_at <= $3 \
                   AND (claimed_until IS NULL OR claimed_until < $3)";
        let sql = format!(
            "WITH picked AS {materialized} \
                 (SELECT id FROM alert_outbox WHERE {due} ORDER BY id LIMIT $4 {lock}) \
             UPDATE alert_outbox SET claimed_by = $1, claimed_until = $2 \
             WHERE id IN (SELECT id FROM picked) AND {due} RETURNING {COLUMNS}"
        );
        let mut claimed: Vec<OutboxAlert> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        claimed.sort_by_key(|alert| alert.id);
        Ok(claimed)
    }

    /// The webhook took the alert.
    pub async fn alert_delivered(&self, id: i64) -> Result<(), StoreError> {
        let sql = "UPDATE alert_outbox SET delivered_at = $2, attempts = attempts + 1, \
                   claimed_by = NULL, claimed_until = NULL, last_error = NULL \
                   WHERE id = $1 AND delivered_at IS NULL";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Deletes alerts delivered before `before`; returns how many. Undelivered ones always stay.
    pub async fn prune_delivered_alerts(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let sql = "DELETE FROM alert_outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1";
        Ok(with_pool!(self, |pool| sqlx::query(sql)
            .bind(before)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?)
    }

    /// The delivery failed; it is tried again at `retry_at`. `error` must hold no secret.
    pub async fn alert_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE alert_outbox SET attempts = attempts + 1, next_attempt_at = $2, \
                   last_error = $3, claimed_by = NULL, claimed_until = NULL \
                   WHERE id = $1 AND delivered_at IS NULL";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(retry_at)
            .bind(truncated(error))
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Gives claimed alerts back untried (they are due again at once).
    pub async fn release_alerts(&self, ids: &[i64]) -> Result<(), StoreError> {
        let list = serde_json::Value::from(ids.to_vec()).to_string();
        let sql = match self {
            Store::Postgres(_) => {
                "UPDATE alert_outbox SET claimed_by = NULL, claimed_until = NULL WHERE id IN \
                 (SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST($1 AS json)))"
            }
            Store::Sqlite(_) => {
                "UPDATE alert_outbox SET claimed_by = NULL, claimed_until = NULL WHERE id IN \
                 (SELECT value FROM json_each($1))"
            }
        };
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(&list)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// How many alerts wait for delivery, and since when.
    pub async fn undelivered_alerts(&self) -> Result<UndeliveredAlerts, StoreError> {
        let sql = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END), 0), \
                   MIN(created_at) FROM alert_outbox WHERE delivered_at IS NULL";
        let (count, retrying, oldest_at): (i64, i64, Option<DateTime<Utc>>) =
            with_pool!(self, |pool| sqlx::query_as(sql).fetch_one(pool).await)?;
        Ok(UndeliveredAlerts {
            count,
            retrying,
            oldest_at,
        })
    }
}
