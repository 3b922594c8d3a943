//! The one CSV reader of AMC result files, for a result held in memory (`parse_results`) and for
//! one streamed from its download (`crate::ingest`): the `csv` crate's incremental reader set up
//! one way, a UTF-8 byte-order mark dropped, the result's header taken from the first line of
//! its first file, each later file's first line read as a repeated header or as data
//! (`first_line`), and every data row counted against the row limit, numbered in its file and
//! checked to be UTF-8. What becomes of a row (a JSON object, a `COPY` line) is the caller's.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use csv::ByteRecord;

use super::{ResultError, MAX_COLUMNS, REPLACEMENT};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The result's header: the first line of its first file, and its fields as distinct names.
#[derive(Debug, Clone)]
pub struct Header {
    pub record: ByteRecord,
    pub names: Vec<String>,
}

/// Why reading stopped: the `csv` crate's error (the caller may know it came from its source,
/// e.g. a download started again) or a refusal of the content.
#[derive(Debug)]
pub enum ReadError {
    Csv(csv::Error),
    Result(ResultError),
}

impl ReadError {
    /// The refusal of file `file` this error means.
    pub fn refusal(self, file: usize) -> ResultError {
        match self {
            ReadError::Csv(error) => classify(file, error),
            ReadError::Result(error) => error,
        }
    }
}

impl From<ResultError> for ReadError {
    fn from(error: ResultError) -> Self {
        ReadError::Result(error)
    }
}

/// A CSV reader over one result file: every line a record (whether the first is a header is
/// decided against the result's, not assumed), every record as long as the first.
pub fn csv_reader<R: Read>(source: R, buffer: usize) -> csv::Reader<SkipBom<R>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .buffer_capacity(buffer)
        .from_reader(SkipBom::new(source))
}

/// What is read of a result over its files, in order: the header and the data rows so far.
#[derive(Debug)]
pub struct ResultReader {
    max_rows: usize,
    rows: usize,
    header: Option<Header>,
}

impl ResultReader {
    /// A result of at most `max_rows` data rows.
    pub fn new(max_rows: usize) -> Self {
        Self {
            max_rows,
            rows: 0,
            header: None,
        }
    }

    /// The header, once a file had a first line.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Data rows read over all files.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Forgets the rows read after `rows` were: a file downloaded again is read from its start.
    /// The header stays (the file's first line is then its repeat).
    pub fn rewind_rows(&mut self, rows: usize) {
        self.rows = self.rows.min(rows);
    }

    /// Reads file `index` (its position in the result) from `csv`.
    pub fn file<'a, R: Read>(
        &'a mut self,
        index: usize,
        csv: &'a mut csv::Reader<R>,
    ) -> FileReader<'a, R> {
        FileReader {
            result: self,
            csv,
            index,
            first: true,
            next_row: 0,
        }
    }
}

/// One file of a result being read.
pub struct FileReader<'a, R> {
    result: &'a mut ResultReader,
    csv: &'a mut csv::Reader<R>,
    index: usize,
    first: bool,
    /// The index in this file of the next data row.
    next_row: i32,
}

impl<R: Read> FileReader<'_, R> {
    /// Reads the file's next data row into `record`; false at the file's end.
    pub fn next_row(&mut self, record: &mut ByteRecord) -> Result<bool, ReadError> {
        if !self.read(record)? {
            return Ok(false);
        }
        if std::mem::take(&mut self.first) {
            let is_header = match &self.result.header {
                None => {
                    let names = column_names(self.index, record)?;
                    self.result.header = Some(Header {
                        record: record.clone(),
                        names,
                    });
                    true
                }
                Some(header) => {
                    first_line(self.index, &header.record, record)? == FirstLine::Header
                }
            };
            if is_header && !self.read(record)? {
                return Ok(false);
            }
        }
        if self.result.rows >= self.result.max_rows {
            return Err(ResultError::TooManyRows {
                limit: self.result.max_rows,
            }
            .into());
        }
        check_utf8(self.index, record)?;
        self.next_row = self
            .next_row
            .checked_add(1)
            .ok_or(ResultError::TooManyRows {
                limit: i32::MAX as usize,
            })?;
        self.result.rows += 1;
        Ok(true)
    }

    /// The index in its file of the row `next_row` read last.
    pub fn row_index(&self) -> i32 {
        self.next_row - 1
    }

    /// The result's header (once this or an earlier file had a first line).
    pub fn header(&self) -> Option<&Header> {
        self.result.header.as_ref()
    }

    fn read(&mut self, record: &mut ByteRecord) -> Result<bool, ReadError> {
        self.csv.read_byte_record(record).map_err(ReadError::Csv)
    }
}

