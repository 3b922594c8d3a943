//! AMC result files: what a stored result is (`row_count`, `data_checksum`, the refusals of
//! `ResultError`) and the one CSV reader of its files (`reader`), which `parse_results` drives
//! over files held in memory (the simulator, tests) and `crate::ingest` over files streamed from
//! their download.
//!
//! docs/contract.md: `row_count` counts data rows (headers excluded) over all files;
//! `data_checksum` is the lowercase hex SHA-256 of the files' bytes concatenated in
//! `downloadUrls` order, exactly as downloaded. Parsing uses the `csv` crate (quoted commas,
//! quotes and newlines are data), and any hostile file (ragged rows, non-UTF-8, too many rows)
//! fails the week with a reason instead of storing half a result.

mod reader;

use std::collections::HashMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use reader::{
    column_names, csv_reader, first_line, FileReader, FirstLine, Header, ReadError, ResultReader,
    SkipBom,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResultError {
    #[error("result file {file}: record {record} is not valid UTF-8")]
    NotUtf8 { file: usize, record: u64 },
    #[error("result file {file}: record {record} has {found} fields, the header has {expected}")]
    RaggedRow {
        file: usize,
        record: u64,
        expected: usize,
        found: usize,
    },
    #[error("result file {file} is not valid CSV: {message}")]
    Malformed { file: usize, message: String },
    /// A later split file whose first line is neither the header again nor a data row.
    #[error(
        "result file {file}: its first line has {found} fields; it is neither file 0's header \
         repeated nor a data row of its {expected} columns"
    )]
    UnexpectedFirstLine {
        file: usize,
        found: usize,
        expected: usize,
    },
    /// The stored rows disagree with AMC's metadata file about the result.
    #[error("the result disagrees with AMC's metadata file: {0}")]
    MetadataMismatch(String),
    #[error("result has more than {limit} rows")]
    TooManyRows { limit: usize },
    /// More columns than a typed relation can hold (Postgres: 1,600 per table, 6 are fixed).
    #[error("result has {found} columns; its typed relation can hold at most {limit}")]
    TooManyRelationColumns { found: usize, limit: usize },
    #[error("result file {file} has {found} columns, more than the limit of {limit}")]
    TooManyColumns {
        file: usize,
        found: usize,
        limit: usize,
    },
}

/// Most columns a result file may have: AMC queries have tens; thousands mean a hostile or broken
/// file, and every stored row repeats every column name.
pub const MAX_COLUMNS: usize = 4096;

/// What replaces text a database cannot store (NUL): U+FFFD, the Unicode replacement character.
pub const REPLACEMENT: &str = "\u{FFFD}";

/// A week's parsed result.
#[derive(Debug, Clone)]
pub struct ParsedResult {
    /// Column names of the result's header (the first line of file 0).
    pub columns: Vec<String>,
    pub row_count: i64,
    pub data_checksum: String,
    pub rows: Vec<ParsedRow>,
}

/// One data row of a parsed result: a JSON object of the header's names.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRow {
    pub file_index: i32,
    /// Its index within its file.
    pub row_index: i32,
    pub data: Value,
}

/// Hex SHA-256 of the files concatenated in order.
pub fn checksum<B: AsRef<[u8]>>(files: &[B]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.as_ref());
    }
    hex::encode(hasher.finalize())
}

/// Parses every file into JSON-object rows keyed by the header's column names: the first line
/// of file 0 is the header, a later file's first line is a repeated header or data
/// ([`first_line`]).
pub fn parse_results<B: AsRef<[u8]>>(
    files: &[B],
    max_rows: usize,
) -> Result<ParsedResult, ResultError> {
    let mut result = ResultReader::new(max_rows);
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    for (index, bytes) in files.iter().enumerate() {
        // The `csv` crate's default buffer: the bytes are in memory already.
        let mut csv = csv_reader(bytes.as_ref(), 8 * 1024);
        let mut file = result.file(index, &mut csv);
        while file.next_row(&mut record).map_err(|e| e.refusal(index))? {
            let Some(header) = file.header() else {
                continue;
            };
            let mut object = Map::with_capacity(header.names.len());
            for (name, field) in header.names.iter().zip(record.iter()) {
                // Every field was checked to be UTF-8 by the reader.
                let text = String::from_utf8_lossy(field);
                object.insert(name.clone(), Value::String(text.replace('\0', REPLACEMENT)));
            }
            rows.push(ParsedRow {
                file_index: index as i32,
                row_index: file.row_index(),
                data: Value::Object(object),
            });
        }
    }
    Ok(ParsedResult {
        columns: result.header().map(|h| h.names.clone()).unwrap_or_default(),
        row_count: rows.len() as i64,
        data_checksum: checksum(files),
        rows,
    })
}

/// Checks a stored result against AMC's metadata file: its data row count and its header's
/// column names (`header`, as written in file 0; none for a result without files), where the
/// metadata gives them.
pub fn check_metadata(
    metadata: &crate::amc::ResultMetadata,
    row_count: i64,
    header: &[String],
) -> Result<(), ResultError> {
    if let Some(expected) = metadata.row_count {
        if u64::try_from(row_count).ok() != Some(expected) {
            return Err(ResultError::MetadataMismatch(format!(
                "{row_count} data rows read, the metadata says {expected}"
            )));
        }
    }
    match &metadata.columns {
        Some(columns) if !header.is_empty() && columns.as_slice() != header => {
            Err(ResultError::MetadataMismatch(format!(
                "columns {header:?} read, the metadata names {columns:?}"
            )))
        }
        _ => Ok(()),
    }
}

/// Column names over several files in order of first appearance (linear, unlike `contains`).
#[derive(Debug, Default)]
pub struct ColumnUnion {
    pub names: Vec<String>,
    seen: HashMap<String, usize>,
}

impl ColumnUnion {
    /// Adds a file's names; returns each one's position in the union.
    pub fn add(&mut self, names: Vec<String>) -> Vec<usize> {
        let mut positions = Vec::with_capacity(names.len());
        for name in names {
            let next = self.names.len();
            let position = *self.seen.entry(name.clone()).or_insert(next);
            if position == next {
                self.names.push(name);
            }
            positions.push(position);
        }
        positions
    }
}

#[cfg(test)]
mod tests;
