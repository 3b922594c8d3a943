//! The CPU half of ingest, on a blocking thread: it reads the streamed files (`FileEvent`s from a
//! bounded channel) through SHA-256 and the `csv` crate's incremental reader, and turns every
//! record into the stored row (a JSON object keyed by column name) already encoded for the
//! backend: `COPY` text lines for Postgres, JSON texts for SQLite. Encoded rows leave in batches
//! of about `BATCH_BYTES` over another bounded channel, so neither a file nor a week is ever held.

use std::io::Read;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{Receiver, Sender};

use super::encode::{push_json_string, RowFormat};
use crate::amc::FileEvent;
use crate::results::{classify, column_names, ColumnUnion, ResultError};
use crate::results_tables::{ColumnType, TypeObserver};

/// Size at which a batch of encoded rows is handed to the writer.
pub(crate) const BATCH_BYTES: usize = 1024 * 1024;

/// Buffer of the CSV reader (it reads the channel in pieces of this size at most).
const CSV_BUFFER: usize = 64 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One message to the row writer.
#[derive(Debug)]
pub enum Batch {
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

/// Encoded rows of one file: `COPY` lines (Postgres) or JSON texts ending at `ends` (SQLite).
#[derive(Debug, Default)]
pub struct RowBatch {
    pub file: i32,
    pub first_row: i32,
    pub rows: usize,
    pub bytes: Vec<u8>,
    pub ends: Vec<usize>,
}

/// Why parsing stopped early.
#[derive(Debug)]
pub(crate) enum ParseError {
    /// The result itself is refused (the same bytes would be refused again).
    Result(ResultError),
    /// The download stopped part-way (it reports why).
    Incomplete,
    /// The writer stopped (it reports why).
    WriterGone,
}

/// What a complete parse found.
#[derive(Debug)]
pub(crate) struct ParseSummary {
    pub row_count: i64,
    pub data_checksum: String,
    pub columns: Vec<String>,
    /// Each column's narrowest type over its values, in `columns`' order.
    pub column_types: Vec<ColumnType>,
    /// Characters a database cannot store (NUL) that were replaced with U+FFFD.
    pub replaced: u64,
    pub bytes: u64,
}

/// Where a file's reading ended.
enum FileEnd {
    Done,
    /// The download started file `index` over.
    Restart(usize),
}

/// Signals from the channel that are not bytes, kept beside the reader for the parse loop.
#[derive(Default)]
struct Signals {
    restart: Option<usize>,
    closed: bool,
}

/// `std::io::Read` over one file's chunks; hashes every byte as received and drops a leading BOM.
struct ChannelReader<'a> {
    events: &'a mut Receiver<FileEvent>,
    hasher: &'a mut Sha256,
    bytes: &'a mut u64,
    current: Bytes,
    at_start: bool,
    ended: bool,
    signals: Signals,
}

