//! One file's rows on their way from the parser (`parse.rs`) to the writer: each data row encoded
//! as the stored row (a JSON object of the header's keys) into batches of about `BATCH_BYTES`.

use super::encode::{push_json_string, RowFormat};
use crate::store::RowBatch;

/// Size at which a batch of encoded rows is handed to the writer.
pub(crate) const BATCH_BYTES: usize = 1024 * 1024;

/// One file's rows on their way to the writer: the batch being filled.
pub(super) struct FileRows {
    batch: RowBatch,
    /// The index in its file of the row after the last one pushed.
    next_row: i32,
}

impl FileRows {
    pub(super) fn new(file: i32) -> Self {
        Self {
            batch: RowBatch {
                file,
                ..RowBatch::default()
            },
            next_row: 0,
        }
    }

    /// Encodes `record`, row `row` of its file, as one stored row: a JSON object of `keys`
    /// (already encoded for `format`) and the record's fields (checked UTF-8 by the reader).
    pub(super) fn push(
        &mut self,
        format: &RowFormat,
        keys: &[Vec<u8>],
        record: &csv::ByteRecord,
        row: i32,
        replaced: &mut u64,
    ) {
        let batch = &mut self.batch;
        format.row_start(&mut batch.bytes, batch.file, row);
        batch.bytes.push(b'{');
        for (position, (key, field)) in keys.iter().zip(record.iter()).enumerate() {
            if position > 0 {
                batch.bytes.push(b',');
            }
            batch.bytes.extend_from_slice(key);
            push_json_string(&mut batch.bytes, field, format.copy(), replaced);
        }
        batch.bytes.push(b'}');
        format.row_end(&mut batch.bytes, &mut batch.ends);
        batch.rows += 1;
        self.next_row = row.saturating_add(1);
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
