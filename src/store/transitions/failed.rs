//! Failing a week (any open state → `failed`; a rerun failed for good → `completed` again with
//! the execution it served before): one statement per transition, as failures are rare and their
//! times differ per week (bound with each backend's own timestamp encoding). The SQL is the same
//! in both dialects. Refused when the week is already an end (`completed`, `cancelled`) or the
//! lease was lost.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::refused::{stale_or_lease_lost, Refused};
use super::{on_tx, Edge, Tx};
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::status::{ExecutionStatus, WeekStatus};
use crate::store::fence::Fence;
use crate::store::lineage::{restore_rerun_sql, STRAY_RERUN_ROWS};
use crate::store::progress::REFRESH_COLLECTION;
use crate::store::{OutboxTx, Store};

/// An attempt failed.
#[derive(Debug, Clone)]
pub struct Failed {
    pub collection_id: CollectionId,
    pub week_id: WeekId,
    /// The attempt's execution, when it got one.
    pub execution_id: Option<ExecutionId>,
    /// How the execution ended on AMC, when AMC said (else it is stored `failed`).
    pub amc_status: Option<ExecutionStatus>,
    pub reason: String,
    /// When the week is tried again (None: failed for good).
    pub retry_at: Option<DateTime<Utc>>,
    pub fence: Fence,
}

/// Every open state (a `failed` week waiting for its retry may fail again, e.g. for good).
pub(super) const FROM: [WeekStatus; 5] = [
    WeekStatus::Pending,
    WeekStatus::Submitting,
    WeekStatus::Running,
    WeekStatus::Downloading,
    WeekStatus::Failed,
];
pub(super) const TO: WeekStatus = WeekStatus::Failed;
pub(super) const EDGE: Edge = Edge {
    label: "Failed",
    from: &FROM,
    to: TO,
};
/// A rerun failed for good is put back to the `completed` it was (`restore_rerun`).
pub(super) const RERUN_RESTORED: Edge = Edge {
    label: "Failed",
    from: &FROM,
    to: WeekStatus::Completed,
};

/// `$7`: `failed`; `$8`..`$12`: `FROM`. `$3` says when the week is tried again (NULL: failed for
/// good); `$5`/`$6` are the lease.
const FAIL_WEEK: &str = "UPDATE report_data_weeks SET status = $7, error_message = $2, \
    next_attempt_at = $3, updated_at = $4 \
    WHERE id = $1 AND status IN ($8, $9, $10, $11, $12) \
    AND (SELECT f.lease_owner = $5 AND f.lease_epoch = $6 \
         FROM report_data_collections f WHERE f.id = report_data_weeks.collection_id)";

/// The execution's own end: AMC's status when it reported one, else `failed`.
const FAIL_EXECUTION: &str = "UPDATE workflow_executions SET status = $2, status_reason = $3, \
    completed_at = $4, updated_at = $4 WHERE id = $1";

/// Fails the week; whether it moved.
pub(super) async fn apply(
    tx: &mut Tx,
    failed: &Failed,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let Failed {
        collection_id,
        week_id,
        execution_id,
        amc_status,
        reason,
        retry_at,
        fence,
    } = failed;
    let [from0, from1, from2, from3, from4] = FROM.map(WeekStatus::as_str);
    let moved = on_tx!(tx, |conn| sqlx::query(FAIL_WEEK)
        .bind(week_id)
        .bind(reason)
        .bind(retry_at)
        .bind(now)
        .bind(&fence.owner)
        .bind(fence.epoch)
        .bind(TO.as_str())
        .bind(from0)
        .bind(from1)
        .bind(from2)
        .bind(from3)
        .bind(from4)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?
        == 1;
    if !moved {
        return Ok(false);
    }
    if let Some(execution_id) = execution_id {
        let status = amc_status
            .as_ref()
            .map_or(ExecutionStatus::Failed.as_str(), ExecutionStatus::as_str);
        on_tx!(tx, |conn| sqlx::query(FAIL_EXECUTION)
            .bind(execution_id)
            .bind(status)
            .bind(reason)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
    }
    // A rerun that failed for good leaves the week serving what it served before.
    if retry_at.is_none() && restore_rerun(tx, *week_id, reason, now).await? {
        on_tx!(tx, |conn| sqlx::query(&REFRESH_COLLECTION)
            .bind(collection_id)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
        on_tx!(tx, |conn| conn
            .alert_collections(&[*collection_id], now, false)
            .await)?;
        return Ok(true);
    }
    // A week that will be retried leaves the collection's status as it is.
    if retry_at.is_none() {
        on_tx!(tx, |conn| sqlx::query(&REFRESH_COLLECTION)
            .bind(collection_id)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
        // `week.failed`, and `collection.failed` if this ended the collection, in this commit.
        on_tx!(tx, |conn| conn
            .alert_week_failed(*collection_id, *week_id, *execution_id, reason, now)
            .await)?;
    }
    Ok(true)
}

/// The week failed for good is a rerun: back to `completed` with the execution it served before
/// (the failed attempt stays in its lineage). Whether it was one.
async fn restore_rerun(
    tx: &mut Tx,
    week_id: WeekId,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let message =
        format!("rerun failed ({reason}); the week serves the execution that completed it before");
    let restored: Vec<(WeekId, ExecutionId)> = on_tx!(tx, |conn| sqlx::query_as(&RESTORE_FAILED)
        .bind(week_id)
        .bind(now)
        .bind(&message)
        .fetch_all(conn)
        .await)?;
    for (week, execution) in &restored {
        on_tx!(tx, |conn| sqlx::query(STRAY_RERUN_ROWS)
            .bind(week)
            .bind(execution)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
    }
    Ok(!restored.is_empty())
}

/// The week `$1`, just failed for good, if it is being rerun.
static RESTORE_FAILED: LazyLock<String> =
    LazyLock::new(|| restore_rerun_sql(&format!("id = $1 AND status = '{}'", WeekStatus::Failed)));

pub(super) async fn why_refused(store: &Store, failed: &Failed) -> Refused {
    let what = format!("week {} cannot fail from its state", failed.week_id);
    stale_or_lease_lost(store, failed.collection_id, &failed.fence, what).await
}
