//! Re-running one completed week (`collection rerun ID --week DATE`, the console's button).
//!
//! A rerun puts the completed week back to `pending` and remembers, in
//! `report_data_weeks.rerun_of`, the execution that completed it. The daemon then collects the
//! week like any pending week, under a new execution UUID; the new rows are staged beside the old
//! ones (rows are keyed by execution, migration `..._week_rerun`). Until the new execution
//! completes, readers take the rows of `rerun_of` (`export.rs`) and staging cleanup leaves them
//! alone (`staging.rs`); the completing transaction deletes every row of the week that is not
//! the new execution's (`transitions/completed.rs`'s `SUPERSEDED_ROWS`, in the same transaction that
//! marks the week completed), so readers switch from the old rows to the new ones in one commit.
//! Both executions stay in `workflow_executions`: nothing here deletes an execution.

use chrono::{NaiveDate, Utc};

use super::model::Week;
use super::progress::REFRESH_COLLECTION;
use super::OutboxTx;
use super::{with_pool, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::status::{CollectionStatus, WeekStatus};

/// What a rerun request changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RerunRequested {
    pub week_id: WeekId,
    pub week_start: NaiveDate,
    /// The execution whose rows stay readable until the new one completes.
    pub previous_execution_id: ExecutionId,
}

impl Store {
    /// Puts the completed week of `id` that contains `day` back to `pending` for a new
    /// execution, keeping its current rows readable until that execution completes. Refused
    /// (nothing written) for an unknown collection (`NotFound`), a day in none of its weeks
    /// (`NotFound`), a week that is not completed, a week whose rows `keep_weeks` dropped, or a
    /// cancelled collection (`InvalidTransition`).
    pub async fn request_rerun(
        &self,
        id: CollectionId,
        day: NaiveDate,
    ) -> Result<RerunRequested, StoreError> {
        let (week, previous) = self.rerunnable_week(id, day).await?;
        let changed = self.reset_for_rerun(id, &week, previous).await?;
        if changed != 1 {
            // Say what changed, when it now refuses the rerun for good.
            self.rerunnable_week(id, day).await?;
            return Err(StoreError::InvalidTransition(format!(
                "week {} of collection {id} changed while asking for its rerun; try again",
                week.week_start_date
            )));
        }
        Ok(RerunRequested {
            week_id: week.id,
            week_start: week.week_start_date,
            previous_execution_id: previous,
        })
    }

    /// The completed week of `id` containing `day`, and the execution that completed it.
    async fn rerunnable_week(
        &self,
        id: CollectionId,
        day: NaiveDate,
    ) -> Result<(Week, ExecutionId), StoreError> {
        let collection = self
            .collection(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("collection {id} not found")))?;
        if collection.status == CollectionStatus::Cancelled {
            return Err(StoreError::InvalidTransition(format!(
                "cannot rerun a week of collection {id}: it is cancelled"
            )));
        }
        let weeks = self.weeks_of(id).await?;
        let week = weeks
            .into_iter()
            .find(|w| w.week_start_date <= day && day <= w.week_end_date)
            .ok_or_else(|| {
                StoreError::NotFound(format!("{day} is in no week of collection {id}"))
            })?;
        let previous = match (week.status, week.execution_id) {
            (WeekStatus::Completed, Some(execution)) => execution,
            _ => {
                return Err(StoreError::InvalidTransition(format!(
                    "week {} of collection {id} is {}; only a completed week can be rerun",
                    week.week_start_date, week.status
                )))
            }
        };
        // Retention dropped these rows on purpose: collecting them again would bring back what
        // `keep_weeks` removed, and nothing would drop them again.
        if let Some(dropped) = week.rows_dropped_at {
            return Err(StoreError::InvalidTransition(format!(
                "week {} of collection {id} cannot be rerun: its rows were dropped by keep_weeks \
                 at {}",
                week.week_start_date,
                dropped.format("%Y-%m-%d %H:%M:%S UTC")
            )));
        }
        Ok((week, previous))
    }

    /// Puts the week back to `pending` under `rerun_of`, in one transaction with the collection's
    /// revival and status; returns the weeks changed (0 when it changed meanwhile).
    async fn reset_for_rerun(
        &self,
        id: CollectionId,
        week: &Week,
        previous: ExecutionId,
    ) -> Result<u64, StoreError> {
        let now = Utc::now();
        // Guarded on the week still being completed by the same execution: a concurrent rerun
        // or change makes this one a no-op that is reported, not a second reset.
        // The execution ids are cleared, not kept: a pending week whose own execution succeeded
        // is downloaded again rather than submitted (week_flow's `start_attempt`), and a rerun
        // wants a new execution. `rerun_of` keeps the old one for readers and the lineage.
        // What the old execution served is kept beside `rerun_of` (every SET reads the row as
        // it was): `show` names it while the rerun runs, and a rerun cancelled or failed for good
        // puts it back (`store/lineage.rs`).
        let reset = "UPDATE report_data_weeks SET status = $4, rerun_of = execution_id, \
                     rerun_of_amc_execution_id = amc_execution_id, \
                     rerun_of_row_count = row_count, rerun_of_data_checksum = data_checksum, \
                     execution_id = NULL, amc_execution_id = NULL, row_count = NULL, \
                     data_checksum = NULL, attempts = 0, next_attempt_at = NULL, \
                     error_message = NULL, updated_at = $3 \
                     WHERE id = $1 AND status = $5 AND execution_id = $2 \
                     AND rows_dropped_at IS NULL";
        let revive = "UPDATE report_data_collections SET given_up = FALSE, updated_at = $2 \
                      WHERE id = $1 AND status NOT IN ($3, $4)";
        // Taken first, on the collection's row: a cancel (which writes that row) and this rerun
        // are then one after the other, so a cancelled collection never gets a pending week.
        let open =
            "UPDATE report_data_collections SET updated_at = $2 WHERE id = $1 AND status <> $3";
        Ok(with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let still_open = sqlx::query(open)
                .bind(id)
                .bind(now)
                .bind(CollectionStatus::Cancelled.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if still_open == 0 {
                return Ok(0);
            }
            let changed = sqlx::query(reset)
                .bind(week.id)
                .bind(previous)
                .bind(now)
                .bind(WeekStatus::Pending.as_str())
                .bind(WeekStatus::Completed.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed == 1 {
                sqlx::query(revive)
                    .bind(id)
                    .bind(now)
                    .bind(CollectionStatus::Paused.as_str())
                    .bind(CollectionStatus::Cancelled.as_str())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&REFRESH_COLLECTION)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                // The collection reopened: its next completion is reported again.
                tx.alert_collections(&[id], now, true).await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(changed)
        })?)
    }
}
