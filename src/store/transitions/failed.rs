//! Failing a week (any open state → `failed`) and withdrawing an intent AMC refused for a limit
//! (`submitting` → `pending`): one statement per transition, as failures are rare and their
//! times differ per week (bound with each backend's own timestamp encoding). The SQL is the same
//! in both dialects.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::{on_tx, Kind, Tx};
use crate::ids::{ExecutionId, WeekId};
use crate::status::{ExecutionStatus, WeekStatus};
use crate::store::batch::Transition;
use crate::store::lineage::{restore_rerun_sql, STRAY_RERUN_ROWS};
use crate::store::progress::REFRESH_COLLECTION;
use crate::store::OutboxTx;

/// `$7`: `failed`; `$8`..`$11`: `pending`, `submitting`, `running`, `downloading`. `$3` says
/// when the week is tried again (NULL: failed for good); `$5`/`$6` are the lease.
const FAIL_WEEK: &str = "UPDATE report_data_weeks SET status = $7, error_message = $2, \
    next_attempt_at = $3, updated_at = $4 \
    WHERE id = $1 AND status IN ($8, $9, $10, $11, $7) \
    AND (SELECT f.lease_owner = $5 AND f.lease_epoch = $6 \
         FROM report_data_collections f WHERE f.id = report_data_weeks.collection_id)";

/// The execution's own end: AMC's status when it reported one, else `failed`.
const FAIL_EXECUTION: &str = "UPDATE workflow_executions SET status = $2, status_reason = $3, \
    completed_at = $4, updated_at = $4 WHERE id = $1";

/// `$7`: `pending`, `$8`: `submitting`. The create never happened, so the week gets its attempt
/// back and waits until `$3`.
const WITHDRAW_WEEK: &str = "UPDATE report_data_weeks SET status = $7, execution_id = NULL, \
    attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, error_message = $2, \
    next_attempt_at = $3, updated_at = $4 WHERE id = $1 AND status = $8 \
    AND (SELECT f.lease_owner = $5 AND f.lease_epoch = $6 \
         FROM report_data_collections f WHERE f.id = report_data_weeks.collection_id)";

/// The refused create's row: it never ran, so it never counts against the daily limit.
const REFUSE_EXECUTION: &str = "UPDATE workflow_executions SET status = $2, status_reason = $3, \
    completed_at = $4, updated_at = $4 WHERE id = $1";

pub(super) async fn apply(
    tx: &mut Tx,
    kind: &Kind<'_>,
    now: DateTime<Utc>,
    applied: &mut [bool],
) -> Result<(), sqlx::Error> {
    for (i, transition) in kind.iter() {
        applied[i] = match transition {
            Transition::Failed { .. } => fail(tx, transition, now).await?,
            Transition::Withdrawn { .. } => withdraw(tx, transition, now).await?,
            _ => false,
        };
    }
    Ok(())
}

async fn fail(
    tx: &mut Tx,
    transition: &Transition,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let Transition::Failed {
        collection_id,
        week_id,
        execution_id,
        amc_status,
        reason,
        retry_at,
        fence,
    } = transition
    else {
        return Ok(false);
    };
    let moved = on_tx!(tx, |conn| sqlx::query(FAIL_WEEK)
        .bind(week_id)
        .bind(reason)
        .bind(retry_at)
        .bind(now)
        .bind(&fence.owner)
        .bind(fence.epoch)
        .bind(WeekStatus::Failed.as_str())
        .bind(WeekStatus::Pending.as_str())
        .bind(WeekStatus::Submitting.as_str())
        .bind(WeekStatus::Running.as_str())
        .bind(WeekStatus::Downloading.as_str())
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?
        == 1;
    if !moved {
        return Ok(false);
    }
    if let Some(execution_id) = execution_id {
        let status = amc_status
            .as_deref()
            .unwrap_or(ExecutionStatus::Failed.as_str());
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

async fn withdraw(
    tx: &mut Tx,
    transition: &Transition,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let Transition::Withdrawn {
        week_id,
        execution_id,
        reason,
        until,
        fence,
        ..
    } = transition
    else {
        return Ok(false);
    };
    let moved = on_tx!(tx, |conn| sqlx::query(WITHDRAW_WEEK)
        .bind(week_id)
        .bind(reason)
        .bind(until)
        .bind(now)
        .bind(&fence.owner)
        .bind(fence.epoch)
        .bind(WeekStatus::Pending.as_str())
        .bind(WeekStatus::Submitting.as_str())
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?
        == 1;
    if moved {
        on_tx!(tx, |conn| sqlx::query(REFUSE_EXECUTION)
            .bind(execution_id)
            .bind(ExecutionStatus::Refused.as_str())
            .bind(reason)
            .bind(now)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
    }
    Ok(moved)
}