impl ChannelReader<'_> {
    /// The next chunk of the file, `None` at its end (or on a signal, with the signal set).
    fn next_chunk(&mut self) -> Option<Bytes> {
        match self.events.blocking_recv() {
            Some(FileEvent::Chunk(chunk)) => {
                self.hasher.update(&chunk);
                *self.bytes += chunk.len() as u64;
                Some(chunk)
            }
            Some(FileEvent::End) => {
                self.ended = true;
                None
            }
            Some(FileEvent::Start { index }) => {
                self.signals.restart = Some(index);
                None
            }
            None => {
                self.signals.closed = true;
                None
            }
        }
    }

    fn interrupted(&self) -> std::io::Error {
        std::io::Error::other("result stream interrupted")
    }
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            let Some(chunk) = self.next_chunk() else {
                if self.ended {
                    return Ok(0);
                }
                return Err(self.interrupted());
            };
            if self.at_start {
                // The BOM may arrive split over chunks: gather its length first.
                let mut head = chunk.to_vec();
                while head.len() < BOM.len() && !self.ended {
                    match self.next_chunk() {
                        Some(more) => head.extend_from_slice(&more),
                        None if self.ended => break,
                        None => return Err(self.interrupted()),
                    }
                }
                self.at_start = false;
                let start = if head.starts_with(BOM) { BOM.len() } else { 0 };
                self.current = Bytes::from(head).slice(start..);
            } else {
                self.current = chunk;
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// The parser of one week's streamed result.
pub(crate) struct Parser {
    events: Receiver<FileEvent>,
    batches: Sender<Batch>,
    format: RowFormat,
    max_rows: usize,
    hasher: Sha256,
    bytes: u64,
    rows: usize,
    replaced: u64,
    columns: ColumnUnion,
    types: TypeObserver,
}

impl Parser {
    pub(crate) fn new(
        events: Receiver<FileEvent>,
        batches: Sender<Batch>,
        format: RowFormat,
        max_rows: usize,
    ) -> Self {
        Self {
            events,
            batches,
            format,
            max_rows,
            hasher: Sha256::new(),
            bytes: 0,
            rows: 0,
            replaced: 0,
            columns: ColumnUnion::default(),
            types: TypeObserver::default(),
        }
    }

    /// Parses every file until the download closes the stream.
    pub(crate) fn run(mut self) -> Result<ParseSummary, ParseError> {
        while let Some(event) = self.events.blocking_recv() {
            let FileEvent::Start { mut index } = event else {
                // Bytes outside a file cannot happen; a stream like that is not trusted.
                return Err(ParseError::Incomplete);
            };
            loop {
                // A file tried again starts from the state before its first try.
                let (hasher, bytes, rows, replaced, types) = (
                    self.hasher.clone(),
                    self.bytes,
                    self.rows,
                    self.replaced,
                    self.types.clone(),
                );
                match self.parse_file(index)? {
                    FileEnd::Done => break,
                    FileEnd::Restart(again) => {
                        send(
                            &self.batches,
                            Batch::Discard {
                                file: file_number(index)?,
                            },
                        )?;
                        (
                            self.hasher,
                            self.bytes,
                            self.rows,
                            self.replaced,
                            self.types,
                        ) = (hasher, bytes, rows, replaced, types);
                        index = again;
                    }
                }
            }
        }
        let column_types = self.types.finish(self.columns.names.len());
        Ok(ParseSummary {
            row_count: self.rows as i64,
            data_checksum: hex::encode(self.hasher.finalize()),
            columns: self.columns.names,
            column_types,
            replaced: self.replaced,
            bytes: self.bytes,
        })
    }

    fn parse_file(&mut self, index: usize) -> Result<FileEnd, ParseError> {
        let file = file_number(index)?;
        send(&self.batches, Batch::Begin { file })?;
        let reader = ChannelReader {
            events: &mut self.events,
            hasher: &mut self.hasher,
            bytes: &mut self.bytes,
            current: Bytes::new(),
            at_start: true,
            ended: false,
            signals: Signals::default(),
        };
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .buffer_capacity(CSV_BUFFER)
            .from_reader(reader);
        let header = match csv.byte_headers() {
            Ok(header) => header.clone(),
            Err(error) => return interruption(csv.get_ref(), index, error),
        };
        let names = column_names(index, &header).map_err(ParseError::Result)?;
        let keys = self.format.keys(&names);
        let positions = self.columns.add(names);
        let mut rows = FileRows::new(file, index);
        let mut record = csv::ByteRecord::new();
        loop {
            match csv.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(error) => return interruption(csv.get_ref(), index, error),
            }
            if self.rows >= self.max_rows {
                return Err(ParseError::Result(ResultError::TooManyRows {
                    limit: self.max_rows,
                }));
            }
            rows.push(&self.format, &keys, &record, &mut self.replaced)?;
            for (field, &position) in record.iter().zip(&positions) {
                self.types.observe(position, field);
            }
            self.rows += 1;
            if let Some(full) = rows.take_full() {
                send(&self.batches, Batch::Rows(full))?;
            }
        }
        if let Some(last) = rows.finish() {
            send(&self.batches, Batch::Rows(last))?;
        }
        send(&self.batches, Batch::End { file })?;
        Ok(FileEnd::Done)
    }
}

/// One file's rows on their way to the writer: the batch being filled and the next row's index.
struct FileRows {
    /// The file's position in the result, for errors.
    index: usize,
    batch: RowBatch,
    next_row: i32,
}

impl FileRows {
    fn new(file: i32, index: usize) -> Self {
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
    fn push(
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
    fn take_full(&mut self) -> Option<RowBatch> {
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
    fn finish(self) -> Option<RowBatch> {
        (self.batch.rows > 0).then_some(self.batch)
    }
}

/// A CSV error that came from the stream's signals (restart, download stopped), else a refusal.
fn interruption(
    reader: &ChannelReader<'_>,
    index: usize,
    error: csv::Error,
) -> Result<FileEnd, ParseError> {
    if let Some(again) = reader.signals.restart {
        return Ok(FileEnd::Restart(again));
    }
    if reader.signals.closed {
        return Err(ParseError::Incomplete);
    }
    Err(ParseError::Result(classify(index, error)))
}

fn send(batches: &Sender<Batch>, batch: Batch) -> Result<(), ParseError> {
    batches
        .blocking_send(batch)
        .map_err(|_| ParseError::WriterGone)
}

fn file_number(index: usize) -> Result<i32, ParseError> {
    i32::try_from(index).map_err(|_| {
        ParseError::Result(ResultError::Malformed {
            file: index,
            message: "too many result files".into(),
        })
    })
}
