//! The CPU half of ingest, on a blocking thread: it reads the streamed files (`FileEvent`s from a
//! bounded channel) through SHA-256 and the `csv` crate's incremental reader, and turns every
//! record into the stored row (a JSON object keyed by column name) already encoded for the
//! backend: `COPY` text lines for Postgres, JSON texts for SQLite. Encoded rows leave in batches
//! of about `BATCH_BYTES` over another bounded channel, so neither a file nor a week is ever held.

use std::io::Read;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{Receiver, Sender};

use super::encode::RowFormat;
use super::rows::FileRows;
use crate::amc::FileEvent;
use crate::results::{
    check_metadata, classify, column_names, first_line, ColumnUnion, FirstLine, ResultError,
};
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
            // Metadata comes before the files; one inside a file is not trusted.
            Some(FileEvent::Metadata(_)) => None,
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
    /// The result's header (the first line of the first file that has one) and its keys as
    /// encoded for the format; later files are read against it (`header::first_line`).
    header: Option<(csv::ByteRecord, Vec<Vec<u8>>, Vec<usize>)>,
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
            max_rows,
            hasher: Sha256::new(),
            bytes: 0,
            rows: 0,
            replaced: 0,
            columns: ColumnUnion::default(),
            types: TypeObserver::default(),
            header: None,
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
        if let Some(metadata) = &self.metadata {
            let header: Vec<String> = match &self.header {
                Some((names, _, _)) => names
                    .iter()
                    .map(|name| String::from_utf8_lossy(name).into_owned())
                    .collect(),
                None => Vec::new(),
            };
            check_metadata(metadata, self.rows as i64, &header).map_err(ParseError::Result)?;
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
        // Every line is read as a record: whether a file's first line is a header is decided
        // against the result's header (`header::first_line`), not assumed.
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(false)
            .buffer_capacity(CSV_BUFFER)
            .from_reader(reader);
        let mut record = csv::ByteRecord::new();
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            // An empty file: nothing to store.
            Ok(false) => {
                send(&self.batches, Batch::End { file })?;
                return Ok(FileEnd::Done);
            }
            Err(error) => return interruption(csv.get_ref(), index, error),
        }
        let first = match &self.header {
            None => FirstLine::Header,
            Some((header, _, _)) => {
                first_line(index, header, &record).map_err(ParseError::Result)?
            }
        };
        if first == FirstLine::Header && self.header.is_none() {
            let names = column_names(index, &record).map_err(ParseError::Result)?;
            let keys = self.format.keys(&names);
            let positions = self.columns.add(names);
            self.header = Some((record.clone(), keys, positions));
        }
        let (keys, positions) = match &self.header {
            Some((_, keys, positions)) => (keys.clone(), positions.clone()),
            None => (Vec::new(), Vec::new()),
        };
        let mut pending = (first == FirstLine::Data).then(|| record.clone());
        let mut rows = FileRows::new(file, index);
        loop {
            if let Some(data) = pending.take() {
                record = data;
            } else {
                match csv.read_byte_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(error) => return interruption(csv.get_ref(), index, error),
                }
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