/// Every field of a data row must be UTF-8 (the stored row is JSON text).
fn check_utf8(file: usize, record: &ByteRecord) -> Result<(), ResultError> {
    // ASCII, by far the usual case, is checked over the whole row at once.
    if record.as_slice().is_ascii() || record.iter().all(|f| std::str::from_utf8(f).is_ok()) {
        return Ok(());
    }
    Err(ResultError::NotUtf8 {
        file,
        record: record.position().map(|p| p.record()).unwrap_or_default(),
    })
}

/// `std::io::Read` without a leading UTF-8 byte-order mark (it would otherwise become part of the
/// first column's name), however the source splits its first bytes.
pub struct SkipBom<R> {
    inner: R,
    head: [u8; 3],
    head_len: usize,
    head_pos: usize,
    checked: bool,
}

impl<R> SkipBom<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            head: [0; 3],
            head_len: 0,
            head_pos: 0,
            checked: false,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.checked {
            while self.head_len < BOM.len() {
                let read = self.inner.read(&mut self.head[self.head_len..])?;
                if read == 0 {
                    break;
                }
                self.head_len += read;
            }
            self.checked = true;
            if self.head[..self.head_len] == *BOM {
                self.head_pos = self.head_len;
            }
        }
        if self.head_pos < self.head_len {
            let n = buf.len().min(self.head_len - self.head_pos);
            buf[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// Header names as JSON keys; a repeated name gets a `_2`, `_3`… suffix so no value is lost.
/// Linear in the number of names: each base name remembers its next suffix, so 10,000 copies of
/// one name cost 10,000 probes, not 10,000² (and a file over `MAX_COLUMNS` is refused first).
/// NUL in a name becomes U+FFFD, as in values.
pub fn column_names(file: usize, header: &ByteRecord) -> Result<Vec<String>, ResultError> {
    if header.len() > MAX_COLUMNS {
        return Err(ResultError::TooManyColumns {
            file,
            found: header.len(),
            limit: MAX_COLUMNS,
        });
    }
    let mut names: Vec<String> = Vec::with_capacity(header.len());
    let mut taken: HashSet<String> = HashSet::with_capacity(header.len());
    let mut next_suffix: HashMap<String, usize> = HashMap::new();
    for field in header.iter() {
        let base = std::str::from_utf8(field)
            .map_err(|_| ResultError::NotUtf8 { file, record: 0 })?
            .replace('\0', REPLACEMENT);
        if taken.insert(base.clone()) {
            names.push(base);
            continue;
        }
        let suffix = next_suffix.entry(base.clone()).or_insert(2);
        loop {
            let name = format!("{base}_{suffix}");
            *suffix += 1;
            if taken.insert(name.clone()) {
                names.push(name);
                break;
            }
        }
    }
    Ok(names)
}

/// What the first line of a result file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLine {
    /// The header (of the first file), or file 0's header repeated: skipped as data.
    Header,
    /// A data row: the file was written without a header.
    Data,
}

/// Reads the first line of split file `file` against the result's `header` (the first line of
/// file 0). Whether AMC repeats the header in every file is not documented (Amazon's "Get your
/// results" guide only says a large result comes as several files), so it is decided per file:
/// the same fields as the header are a repeated header; otherwise a line with as many fields is
/// data; anything else is refused, naming the file.
pub fn first_line(
    file: usize,
    header: &ByteRecord,
    line: &ByteRecord,
) -> Result<FirstLine, ResultError> {
    if line == header {
        Ok(FirstLine::Header)
    } else if line.len() == header.len() {
        Ok(FirstLine::Data)
    } else {
        Err(ResultError::UnexpectedFirstLine {
            file,
            found: line.len(),
            expected: header.len(),
        })
    }
}

/// The refusal a `csv` error means for file `file`.
fn classify(file: usize, error: csv::Error) -> ResultError {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            pos,
            expected_len,
            len,
        } => ResultError::RaggedRow {
            file,
            record: pos.as_ref().map(|p| p.record()).unwrap_or_default(),
            expected: *expected_len as usize,
            found: *len as usize,
        },
        csv::ErrorKind::Utf8 { pos, .. } => ResultError::NotUtf8 {
            file,
            record: pos.as_ref().map(|p| p.record()).unwrap_or_default(),
        },
        _ => ResultError::Malformed {
            file,
            message: error.to_string(),
        },
    }
}
