//! Reuse of stored weeks: a week another collection already stored for the same request is
//! completed from that stored execution instead of costing AMC a run.
//!
//! "The same request" is written once, in [`same_key_condition`]: the same workflow, instance,
//! time zone and query parameters, over the same window (week start and end). Plans (`plan.rs`) count with it and
//! creation (`fleets.rs`) completes with it, so what a plan says is reused is what creation
//! reuses. A reused week keeps its lineage: its `execution_id`, AMC id, row count and checksum
//! are those of the execution that produced the rows, and the rows are copied under the new week
//! (still naming that execution), so `export`, the typed relation and `keep_weeks` treat the copy
//! like any other completed week, and the source week can later be rerun or dropped on its own.

use chrono::{DateTime, NaiveDate, Utc};

use super::tx::{on_tx, Tx};
use crate::ids::{CollectionId, ExecutionId, InstanceId, WeekId, WorkflowId};
use crate::status::WeekStatus;

/// What identifies a collection's request to AMC, apart from the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReuseKey {
    pub workflow_id: WorkflowId,
    pub instance_id: InstanceId,
    pub time_zone: String,
    /// The collection's query parameters in their canonical JSON (`{}` for none).
    pub parameters: String,
}

/// Placeholders [`same_key_condition`] takes (`$1`..`$KEY_BINDS`, bound by [`bind_key!`]); a
/// statement using it numbers its own placeholders after them.
pub(super) const KEY_BINDS: usize = 4;

/// The one definition of "the same key": collection alias `other` asks AMC what the
/// [`ReuseKey`] bound as `$1`.. asks. Query parameters are compared in their canonical JSON
/// (sorted keys, compact), so equal parameters are equal text.
pub(super) fn same_key_condition(other: &str) -> String {
    format!(
        "{other}.workflow_id = $1 AND {other}.instance_id = $2 AND {other}.time_zone = $3 \
         AND {other}.parameters = $4"
    )
}

/// Binds a [`ReuseKey`] as `same_key_condition`'s placeholders.
macro_rules! bind_key {
    ($query:expr, $key:expr) => {
        $query
            .bind($key.workflow_id)
            .bind($key.instance_id)
            .bind(&$key.time_zone)
            .bind(&$key.parameters)
    };
}

/// A completed week of another collection of the same key whose rows are still stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredWeek {
    pub week_id: WeekId,
    pub week_start_date: NaiveDate,
    pub week_end_date: NaiveDate,
    pub execution_id: ExecutionId,
}

/// Completed weeks (rows not dropped, not being rerun) of collections of `key` other than
/// `except`, newest completion first per window. `$4`: completed, `$5`: the excluded collection.
fn stored_sql() -> String {
    format!(
        "SELECT w.id AS week_id, w.week_start_date, w.week_end_date, \
         w.execution_id FROM report_data_weeks w \
         JOIN report_data_collections o ON o.id = w.collection_id \
         WHERE {} AND w.status = ${} AND w.rows_dropped_at IS NULL AND w.rerun_of IS NULL \
         AND w.execution_id IS NOT NULL AND o.id <> ${} \
         ORDER BY w.week_start_date, w.week_end_date, w.completed_at DESC, w.id",
        same_key_condition("o"),
        KEY_BINDS + 1,
        KEY_BINDS + 2
    )
}

/// The stored week serving each window of `weeks` (same order; `None` where nothing is stored).
pub(super) async fn stored_for(
    tx: &mut Tx,
    key: &ReuseKey,
    except: CollectionId,
    weeks: &[(NaiveDate, NaiveDate)],
) -> Result<Vec<Option<StoredWeek>>, sqlx::Error> {
    let sql = stored_sql();
    let found: Vec<StoredWeek> = on_tx!(tx, |conn| bind_key!(sqlx::query_as(&sql), key)
        .bind(WeekStatus::Completed.as_str())
        .bind(except)
        .fetch_all(conn)
        .await)?;
    Ok(weeks
        .iter()
        .map(|(start, end)| {
            found
                .iter()
                .find(|s| s.week_start_date == *start && s.week_end_date == *end)
                .cloned()
        })
        .collect())
}

/// Completes pending week `week` of collection `collection` from `source` (same window, same
/// key): the source's execution, AMC id, count, checksum and columns, and a copy of its rows.
/// `false` when the source no longer serves that execution or the week is not pending.
pub(super) async fn complete_from(
    tx: &mut Tx,
    week: WeekId,
    collection: CollectionId,
    source: &StoredWeek,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    // Postgres: the source row is share-locked, so `keep_weeks` cannot drop (nor a rerun
    // replace) its rows between the completion below and their copy. SQLite has one writer.
    if let Tx::Postgres(pg) = tx {
        sqlx::query("SELECT id FROM report_data_weeks WHERE id = $1 FOR SHARE")
            .bind(source.week_id)
            .fetch_optional(&mut **pg)
            .await?;
    }
    let complete = "UPDATE report_data_weeks AS w SET status = $3, execution_id = s.execution_id, \
        amc_execution_id = s.amc_execution_id, row_count = s.row_count, \
        data_checksum = s.data_checksum, result_columns = s.result_columns, \
        error_message = NULL, completed_at = $4, updated_at = $4 \
        FROM report_data_weeks AS s \
        WHERE w.id = $1 AND s.id = $2 AND w.status = $5 AND s.status = $3 \
        AND s.execution_id = $6 AND s.rows_dropped_at IS NULL";
    let moved = on_tx!(tx, |conn| sqlx::query(complete)
        .bind(week)
        .bind(source.week_id)
        .bind(WeekStatus::Completed.as_str())
        .bind(now)
        .bind(WeekStatus::Pending.as_str())
        .bind(source.execution_id)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    if moved != 1 {
        return Ok(false);
    }
    let copy = "INSERT INTO report_data_rows \
        (week_id, file_index, row_index, collection_id, execution_id, data) \
        SELECT $1, r.file_index, r.row_index, $2, r.execution_id, r.data \
        FROM report_data_rows r WHERE r.week_id = $3 AND r.execution_id = $4";
    on_tx!(tx, |conn| sqlx::query(copy)
        .bind(week)
        .bind(collection)
        .bind(source.week_id)
        .bind(source.execution_id)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(true)
}
