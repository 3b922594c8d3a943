//! Turning downloaded AMC result files into stored rows, `row_count` and `data_checksum`.
//!
//! docs/contract.md: `row_count` counts data rows (headers excluded) over all files; `data_checksum` is
//! the lowercase hex SHA-256 of the files' bytes concatenated in `downloadUrls` order, exactly as
//! downloaded. Parsing uses the `csv` crate (quoted commas, quotes and newlines are data), and any
//! hostile file (ragged rows, non-UTF-8, too many rows) fails the week with a reason instead of
//! storing half a result.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::store::ResultRow;

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
    pub rows: Vec<ResultRow>,
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
    let mut rows = Vec::new();
    let mut header: Option<(csv::ByteRecord, Vec<String>)> = None;
    for (file_index, bytes) in files.iter().enumerate() {
        parse_file(file_index, bytes.as_ref(), max_rows, &mut header, &mut rows)?;
    }
    Ok(ParsedResult {
        columns: header.map(|(_, names)| names).unwrap_or_default(),
        row_count: rows.len() as i64,
        data_checksum: checksum(files),
        rows,
    })
}

fn parse_file(
    file: usize,
    bytes: &[u8],
    max_rows: usize,
    header: &mut Option<(csv::ByteRecord, Vec<String>)>,
    rows: &mut Vec<ResultRow>,
) -> Result<(), ResultError> {
    // A UTF-8 byte-order mark would otherwise become part of the first column's name.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut row_index: i32 = 0;
    let mut first = true;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(error) => return Err(classify(file, error)),
        }
        if std::mem::take(&mut first) {
            match header {
                None => {
                    *header = Some((record.clone(), column_names(file, &record)?));
                    continue;
                }
                Some((names, _)) if first_line(file, names, &record)? == FirstLine::Header => {
                    continue
                }
                Some(_) => {}
            }
        }
        let Some((_, names)) = header.as_ref() else {
            continue;
        };
        if rows.len() >= max_rows {
            return Err(ResultError::TooManyRows { limit: max_rows });
        }
        let number = record.position().map(|p| p.record()).unwrap_or_default();
        let mut object = Map::with_capacity(names.len());
        for (name, field) in names.iter().zip(record.iter()) {
            let text = std::str::from_utf8(field).map_err(|_| ResultError::NotUtf8 {
                file,
                record: number,
            })?;
            object.insert(name.clone(), Value::String(text.replace('\0', REPLACEMENT)));
        }
        rows.push(ResultRow {
            file_index: file as i32,
            row_index,
            data: Value::Object(object),
        });
        row_index += 1;
    }
}

