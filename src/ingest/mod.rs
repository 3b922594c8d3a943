//! Streaming ingest of one week's result: bytes from the gateway's download, through SHA-256 and
//! an incremental CSV parser, into the database in chunks, in memory bounded by the channel
//! capacities and batch size (a few MB), whatever the result's size.
//!
//! Three parts run at once, joined by bounded channels so the slowest sets the pace:
//! the download (the caller's future; in the daemon the `AmcGateway` streams the body), the
//! parser (`parse.rs`, on a blocking thread) and the writer (`Store::write_staged`, Postgres
//! `COPY` / SQLite batched INSERTs). Rows written here are staged: the week only counts them once
//! the DbWriter completes it with the `row_count` and `data_checksum` returned here.

mod encode;
mod parse;
mod rows;

use std::future::Future;

use tokio::sync::mpsc::{self, Sender};

pub use encode::RowFormat;

use crate::amc::FileEvent;
use crate::results::ResultError;
use crate::store::{StagingTarget, Store, StoreError};
use parse::{ParseError, Parser};

/// Downloaded chunks waiting for the parser (reqwest chunks are at most tens of KB).
const EVENT_CAPACITY: usize = 32;
/// Encoded batches (`rows::BATCH_BYTES` each) waiting for the writer.
const BATCH_CAPACITY: usize = 2;

/// Why a week's result could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError<E: std::error::Error> {
    #[error(transparent)]
    Download(E),
    /// The content is refused: the same bytes would be refused again.
    #[error(transparent)]
    Result(#[from] ResultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A part stopped without saying why (only when another part's error was lost).
    #[error("result ingest interrupted: {0}")]
    Interrupted(&'static str),
}

/// A week's result, stored (staged) and summarised.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub row_count: i64,
    pub data_checksum: String,
    pub columns: Vec<String>,
    /// Each column's narrowest type over its values (`columns`' order).
    pub column_types: Vec<crate::results_tables::ColumnType>,
    /// Characters the database cannot store (NUL) replaced with U+FFFD.
    pub replaced: u64,
    pub bytes: u64,
}

/// Stages the rows of `target`'s week from the files `download` streams into the sender it is
/// given (it must drop the sender when done). Leftovers of an interrupted earlier download are
/// removed first; on failure this one's rows are removed too (best effort: the next download
/// removes them anyway).
pub async fn ingest<D, Fut, E>(
    store: &Store,
    target: StagingTarget,
    max_rows: usize,
    download: D,
) -> Result<Ingested, IngestError<E>>
where
    D: FnOnce(Sender<FileEvent>) -> Fut,
    Fut: Future<Output = Result<u64, E>>,
    E: std::error::Error,
{
    let cleared = store.clear_staged_rows(target.week_id).await?;
    if cleared > 0 {
        tracing::info!(
            rows = cleared,
            "Removed rows an interrupted download had staged."
        );
    }
    let result = run(store, target, max_rows, download).await;
    if result.is_err() {
        if let Err(error) = store.clear_staged_rows(target.week_id).await {
            tracing::warn!(%error, "Staged rows of a failed download could not be removed.");
        }
    }
    result
}

async fn run<D, Fut, E>(
    store: &Store,
    target: StagingTarget,
    max_rows: usize,
    download: D,
) -> Result<Ingested, IngestError<E>>
where
    D: FnOnce(Sender<FileEvent>) -> Fut,
    Fut: Future<Output = Result<u64, E>>,
    E: std::error::Error,
{
    let format = match store {
        Store::Postgres(_) => {
            RowFormat::copy_for(target.week_id, target.collection_id, target.execution_id)
        }
        Store::Sqlite(_) => RowFormat::Json,
    };
    let (event_sender, events) = mpsc::channel(EVENT_CAPACITY);
    let (batch_sender, batches) = mpsc::channel(BATCH_CAPACITY);
    let parser = tokio::task::spawn_blocking(move || {
        Parser::new(events, batch_sender, format, max_rows).run()
    });
    let (downloaded, written) =
        tokio::join!(download(event_sender), store.write_staged(target, batches));
    let parsed = parser
        .await
        .unwrap_or(Err(ParseError::Result(ResultError::Malformed {
            file: 0,
            message: "the parser crashed".into(),
        })));
    // The first part to fail is the cause; the others only saw their channel close.
    let summary = match parsed {
        Err(ParseError::Result(error)) => return Err(IngestError::Result(error)),
        Ok(summary) => Some(summary),
        Err(ParseError::Incomplete | ParseError::WriterGone) => None,
    };
    let written = written?;
    downloaded.map_err(IngestError::Download)?;
    let Some(summary) = summary else {
        return Err(IngestError::Interrupted("the result stream ended early"));
    };
    let limit = crate::store::typed::MAX_RESULT_COLUMNS;
    if summary.columns.len() > limit {
        return Err(IngestError::Result(ResultError::TooManyRelationColumns {
            found: summary.columns.len(),
            limit,
        }));
    }
    if written != summary.row_count as u64 {
        return Err(IngestError::Store(StoreError::Corrupt(format!(
            "{written} rows stored of {} parsed",
            summary.row_count
        ))));
    }
    Ok(Ingested {
        row_count: summary.row_count,
        data_checksum: summary.data_checksum,
        columns: summary.columns,
        column_types: summary.column_types,
        replaced: summary.replaced,
        bytes: summary.bytes,
    })
}
