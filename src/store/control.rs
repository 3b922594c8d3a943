//! Operators' controls (pause, resume, cancel, retry-failed), written by the CLI, and the queries
//! the daemon uses to apply them (executions of cancelled weeks still running on AMC).
//!
//! Each control is one transaction that checks the collection's current status first, so an
//! invalid transition (resume a completed collection, cancel twice) changes nothing.

use chrono::Utc;

use super::progress::REFRESH_COLLECTION;
use super::{status_list, with_pool, OutboxTx, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId, InstanceId};
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
    /// What the control does to a collection in `status`: its new status, the statement that
    /// changes its weeks (`$1` the collection, `$2` the time), and whether the collection's
    /// status is then derived again from its weeks.
    fn effect(self, status: CollectionStatus) -> (CollectionStatus, Option<String>, bool) {
        match self {
            Control::Pause => (CollectionStatus::Paused, None, false),
            Control::Resume => (CollectionStatus::Pending, None, true),
            Control::Cancel => (
                CollectionStatus::Cancelled,
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
                match status {
                    CollectionStatus::Failed => CollectionStatus::Pending,
                    other => other,
                },
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
    pub async fn apply_control(
        &self,
        id: CollectionId,
        control: Control,
    ) -> Result<u64, StoreError> {
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
        let now = Utc::now();
        // Guarded by the status read above, inside the transaction, against a concurrent change.
        // Resuming (or cancelling) a held collection ends the hold (`store::held`).
        let unhold = match control {
            Control::Resume | Control::Cancel => ", held_reason = NULL, held_at = NULL",
            Control::Pause | Control::RetryFailed => "",
        };
        let guard = format!(
            "UPDATE report_data_collections SET status = $2, updated_at = $3, given_up = FALSE{unhold} \
             WHERE id = $1 AND status IN ({})",
            status_list(control.allowed_from())
        );
        let (new_status, weeks_sql, refresh) = control.effect(collection.status);
        let changed = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let guarded = sqlx::query(&guard)
                .bind(id)
                .bind(new_status.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let mut changed = 0;
            if guarded == 1 {
                if let Some(sql) = &weeks_sql {
                    changed = sqlx::query(sql)
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
                // Alerts (issue 15): `collection.cancelled`, or a reopened collection forgotten.
                tx.alert_collections(&[id], now, true).await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>((guarded, changed))
        })?;
        match changed {
            (1, weeks) => Ok(weeks),
            _ => Err(StoreError::InvalidTransition(format!(
                "collection {id} changed while applying {}; try again",
                control.verb()
            ))),
        }
    }

    /// AMC executions still in flight whose week was cancelled: the daemon cancels them on AMC.
    pub async fn executions_to_cancel(&self) -> Result<Vec<ExecutionToCancel>, StoreError> {
        // `$1`: `cancelled`; `$2`..`$5`: the live execution statuses.
        let sql = "SELECT e.id, e.instance_id, e.amc_execution_id FROM workflow_executions e \
             JOIN report_data_weeks w ON w.id = e.week_id \
             WHERE w.status = $1 AND e.amc_execution_id IS NOT NULL \
             AND e.status IN ($2, $3, $4, $5)";
        let [live0, live1, live2, live3] = ExecutionStatus::LIVE.map(ExecutionStatus::as_str);
        Ok(with_pool!(self, |pool| sqlx::query_as::<
            _,
            ExecutionToCancel,
        >(sql)
        .bind(WeekStatus::Cancelled.as_str())
        .bind(live0)
        .bind(live1)
        .bind(live2)
        .bind(live3)
        .fetch_all(pool)
        .await)?)
    }
}
