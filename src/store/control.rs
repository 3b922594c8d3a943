//! Operators' controls (pause, resume, cancel, retry-failed), written by the CLI, and the queries
//! the daemon uses to apply them (executions of cancelled weeks still running on AMC).
//!
//! Each control is one transaction whose first statement checks the status it changes (and
//! computes the new one from it), so an invalid transition (resume a completed collection, cancel
//! twice) changes nothing, and controls racing from several processes never undo one another.

use std::sync::LazyLock;

use chrono::Utc;

use super::lineage::{restore_rerun_sql, STRAY_RERUN_ROWS};
use super::progress::REFRESH_COLLECTION;
use super::{status_list, with_pool, OutboxTx, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId, InstanceId, WeekId};
use crate::status::{CollectionStatus, ExecutionStatus, WeekStatus};

/// An AMC execution still in flight whose week was cancelled.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExecutionToCancel {
    pub id: ExecutionId,
    pub instance_id: InstanceId,
    pub amc_execution_id: String,
}

/// The operator's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Cancel,
    RetryFailed,
}

impl Control {
    fn allowed_from(self) -> &'static [CollectionStatus] {
        use CollectionStatus::*;
        match self {
            Control::Pause => &[Pending, Running],
            Control::Resume => &[Paused],
            Control::Cancel => &[Pending, Running, Paused, Failed],
            Control::RetryFailed => &[Failed, Running, Pending, Paused],
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Cancel => "cancel",
            Control::RetryFailed => "retry the failed weeks of",
        }
    }
}

impl Control {
    /// What the control does to a collection: its new status as an SQL expression over the row's
    /// own `status` (so it is decided by the status the guard checks, in the same statement),
    /// the statement that changes its weeks (`$1` the collection, `$2` the time), and whether the
    /// collection's status is then derived again from its weeks.
    fn effect(self) -> (String, Option<String>, bool) {
        match self {
            Control::Pause => (format!("'{}'", CollectionStatus::Paused), None, false),
            Control::Resume => (format!("'{}'", CollectionStatus::Pending), None, true),
            Control::Cancel => (
                format!("'{}'", CollectionStatus::Cancelled),
                Some(format!(
                    "UPDATE report_data_weeks SET status = '{}', next_attempt_at = NULL, \
                     updated_at = $2 WHERE collection_id = $1 AND status IN ({})",
                    WeekStatus::Cancelled,
                    status_list(&UNFINISHED_WEEKS)
                )),
                false,
            ),
            Control::RetryFailed => (
                // A failed collection runs again; a running or paused one stays as it is.
                format!(
                    "CASE WHEN status = '{}' THEN '{}' ELSE status END",
                    CollectionStatus::Failed,
                    CollectionStatus::Pending
                ),
                Some(format!(
                    "UPDATE report_data_weeks SET status = '{}', attempts = 0, \
                     next_attempt_at = NULL, error_message = NULL, updated_at = $2 \
                     WHERE collection_id = $1 AND status = '{}'",
                    WeekStatus::Pending,
                    WeekStatus::Failed
                )),
                true,
            ),
        }
    }
}

/// Unfinished weeks of collection `$1` being rerun, put back to the execution they served.
static RESTORE_CANCELLED: LazyLock<String> = LazyLock::new(|| {
    restore_rerun_sql(&format!(
        "collection_id = $1 AND status IN ({})",
        status_list(&UNFINISHED_WEEKS)
    ))
});

/// The message of a week whose rerun was cancelled.
const RERUN_CANCELLED: &str =
    "rerun cancelled; the week serves the execution that completed it before";

/// Tries of a control whose guard found the collection changed to another status that still
/// allows it (each try is one transaction; a status that does not allow it ends the tries).
const CONTROL_TRIES: u32 = 3;

/// Week statuses that have not reached an end.
const UNFINISHED_WEEKS: [WeekStatus; 5] = [
    WeekStatus::Pending,
    WeekStatus::Submitting,
    WeekStatus::Running,
    WeekStatus::Downloading,
    WeekStatus::Failed,
];

