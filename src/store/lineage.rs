//! Lineage: which AMC execution belongs to which week, and which execution's rows a week serves.
//!
//! An AMC execution is recorded for one week only (`workflow_executions.amc_execution_id` is
//! unique), so adoption by listing must never take an execution another week (of this collection
//! or another over the same window) already holds. What a week serves follows one rule
//! ([`Served`]), shared by `collection show`, the console and `export`.

use std::collections::HashMap;

use super::{with_pool, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::status::WeekStatus;

impl Store {
    /// AMC ids already recorded for any execution of the same request as `execution` (same
    /// instance, workflow, window, zone and parameters: the idempotency key) or of its week,
    /// other than `execution` itself: earlier attempts of its week and the executions of other
    /// collections' weeks over the same window. None of them may be adopted by `execution`.
    pub async fn recorded_amc_ids(
        &self,
        execution: ExecutionId,
    ) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT o.amc_execution_id FROM workflow_executions o \
                   JOIN workflow_executions me ON me.id = $1 \
                   WHERE (o.idempotency_key = me.idempotency_key OR o.week_id = me.week_id) \
                   AND o.id <> $1 AND o.amc_execution_id IS NOT NULL";
        Ok(with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(execution)
            .fetch_all(pool)
            .await)?)
    }

    /// Whether `amc_execution_id` is recorded for an execution other than `execution`: a
    /// listing found it before the other week stored it, so it is not `execution`'s to adopt.
    pub async fn amc_id_held_elsewhere(
        &self,
        amc_execution_id: &str,
        execution: ExecutionId,
    ) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM workflow_executions \
                   WHERE amc_execution_id = $1 AND id <> $2";
        let held: i64 = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(amc_execution_id)
            .bind(execution)
            .fetch_one(pool)
            .await)?;
        Ok(held > 0)
    }
}

/// What a week serves: the execution whose rows `export` (and every reader of the rows) returns
/// for it, with that execution's AMC id, row count and checksum. The one rule, which `export.rs`
/// and `served_weeks` both follow:
///
/// - a `completed` week serves its own execution (`execution_id`, `row_count`, `data_checksum`);
/// - a week being collected again (any other status, `rerun_of` set) serves the execution it
///   served before (`rerun_of` and its kept AMC id, count and checksum) until the rerun
///   completes; a rerun cancelled or failed for good puts the week back to `completed` with it;
/// - a week whose rows `keep_weeks` dropped (`rows_dropped_at`), or that never completed, serves
///   nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Served {
    #[serde(skip)]
    pub week_id: WeekId,
    pub execution_id: ExecutionId,
    pub amc_execution_id: Option<String>,
    pub row_count: Option<i64>,
    pub data_checksum: Option<String>,
}

/// The columns of what a week serves (see [`Served`]), NULL when it serves nothing, as
/// `serves_execution_id`, `serves_amc_execution_id`, `serves_row_count`, `serves_data_checksum`:
/// the one place the rule is written for readers of weeks (`served_weeks`, the console).
pub(super) fn served_columns() -> String {
    let completed = WeekStatus::Completed;
    let pick = |own: &str, kept: &str| {
        format!(
            "CASE WHEN rows_dropped_at IS NOT NULL THEN NULL \
             WHEN status = '{completed}' THEN {own} \
             WHEN rerun_of IS NOT NULL THEN {kept} END AS serves_{own}"
        )
    };
    [
        pick("execution_id", "rerun_of"),
        pick("amc_execution_id", "rerun_of_amc_execution_id"),
        pick("row_count", "rerun_of_row_count"),
        pick("data_checksum", "rerun_of_data_checksum"),
    ]
    .join(", ")
}

/// Puts a week whose rerun ended without completing back to `completed` with the execution it
/// served before. `filter` selects the weeks (`$1`); `$2` is the time, `$3` the week's message.
/// Weeks rerun before the kept columns existed cannot be put back and are left alone.
pub(super) fn restore_rerun_sql(filter: &str) -> String {
    format!(
        "UPDATE report_data_weeks SET status = '{completed}', execution_id = rerun_of, \
         amc_execution_id = rerun_of_amc_execution_id, row_count = rerun_of_row_count, \
         data_checksum = rerun_of_data_checksum, rerun_of = NULL, \
         rerun_of_amc_execution_id = NULL, rerun_of_row_count = NULL, \
         rerun_of_data_checksum = NULL, next_attempt_at = NULL, error_message = $3, \
         updated_at = $2 \
         WHERE {filter} AND rerun_of IS NOT NULL AND rerun_of_amc_execution_id IS NOT NULL \
         AND rerun_of_row_count IS NOT NULL AND rerun_of_data_checksum IS NOT NULL \
         RETURNING id, execution_id",
        completed = WeekStatus::Completed
    )
}

/// Rows a week put back by `restore_rerun_sql` staged for the rerun that did not complete:
/// nobody reads them (`$1` the week, `$2` the execution it serves).
pub(super) const STRAY_RERUN_ROWS: &str =
    "DELETE FROM report_data_rows WHERE week_id = $1 AND execution_id <> $2";

impl Store {
    /// What each week of the collection serves (see [`Served`]), keyed by week.
    pub async fn served_weeks(
        &self,
        id: CollectionId,
    ) -> Result<HashMap<WeekId, Served>, StoreError> {
        let sql = format!(
            "SELECT id AS week_id, {} FROM report_data_weeks WHERE collection_id = $1",
            served_columns()
        );
        let rows: Vec<ServedRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_all(pool)
            .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let served = Served {
                    week_id: row.week_id,
                    execution_id: row.serves_execution_id?,
                    amc_execution_id: row.serves_amc_execution_id,
                    row_count: row.serves_row_count,
                    data_checksum: row.serves_data_checksum,
                };
                Some((row.week_id, served))
            })
            .collect())
    }
}

/// A week's `served_columns`, as read.
#[derive(sqlx::FromRow)]
struct ServedRow {
    week_id: WeekId,
    serves_execution_id: Option<ExecutionId>,
    serves_amc_execution_id: Option<String>,
    serves_row_count: Option<i64>,
    serves_data_checksum: Option<String>,
}
