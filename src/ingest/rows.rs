//! One file's rows on their way from the parser (`parse.rs`) to the writer: each CSV record
//! encoded as the stored row (a JSON object of the header's keys) into batches of about
//! `BATCH_BYTES`.

use super::encode::{push_json_string, RowFormat};
use super::parse::{ParseError, RowBatch, BATCH_BYTES};
use crate::results::ResultError;

/// One file's rows on their way to the writer: the batch being filled and the next row's index.
pub(super) struct FileRows {
    /// The file's position in the result, for errors.
    index: usize,
    batch: RowBatch,
    next_row: i32,
}

impl FileRows {
    pub(super) fn new(file: i32, index: usize) -> Self {
        Self {
            index,
            batch: RowBatch {
                file,
                ..RowBatch::default()
            },
            next_row: 0,
        }
    }

    /// Encodes `record` as one stored row: a JSON object of `keys` (already encoded for
    /// `format`) and the record's fields, which must be UTF-8.
    pub(super) fn push(
        &mut self,
        format: &RowFormat,
        keys: &[Vec<u8>],
        record: &csv::ByteRecord,
        replaced: &mut u64,
    ) -> Result<(), ParseError> {
        let number = record.position().map(|p| p.record()).unwrap_or_default();
        let batch = &mut self.batch;
        format.row_start(&mut batch.bytes, batch.file, self.next_row);
        batch.bytes.push(b'{');
        for (position, (key, field)) in keys.iter().zip(record.iter()).enumerate() {
            if std::str::from_utf8(field).is_err() {
                return Err(ParseError::Result(ResultError::NotUtf8 {
                    file: self.index,
                    record: number,
                }));
            }
            if position > 0 {
                batch.bytes.push(b',');
            }
            batch.bytes.extend_from_slice(key);
            push_json_string(&mut batch.bytes, field, format.copy(), replaced);
        }
        batch.bytes.push(b'}');
        format.row_end(&mut batch.bytes, &mut batch.ends);
        batch.rows += 1;
        self.next_row =
            self.next_row
                .checked_add(1)
                .ok_or(ParseError::Result(ResultError::TooManyRows {
                    limit: i32::MAX as usize,
                }))?;
        Ok(())
    }

    /// The batch once it holds `BATCH_BYTES`, replaced by an empty one that goes on from the
    /// next row.
    pub(super) fn take_full(&mut self) -> Option<RowBatch> {
        if self.batch.bytes.len() < BATCH_BYTES {
            return None;
        }
        let next = RowBatch {
            file: self.batch.file,
            first_row: self.next_row,
            bytes: Vec::with_capacity(BATCH_BYTES + BATCH_BYTES / 8),
            ..RowBatch::default()
        };
        Some(std::mem::replace(&mut self.batch, next))
    }

    /// The last, partly filled batch, if it holds any row.
    pub(super) fn finish(self) -> Option<RowBatch> {
        (self.batch.rows > 0).then_some(self.batch)
    }
}