impl Store {
    /// Applies a control; returns the number of weeks it changed (cancel, retry-failed).
    ///
    /// The guard checks the status it changes in the same statement (`WHERE status IN (...)`,
    /// the new status computed from that row), so controls racing from several processes each
    /// apply to the status they find, in some order; one whose collection no longer allows it is
    /// told the status it found.
    pub async fn apply_control(
        &self,
        id: CollectionId,
        control: Control,
    ) -> Result<u64, StoreError> {
        for _ in 0..CONTROL_TRIES {
            let collection = self
                .collection(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("collection {id} not found")))?;
            if !control.allowed_from().contains(&collection.status) {
                return Err(StoreError::InvalidTransition(format!(
                    "cannot {} collection {id}: it is {}",
                    control.verb(),
                    collection.status
                )));
            }
            if let Some(weeks) = self.try_control(id, control).await? {
                return Ok(weeks);
            }
        }
        Err(StoreError::InvalidTransition(format!(
            "cannot {} collection {id}: its status kept changing while it was applied",
            control.verb()
        )))
    }

    /// One transaction of a control: `None` when the guard found a status that does not allow it.
    async fn try_control(
        &self,
        id: CollectionId,
        control: Control,
    ) -> Result<Option<u64>, StoreError> {
        let now = Utc::now();
        let (new_status, weeks_sql, refresh) = control.effect();
        // Resuming (or cancelling) a held collection ends the hold (`store::held`).
        let unhold = match control {
            Control::Resume | Control::Cancel => ", held_reason = NULL, held_at = NULL",
            Control::Pause | Control::RetryFailed => "",
        };
        let guard = format!(
            "UPDATE report_data_collections SET status = {new_status}, updated_at = $2, \
             given_up = FALSE{unhold} WHERE id = $1 AND status IN ({})",
            status_list(control.allowed_from())
        );
        let (guarded, changed) = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let guarded = sqlx::query(&guard)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let mut changed = 0;
            if guarded == 1 {
                if control == Control::Cancel {
                    // A week being rerun goes back to the execution it served (its rows never
                    // stopped being served); the rerun's execution is cancelled on AMC by the
                    // daemon's sweep.
                    let restored: Vec<(WeekId, ExecutionId)> = sqlx::query_as(&RESTORE_CANCELLED)
                        .bind(id)
                        .bind(now)
                        .bind(RERUN_CANCELLED)
                        .fetch_all(&mut *tx)
                        .await?;
                    for (week, execution) in &restored {
                        sqlx::query(STRAY_RERUN_ROWS)
                            .bind(week)
                            .bind(execution)
                            .execute(&mut *tx)
                            .await?;
                    }
                    changed += restored.len() as u64;
                }
                if let Some(sql) = &weeks_sql {
                    changed += sqlx::query(sql)
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                if refresh {
                    sqlx::query(&REFRESH_COLLECTION)
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                // Alerts: `collection.cancelled`, or a reopened collection forgotten.
                tx.alert_collections(&[id], now, true).await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>((guarded, changed))
        })?;
        Ok((guarded == 1).then_some(changed))
    }

    /// AMC executions still in flight whose week was cancelled (or whose rerun was): the daemon
    /// cancels them on AMC.
    pub async fn executions_to_cancel(&self) -> Result<Vec<ExecutionToCancel>, StoreError> {
        // `$1`: `cancelled`; `$2`..`$5`: the live execution statuses.
        // A completed week's execution other than the one it serves is a rerun that was
        // cancelled (the week went back to its previous execution): nobody waits for it.
        let sql = "SELECT e.id, e.instance_id, e.amc_execution_id FROM workflow_executions e \
             JOIN report_data_weeks w ON w.id = e.week_id \
             WHERE (w.status = $1 OR (w.status = $6 AND w.execution_id <> e.id)) \
             AND e.amc_execution_id IS NOT NULL AND e.status IN ($2, $3, $4, $5)";
        let live = ExecutionStatus::LIVE;
        let [live0, live1, live2, live3] = live.each_ref().map(ExecutionStatus::as_str);
        Ok(with_pool!(self, |pool| sqlx::query_as::<
            _,
            ExecutionToCancel,
        >(sql)
        .bind(WeekStatus::Cancelled.as_str())
        .bind(live0)
        .bind(live1)
        .bind(live2)
        .bind(live3)
        .bind(WeekStatus::Completed.as_str())
        .fetch_all(pool)
        .await)?)
    }
}
