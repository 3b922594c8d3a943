//! `downloading` → `completed`: where a week becomes completed.
//!
//! **Where a week becomes completed:** here, in `apply`, when the DbWriter's group commit applies
//! a `Transition::Completed(CompletedWeek)` sent by the week's actor after its ingest staged the
//! rows (`store::staging`) and returned their count, checksum and columns. One transaction moves
//! the week (`WEEKS`, guarded by `FROM`), marks its execution `succeeded`, deletes the rows of any
//! execution the week served before (a rerun), refills the workflow's typed relation, re-derives
//! the collection's status and writes the alerts that causes. The only other ways back to
//! `completed` are for a week being rerun, which returns to the execution it served before when
//! the rerun fails for good (`failed.rs`) or is cancelled (`store/control.rs`).
//!
//! **What may refuse it** (`why_refused`; nothing is written then): the lease was lost to another
//! process (`Refused::LeaseLost`), or the week is not `downloading` this execution any more
//! (`Refused::Stale`: cancelled, failed meanwhile, or a repeated message). Apart from refusals,
//! the database may fail the write (a `StoreError`, e.g. the `completed_week_is_traceable` CHECK
//! or the typed relation refusing a value); the actor then fails the attempt.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::refused::{stale_or_lease_lost, Refused};
use super::{distinct, fenced, id_list, json_rows, mark_moved, on_tx, Edge, Of, Sql, Tx};
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::status::{ExecutionStatus, WeekStatus};
use crate::store::fence::Fence;
use crate::store::progress::settle_collections_sql;
use crate::store::{OutboxTx, Store};

/// A week's result, ready to store (its rows are already staged under `execution_id`). It cannot
/// be built without the internal execution UUID and the AMC id, so a completed week without
/// `execution_id` cannot be expressed.
#[derive(Debug, Clone)]
pub struct CompletedWeek {
    pub week_id: WeekId,
    pub collection_id: CollectionId,
    pub execution_id: ExecutionId,
    pub amc_execution_id: String,
    pub row_count: i64,
    pub data_checksum: String,
    /// Column names in CSV order.
    pub columns: Vec<String>,
    /// Each column's type over this week's values (`columns`' order), from the ingest.
    pub column_types: Vec<crate::results_tables::ColumnType>,
    pub fence: Fence,
}

pub(super) const FROM: [WeekStatus; 1] = [WeekStatus::Downloading];
pub(super) const TO: WeekStatus = WeekStatus::Completed;
pub(super) const EDGE: Edge = Edge {
    label: "Completed",
    from: &FROM,
    to: TO,
};

/// `$3`: `completed`, `$4`: `downloading`. (`RETURNING` and `+`: see `submitted::WEEKS`.)
const WEEKS: Sql = Sql {
    postgres: "UPDATE report_data_weeks AS w SET status = $3, row_count = v.row_count, \
        data_checksum = v.checksum, amc_execution_id = v.amc, error_message = NULL, \
        completed_at = $2, updated_at = $2, result_columns = v.columns \
        FROM json_to_recordset(CAST($1 AS json)) AS v(week_id uuid, execution_id uuid, \
            row_count bigint, checksum text, amc text, columns jsonb, owner text, epoch bigint) \
        WHERE w.id = v.week_id AND w.execution_id = v.execution_id AND w.status = $4 \
        AND (SELECT f.lease_owner = v.owner AND f.lease_epoch = v.epoch \
             FROM report_data_collections f WHERE f.id = w.collection_id) \
        RETURNING w.execution_id",
    sqlite: "UPDATE report_data_weeks AS w SET status = $3, row_count = v.row_count, \
        data_checksum = v.checksum, amc_execution_id = v.amc, error_message = NULL, \
        completed_at = $2, updated_at = $2, result_columns = v.columns \
        FROM (SELECT json_extract(value, '$.week_id') AS week_id, \
            json_extract(value, '$.execution_id') AS execution_id, \
            json_extract(value, '$.row_count') AS row_count, \
            json_extract(value, '$.checksum') AS checksum, json_extract(value, '$.amc') AS amc, \
            json_extract(value, '$.columns') AS columns, json_extract(value, '$.owner') AS owner, \
            json_extract(value, '$.epoch') AS epoch FROM json_each($1)) AS v \
        WHERE w.id = v.week_id AND w.execution_id = v.execution_id AND +w.status = $4 \
        AND (SELECT f.lease_owner = v.owner AND f.lease_epoch = v.epoch \
             FROM report_data_collections f WHERE f.id = w.collection_id) \
        RETURNING execution_id",
};