/// Header names as JSON keys; a repeated name gets a `_2`, `_3`… suffix so no value is lost.
/// Linear in the number of names: each base name remembers its next suffix, so 10,000 copies of
/// one name cost 10,000 probes, not 10,000² (and a file over `MAX_COLUMNS` is refused first).
/// NUL in a name becomes U+FFFD, as in values.
pub fn column_names(file: usize, header: &csv::ByteRecord) -> Result<Vec<String>, ResultError> {
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
    header: &csv::ByteRecord,
    line: &csv::ByteRecord,
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

pub(crate) fn classify(file: usize, error: csv::Error) -> ResultError {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_commas_quotes_newlines_and_non_ascii_survive_parsing() {
        let file = "name,note\n\"a, b\",\"say \"\"hi\"\"\"\n\"line1\nline2\",Café – 東京 ✓\n";
        let parsed = parse_results(&[file.as_bytes()], 100).unwrap();
        assert_eq!(parsed.row_count, 2);
        assert_eq!(parsed.rows[0].data["name"], "a, b");
        assert_eq!(parsed.rows[0].data["note"], "say \"hi\"");
        assert_eq!(parsed.rows[1].data["name"], "line1\nline2");
        assert_eq!(parsed.rows[1].data["note"], "Café – 東京 ✓");
    }

    #[test]
    fn rows_of_all_files_are_counted_without_headers_and_checksummed_in_order() {
        let files = [b"a,b\n1,2\n".to_vec(), b"a,b\n3,4\n5,6\n".to_vec()];
        let parsed = parse_results(&files, 100).unwrap();
        assert_eq!(parsed.row_count, 3);
        assert_eq!(parsed.rows[2].file_index, 1);
        assert_eq!(parsed.rows[2].row_index, 1);
        let mut all = files[0].clone();
        all.extend_from_slice(&files[1]);
        assert_eq!(parsed.data_checksum, hex::encode(Sha256::digest(&all)));
    }

    #[test]
    fn a_later_file_without_a_header_is_read_as_data_under_file_zeros_header() {
        let files = [b"a,b\n1,2\n".to_vec(), b"3,4\n5,6\n".to_vec()];
        let parsed = parse_results(&files, 100).unwrap();
        assert_eq!(parsed.row_count, 3);
        assert_eq!(parsed.rows[1].data["a"], "3");
        assert_eq!(parsed.rows[2].data["b"], "6");
        assert_eq!(parsed.columns, vec!["a", "b"]);
    }

    #[test]
    fn a_later_file_whose_first_line_fits_neither_header_nor_data_is_refused_naming_it() {
        let files = [b"a,b\n1,2\n".to_vec(), b"x,y,z\n3,4,5\n".to_vec()];
        let error = parse_results(&files, 100).unwrap_err();
        assert_eq!(
            error,
            ResultError::UnexpectedFirstLine {
                file: 1,
                found: 3,
                expected: 2
            }
        );
        assert!(error.to_string().starts_with("result file 1:"), "{error}");
    }

    #[test]
    fn header_only_and_empty_files_have_zero_rows() {
        let parsed = parse_results(&[b"a,b\n".to_vec(), Vec::new()], 10).unwrap();
        assert_eq!(parsed.row_count, 0);
        assert_eq!(parsed.data_checksum, checksum(&[b"a,b\n".to_vec()]));
    }

    #[test]
    fn a_row_with_a_different_column_count_is_refused() {
        let error = parse_results(&[b"a,b\n1,2\n3\n".to_vec()], 10).unwrap_err();
        assert!(
            matches!(
                error,
                ResultError::RaggedRow {
                    expected: 2,
                    found: 1,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn non_utf8_bytes_are_refused() {
        let error = parse_results(&[b"a,b\n1,\xff\xfe\n".to_vec()], 10).unwrap_err();
        assert!(matches!(error, ResultError::NotUtf8 { .. }), "{error}");
    }

    #[test]
    fn too_many_rows_are_refused() {
        let error = parse_results(&[b"a\n1\n2\n3\n".to_vec()], 2).unwrap_err();
        assert_eq!(error, ResultError::TooManyRows { limit: 2 });
    }

    #[test]
    fn ten_thousand_copies_of_one_header_name_are_refused_as_too_many_columns() {
        let header = vec!["x"; 10_000].join(",") + "\n";
        let error = parse_results(&[header.into_bytes()], 10).unwrap_err();
        assert!(
            matches!(error, ResultError::TooManyColumns { found: 10_000, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("more than the limit of 4096"));
    }

    #[test]
    fn four_thousand_copies_of_one_name_get_distinct_suffixes_in_linear_time() {
        let header = csv::ByteRecord::from(vec!["x"; MAX_COLUMNS]);
        let names = column_names(0, &header).unwrap();
        assert_eq!(names.len(), MAX_COLUMNS);
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), MAX_COLUMNS);
        assert_eq!(names[MAX_COLUMNS - 1], format!("x_{MAX_COLUMNS}"));
        // A name that already looks like a suffixed one is not overwritten.
        let names = column_names(0, &csv::ByteRecord::from(vec!["x", "x_2", "x"])).unwrap();
        assert_eq!(names, vec!["x", "x_2", "x_3"]);
    }

    #[test]
    fn repeated_header_names_keep_every_value() {
        let parsed = parse_results(&[b"x,x\n1,2\n".to_vec()], 10).unwrap();
        assert_eq!(parsed.rows[0].data["x"], "1");
        assert_eq!(parsed.rows[0].data["x_2"], "2");
        assert_eq!(parsed.columns, vec!["x", "x_2"]);
    }
}
