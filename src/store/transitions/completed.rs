//! `downloading` → `completed` with the week's count, checksum and columns (its rows were staged
//! by the ingest and are moved at completion; rows given here are inserted with it). A completed
//! week never leaves that state, so it has no rows yet (were it otherwise, the rows' primary key
//! would refuse the write rather than store a week twice).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{distinct, fenced, id_list, on_tx, Kind, Sql, Tx};
use crate::ids::ExecutionId;
use crate::status::{ExecutionStatus, WeekStatus};
use crate::store::batch::Transition;
use crate::store::progress::{settle_collections_sql, CompletedWeek, ResultRow};
use crate::store::OutboxTx;

/// Rows inserted per statement: stays far below both backends' bind-parameter limits.
pub(in crate::store) const ROWS_PER_INSERT: usize = 500;

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

/// Rows given with the transition; the `VALUES` list grows with the chunk.
const ROWS: &str = "INSERT INTO report_data_rows \
    (week_id, file_index, row_index, collection_id, execution_id, data) ";

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
    kind: &Kind<'_>,
    now: DateTime<Utc>,
    applied: &mut [bool],
) -> Result<(), sqlx::Error> {
    if kind.is_empty() {
        return Ok(());
    }
    let rows = kind.json(|_, transition| match transition {
        Transition::Completed(week) => Some(fenced(
            &week.fence,
            json!({
                "week_id": week.week_id, "execution_id": week.execution_id,
                "row_count": week.row_count, "checksum": week.data_checksum,
                "amc": week.amc_execution_id, "columns": week.columns,
            }),
        )),
        _ => None,
    });
    let sql = tx.sql(&WEEKS);
    let moved: Vec<ExecutionId> = on_tx!(tx, |conn| sqlx::query_scalar(sql)
        .bind(&rows)
        .bind(now)
        .bind(WeekStatus::Completed.as_str())
        .bind(WeekStatus::Downloading.as_str())
        .fetch_all(conn)
        .await)?;
    let weeks: Vec<&CompletedWeek> = kind
        .mark_moved(&moved, applied)
        .into_iter()
        .filter_map(|transition| match transition {
            Transition::Completed(week) => Some(week),
            _ => None,
        })
        .collect();
    if weeks.is_empty() {
        return Ok(());
    }
    insert_rows(tx, &weeks).await?;
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

/// The rows given with the weeks, `ROWS_PER_INSERT` to a statement.
async fn insert_rows(tx: &mut Tx, weeks: &[&CompletedWeek]) -> Result<(), sqlx::Error> {
    let rows: Vec<(&CompletedWeek, &ResultRow)> = weeks
        .iter()
        .flat_map(|week| week.rows.iter().map(move |row| (*week, row)))
        .collect();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        on_tx!(tx, |conn| {
            let mut builder = sqlx::QueryBuilder::new(ROWS);
            builder.push_values(chunk, |mut values, (week, row)| {
                values
                    .push_bind(week.week_id)
                    .push_bind(row.file_index)
                    .push_bind(row.row_index)
                    .push_bind(week.collection_id)
                    .push_bind(week.execution_id)
                    .push_bind(&row.data);
            });
            builder
                .build()
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
    }
    Ok(())
}
