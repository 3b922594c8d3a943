//! The CPU half of ingest, on a blocking thread: it reads the streamed files (`FileEvent`s from a
//! bounded channel) through SHA-256 and the result reader (`crate::results::ResultReader`, the
//! `csv` crate's incremental reader), and turns every data row into the stored row (a JSON object
//! keyed by column name) already encoded for the backend: `COPY` text lines for Postgres, JSON
//! texts for SQLite. Encoded rows leave in batches of about `rows::BATCH_BYTES` over another
//! bounded channel, so neither a file nor a week is ever held.

use std::io::Read;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{Receiver, Sender};

use super::encode::RowFormat;
use super::rows::FileRows;
use crate::amc::FileEvent;
use crate::results::{check_metadata, csv_reader, ReadError, ResultError, ResultReader};
use crate::results_tables::{ColumnType, TypeObserver};
use crate::store::StagingBatch as Batch;

/// Buffer of the CSV reader (it reads the channel in pieces of this size at most).
const CSV_BUFFER: usize = 64 * 1024;

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

/// `std::io::Read` over one file's chunks; hashes every byte as received.
struct ChannelReader<'a> {
    events: &'a mut Receiver<FileEvent>,
    hasher: &'a mut Sha256,
    bytes: &'a mut u64,
    current: Bytes,
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
            // Metadata comes before the files; one inside a file is not trusted.
            Some(FileEvent::Metadata(_)) => None,
            None => {
                self.signals.closed = true;
                None
            }
        }
    }
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.next_chunk() {
                Some(chunk) => self.current = chunk,
                None if self.ended => return Ok(0),
                None => return Err(std::io::Error::other("result stream interrupted")),
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
    hasher: Sha256,
    bytes: u64,
    replaced: u64,
    result: ResultReader,
    types: TypeObserver,
    /// The header's names as encoded for the format, once the result has a header.
    keys: Option<Vec<Vec<u8>>>,
    /// What AMC's metadata file says about the result, checked once every file is read.
    metadata: Option<crate::amc::ResultMetadata>,
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
            hasher: Sha256::new(),
            bytes: 0,
            replaced: 0,
            result: ResultReader::new(max_rows),
            types: TypeObserver::default(),
            keys: None,
            metadata: None,
        }
    }

    /// Parses every file until the download closes the stream.
    pub(crate) fn run(mut self) -> Result<ParseSummary, ParseError> {
        while let Some(event) = self.events.blocking_recv() {
            let mut index = match event {
                FileEvent::Start { index } => index,
                FileEvent::Metadata(metadata) => {
                    self.metadata = Some(metadata);
                    continue;
                }
                // Bytes outside a file cannot happen; a stream like that is not trusted.
                FileEvent::Chunk(_) | FileEvent::End => return Err(ParseError::Incomplete),
            };
            loop {
                // A file tried again starts from the state before its first try.
                let (hasher, bytes, rows, replaced, types) = (
                    self.hasher.clone(),
                    self.bytes,
                    self.result.rows(),
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
                        self.result.rewind_rows(rows);
                        (self.hasher, self.bytes, self.replaced, self.types) =
                            (hasher, bytes, replaced, types);
                        index = again;
                    }
                }
            }
        }
        let row_count = self.result.rows() as i64;
        if let Some(metadata) = &self.metadata {
            let header: Vec<String> = match self.result.header() {
                Some(header) => header
                    .record
                    .iter()
                    .map(|name| String::from_utf8_lossy(name).into_owned())
                    .collect(),
                None => Vec::new(),
            };
            check_metadata(metadata, row_count, &header).map_err(ParseError::Result)?;
        }
        let columns = match self.result.header() {
            Some(header) => header.names.clone(),
            None => Vec::new(),
        };
        Ok(ParseSummary {
            row_count,
            data_checksum: hex::encode(self.hasher.finalize()),
            column_types: self.types.finish(columns.len()),
            columns,
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
            ended: false,
            signals: Signals::default(),
        };
        let mut csv = csv_reader(reader, CSV_BUFFER);
        let mut result = self.result.file(index, &mut csv);
        let mut record = csv::ByteRecord::new();
        let mut rows = FileRows::new(file);
        loop {
            match result.next_row(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                // `result` is not used again on this path, so `csv` is free to be asked.
                Err(ReadError::Csv(error)) => {
                    return interruption(csv.get_ref().get_ref(), index, error)
                }
                Err(ReadError::Result(error)) => return Err(ParseError::Result(error)),
            }
            let format = &self.format;
            let keys = match &mut self.keys {
                Some(keys) => keys,
                keys @ None => {
                    let names = result.header().map_or(&[][..], |h| &h.names[..]);
                    keys.insert(format.keys(names))
                }
            };
            rows.push(
                format,
                keys,
                &record,
                result.row_index(),
                &mut self.replaced,
            );
            for (position, field) in record.iter().enumerate() {
                self.types.observe(position, field);
            }
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
    Err(ParseError::Result(ReadError::Csv(error).refusal(index)))
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
