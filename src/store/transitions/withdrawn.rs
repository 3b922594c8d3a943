//! `submitting` → `pending` until `until`: AMC refused the create for a limit (or a refusal the
//! client cannot classify), so the attempt never happened and is not spent; the execution row is
//! marked `refused` (it never ran, so it never counts against the daily limit). Refused when the
//! week is no longer `submitting` or the lease was lost.

use chrono::{DateTime, Utc};

use super::refused::{stale_or_lease_lost, Refused};
use super::{on_tx, Edge, Tx};
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::status::{ExecutionStatus, WeekStatus};
use crate::store::fence::Fence;
use crate::store::Store;

/// A create AMC refused for a limit: the week waits until `until`.
#[derive(Debug, Clone)]
pub struct Withdrawn {
    pub collection_id: CollectionId,
    pub week_id: WeekId,
    pub execution_id: ExecutionId,
    pub reason: String,
    pub until: DateTime<Utc>,
    pub fence: Fence,
}

pub(super) const FROM: [WeekStatus; 1] = [WeekStatus::Submitting];
pub(super) const TO: WeekStatus = WeekStatus::Pending;
pub(super) const EDGE: Edge = Edge {
    label: "Withdrawn",
    from: &FROM,
    to: TO,
};

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

/// Withdraws the intent; whether the week moved.
pub(super) async fn apply(
    tx: &mut Tx,
    withdrawn: &Withdrawn,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let Withdrawn {
        week_id,
        execution_id,
        reason,
        until,
        fence,
        ..
    } = withdrawn;
    let moved = on_tx!(tx, |conn| sqlx::query(WITHDRAW_WEEK)
        .bind(week_id)
        .bind(reason)
        .bind(until)
        .bind(now)
        .bind(&fence.owner)
        .bind(fence.epoch)
        .bind(TO.as_str())
        .bind(FROM[0].as_str())
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

pub(super) async fn why_refused(store: &Store, withdrawn: &Withdrawn) -> Refused {
    let what = format!("week {} is no longer submitting", withdrawn.week_id);
    stale_or_lease_lost(store, withdrawn.collection_id, &withdrawn.fence, what).await
}
