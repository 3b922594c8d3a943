//! Streaming a collection's stored result rows out (constant memory, whatever the size). Only
//! rows of completed weeks, by the execution that completed them, are read: rows of a download in
//! progress are staged in the same table (`staging.rs`). While a completed week is collected
//! again (`rerun.rs`), the rows of the execution it replaces are read until the new one completes.

use chrono::NaiveDate;
use futures::TryStreamExt;

use super::{with_pool, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId};
use crate::status::WeekStatus;

/// One stored result row with the week and execution it came from.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    pub week_start: NaiveDate,
    pub week_end: NaiveDate,
    pub execution_id: ExecutionId,
    pub file_index: i32,
    pub row_index: i32,
    pub data: sqlx::types::Json<serde_json::Value>,
}

impl Store {
    /// Result column names over the collection's completed weeks, in CSV order of first appearance.
    pub async fn result_columns(&self, id: CollectionId) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT result_columns FROM report_data_weeks \
                   WHERE collection_id = $1 AND (status = $2 OR rerun_of IS NOT NULL) \
                   AND result_columns IS NOT NULL \
                   ORDER BY week_start_date";
        let lists: Vec<sqlx::types::Json<Vec<String>>> =
            with_pool!(self, |pool| sqlx::query_scalar(sql)
                .bind(id)
                .bind(WeekStatus::Completed.as_str())
                .fetch_all(pool)
                .await)?;
        let mut columns: Vec<String> = Vec::new();
        for name in lists.into_iter().flat_map(|list| list.0) {
            if !columns.contains(&name) {
                columns.push(name);
            }
        }
        Ok(columns)
    }

    /// Feeds every stored row of the collection to `sink`, ordered by week, file and row.
    pub async fn export_rows<F>(&self, id: CollectionId, mut sink: F) -> Result<u64, StoreError>
    where
        F: FnMut(ExportRow) -> std::io::Result<()>,
    {
        let sql = "SELECT w.week_start_date AS week_start, w.week_end_date AS week_end, \
                   r.execution_id, r.file_index, r.row_index, r.data \
                   FROM report_data_rows r JOIN report_data_weeks w ON w.id = r.week_id \
                   WHERE r.collection_id = $1 \
                   AND ((w.status = $2 AND r.execution_id = w.execution_id) \
                        OR (w.status <> $2 AND r.execution_id = w.rerun_of)) \
                   ORDER BY w.week_start_date, r.file_index, r.row_index";
        with_pool!(self, |pool| {
            let mut rows = sqlx::query_as::<_, ExportRow>(sql)
                .bind(id)
                .bind(WeekStatus::Completed.as_str())
                .fetch(pool);
            let mut count = 0u64;
            while let Some(row) = rows.try_next().await? {
                sink(row).map_err(StoreError::Sink)?;
                count += 1;
            }
            Ok(count)
        })
    }
}