/// The rows of the weeks in the JSON id list `$1` that their (new) execution did not store: a
/// rerun week's old execution's rows.
const SUPERSEDED_ROWS: Sql = Sql {
    postgres: "DELETE FROM report_data_rows WHERE week_id IN \
        (SELECT v.id FROM json_to_recordset(CAST($1 AS json)) AS v(id uuid)) \
        AND execution_id <> (SELECT w.execution_id FROM report_data_weeks w \
                             WHERE w.id = report_data_rows.week_id)",
    sqlite: "DELETE FROM report_data_rows WHERE week_id IN \
        (SELECT json_extract(value, '$.id') FROM json_each($1)) \
        AND execution_id <> (SELECT w.execution_id FROM report_data_weeks w \
                             WHERE w.id = report_data_rows.week_id)",
};

/// The executions of the weeks that moved: `$3` `succeeded`.
const EXECUTIONS: Sql = Sql {
    postgres: "UPDATE workflow_executions SET status = $3, completed_at = $2, updated_at = $2 \
        WHERE id IN (SELECT v.id FROM json_to_recordset(CAST($1 AS json)) AS v(id uuid))",
    sqlite: "UPDATE workflow_executions SET status = $3, completed_at = $2, updated_at = $2 \
        WHERE id IN (SELECT json_extract(value, '$.id') FROM json_each($1))",
};

/// The collections' derived status, once none of their weeks is open (before that a completion
/// cannot change it); the derivation is `progress`'s, over the ids in `$1`.
static SETTLE_POSTGRES: LazyLock<String> = LazyLock::new(|| {
    settle_collections_sql("SELECT v.id FROM json_to_recordset(CAST($1 AS json)) AS v(id uuid)")
});
static SETTLE_SQLITE: LazyLock<String> = LazyLock::new(|| {
    settle_collections_sql("SELECT json_extract(value, '$.id') FROM json_each($1)")
});

pub(super) async fn apply(
    tx: &mut Tx,
    completed: &Of<'_, CompletedWeek>,
    now: DateTime<Utc>,
    applied: &mut [bool],
) -> Result<(), sqlx::Error> {
    if completed.is_empty() {
        return Ok(());
    }
    let rows = json_rows(completed, |_, week| {
        fenced(
            &week.fence,
            json!({
                "week_id": week.week_id, "execution_id": week.execution_id,
                "row_count": week.row_count, "checksum": week.data_checksum,
                "amc": week.amc_execution_id, "columns": week.columns,
            }),
        )
    });
    let sql = tx.sql(&WEEKS);
    let moved: Vec<ExecutionId> = on_tx!(tx, |conn| sqlx::query_scalar(sql)
        .bind(&rows)
        .bind(now)
        .bind(TO.as_str())
        .bind(FROM[0].as_str())
        .fetch_all(conn)
        .await)?;
    let weeks = mark_moved(completed, |week| week.execution_id, &moved, applied);
    if weeks.is_empty() {
        return Ok(());
    }
    let sql = tx.sql(&EXECUTIONS);
    on_tx!(tx, |conn| sqlx::query(sql)
        .bind(id_list(weeks.iter().map(|week| week.execution_id)))
        .bind(now)
        .bind(ExecutionStatus::Succeeded.as_str())
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    // A rerun week's old rows go in the commit that completes its new execution.
    let sql = tx.sql(&SUPERSEDED_ROWS);
    on_tx!(tx, |conn| sqlx::query(sql)
        .bind(id_list(weeks.iter().map(|week| week.week_id)))
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    // The workflows' typed relations switch to the new rows in this same commit.
    crate::store::typed::fill_completed(tx, &weeks).await?;
    let collections = distinct(weeks.iter().map(|week| week.collection_id));
    let sql = match tx {
        Tx::Postgres(_) => SETTLE_POSTGRES.as_str(),
        Tx::Sqlite(_) => SETTLE_SQLITE.as_str(),
    };
    on_tx!(tx, |conn| sqlx::query(sql)
        .bind(id_list(&collections))
        .bind(now)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    // `collection.completed` of the collections this batch ended, in the same commit.
    on_tx!(tx, |conn| conn
        .alert_collections(&collections, now, false)
        .await)?;
    Ok(())
}

pub(super) async fn why_refused(store: &Store, week: &CompletedWeek) -> Refused {
    let what = format!(
        "week {} is not downloading execution {}",
        week.week_id, week.execution_id
    );
    stale_or_lease_lost(store, week.collection_id, &week.fence, what).await
}
