//! Result rows of a download in progress ("staged"): written straight into `report_data_rows`
//! under the week's current execution while the week is still `downloading`, by the week's
//! ingest rather than by the DbWriter (see ARCHITECTURE.md's invariants). They count only once
//! the DbWriter's completing transition moves the week to `completed` with its `row_count` and
//! `data_checksum`: readers (export) join on the week being completed by that execution, and a
//! new download of the week first removes whatever an interrupted one left.
//!
//! Postgres takes the rows with `COPY ... FROM STDIN` (one `COPY` per file, so a file downloaded
//! again is simply aborted); SQLite with one prepared multi-row INSERT in large transactions.

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgCopyIn, PgPoolCopyExt, Postgres};
use tokio::sync::mpsc::Receiver;

use super::{with_pool, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::status::WeekStatus;

/// The `COPY` the Postgres rows go through (the ingest's `RowFormat::Copy` writes this order).
pub const COPY_ROWS: &str = "COPY report_data_rows \
    (week_id, collection_id, execution_id, file_index, row_index, data) FROM STDIN";

/// Rows per SQLite INSERT statement: two parameters each, far below SQLite's 32,766.
const SQLITE_ROWS_PER_INSERT: usize = 500;

/// One message to the staging writer, from the week's ingest (`crate::ingest`).
#[derive(Debug)]
pub enum StagingBatch {
    /// File `file` starts (again: then the writer has already been told to `Discard` it).
    Begin {
        file: i32,
    },
    Rows(RowBatch),
    /// File `file` is complete.
    End {
        file: i32,
    },
    /// What was written of file `file` must go: the file is downloaded again.
    Discard {
        file: i32,
    },
}

/// Encoded rows of one file: `COPY` lines (Postgres, in `COPY_ROWS`' column order) or JSON texts
/// ending at `ends` (SQLite).
#[derive(Debug, Default)]
pub struct RowBatch {
    pub file: i32,
    pub first_row: i32,
    pub rows: usize,
    pub bytes: Vec<u8>,
    pub ends: Vec<usize>,
}

/// Whose rows are being staged.
#[derive(Debug, Clone, Copy)]
pub struct StagingTarget {
    pub week_id: WeekId,
    pub collection_id: CollectionId,
    pub execution_id: ExecutionId,
}

impl Store {
    /// Removes rows an interrupted download left for a week that is not completed (a completed
    /// week's rows are never touched, nor those of the execution a rerun replaces). Returns how
    /// many went.
    pub async fn clear_staged_rows(&self, week_id: WeekId) -> Result<u64, StoreError> {
        let sql = "DELETE FROM report_data_rows WHERE week_id = $1 AND NOT EXISTS \
                   (SELECT 1 FROM report_data_weeks w WHERE w.id = $1 AND (w.status = $2 \
                    OR w.rerun_of = report_data_rows.execution_id))";
        let removed = with_pool!(self, |pool| sqlx::query(sql)
            .bind(week_id)
            .bind(WeekStatus::Completed.as_str())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(removed)
    }

    /// Writes every batch until the channel closes; returns the rows of completed files. A file
    /// whose `End` never came (the download stopped) is aborted (Postgres) or left to
    /// `clear_staged_rows` (SQLite, whose batches commit as they come).
    pub async fn write_staged(
        &self,
        target: StagingTarget,
        batches: Receiver<StagingBatch>,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Postgres(pool) => write_postgres(pool, batches).await,
            Store::Sqlite(pool) => write_sqlite(pool, target, batches).await,
        }
    }
}

async fn write_postgres(
    pool: &sqlx::PgPool,
    mut batches: Receiver<StagingBatch>,
) -> Result<u64, StoreError> {
    let mut copy: Option<PgCopyIn<PoolConnection<Postgres>>> = None;
    let mut written = 0u64;
    while let Some(batch) = batches.recv().await {
        match batch {
            StagingBatch::Begin { .. } => {
                if let Some(open) = copy.take() {
                    open.abort("file started again").await?;
                }
                copy = Some(pool.copy_in_raw(COPY_ROWS).await?);
            }
            StagingBatch::Rows(rows) => {
                if let Some(open) = copy.as_mut() {
                    open.send(rows.bytes).await?;
                }
            }
            StagingBatch::End { .. } => {
                if let Some(open) = copy.take() {
                    written += open.finish().await?;
                }
            }
            StagingBatch::Discard { .. } => {
                if let Some(open) = copy.take() {
                    open.abort("file downloaded again").await?;
                }
            }
        }
    }
    if let Some(open) = copy.take() {
        open.abort("result download stopped").await?;
    }
    Ok(written)
}

async fn write_sqlite(
    pool: &sqlx::SqlitePool,
    target: StagingTarget,
    mut batches: Receiver<StagingBatch>,
) -> Result<u64, StoreError> {
    let full = insert_sql(SQLITE_ROWS_PER_INSERT);
    let mut written = 0u64;
    let mut file_rows = 0u64;
    while let Some(batch) = batches.recv().await {
        match batch {
            StagingBatch::Begin { .. } => file_rows = 0,
            StagingBatch::Rows(rows) => {
                let mut tx = pool.begin().await?;
                insert_batch(&mut tx, target, &rows, &full).await?;
                tx.commit().await?;
                file_rows += rows.rows as u64;
            }
            StagingBatch::End { .. } => written += std::mem::take(&mut file_rows),
            StagingBatch::Discard { file } => {
                file_rows = 0;
                // Only this execution's rows: a rerun week still holds the old execution's.
                sqlx::query(
                    "DELETE FROM report_data_rows \
                     WHERE week_id = $1 AND file_index = $2 AND execution_id = $3",
                )
                .bind(target.week_id)
                .bind(file)
                .bind(target.execution_id)
                .execute(pool)
                .await?;
            }
        }
    }
    Ok(written)
}

/// `INSERT` of `rows` rows: the week, collection, execution and file are bound once.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO report_data_rows \
         (week_id, collection_id, execution_id, file_index, row_index, data) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        let first = 5 + 2 * row;
        sql.push_str(&format!("($1, $2, $3, $4, ${first}, ${})", first + 1));
    }
    sql
}

async fn insert_batch(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    target: StagingTarget,
    rows: &RowBatch,
    full: &str,
) -> Result<(), StoreError> {
    let texts = json_texts(rows)?;
    let mut row_index = rows.first_row;
    for chunk in texts.chunks(SQLITE_ROWS_PER_INSERT) {
        let partial;
        let sql = if chunk.len() == SQLITE_ROWS_PER_INSERT {
            full
        } else {
            partial = insert_sql(chunk.len());
            partial.as_str()
        };
        let mut query = sqlx::query(sql)
            .bind(target.week_id)
            .bind(target.collection_id)
            .bind(target.execution_id)
            .bind(rows.file);
        for text in chunk {
            query = query.bind(row_index).bind(*text);
            row_index += 1;
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The batch's JSON texts (the parser wrote valid UTF-8).
fn json_texts(rows: &RowBatch) -> Result<Vec<&str>, StoreError> {
    let mut texts = Vec::with_capacity(rows.ends.len());
    let mut start = 0;
    for &end in &rows.ends {
        let text = std::str::from_utf8(&rows.bytes[start..end])
            .map_err(|_| StoreError::Corrupt("encoded row is not UTF-8".into()))?;
        texts.push(text);
        start = end;
    }
    Ok(texts)
}
