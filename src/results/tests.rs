//! Unit tests of reading result files: CSV edge cases, split files, limits.

use std::collections::HashSet;

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

/// A source that hands out one byte per read, as a download may split its first chunk.
struct OneByteAtATime<'a>(&'a [u8]);

impl std::io::Read for OneByteAtATime<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((&byte, rest)), Some(slot)) => {
                *slot = byte;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn a_byte_order_mark_is_dropped_however_the_source_splits_it_and_kept_in_the_checksum() {
    let file = b"\xEF\xBB\xBFa,b\n1,2\n";
    let parsed = parse_results(&[file.to_vec()], 10).unwrap();
    assert_eq!(parsed.columns, vec!["a", "b"]);
    assert_eq!(parsed.data_checksum, checksum(&[file.to_vec()]));
    let mut result = ResultReader::new(10);
    let mut csv = csv_reader(OneByteAtATime(file), 8);
    let mut reader = result.file(0, &mut csv);
    let mut record = csv::ByteRecord::new();
    assert!(reader.next_row(&mut record).unwrap());
    assert_eq!(reader.header().unwrap().names, vec!["a", "b"]);
    assert_eq!(record, csv::ByteRecord::from(vec!["1", "2"]));
    assert!(!reader.next_row(&mut record).unwrap());
    // Bytes that only begin like a mark are data; a file shorter than a mark is read whole.
    let parsed = parse_results(&[b"x\n\xEF\xBB\n".to_vec()], 10);
    assert!(
        matches!(parsed, Err(ResultError::NotUtf8 { .. })),
        "{parsed:?}"
    );
    assert_eq!(parse_results(&[b"x".to_vec()], 10).unwrap().columns, ["x"]);
}

#[test]
fn rows_are_numbered_in_their_file_and_counted_over_the_result() {
    let files = [b"a\n1\n2\n".to_vec(), b"a\n3\n".to_vec(), b"4\n".to_vec()];
    let parsed = parse_results(&files, 10).unwrap();
    let places: Vec<(i32, i32)> = parsed
        .rows
        .iter()
        .map(|row| (row.file_index, row.row_index))
        .collect();
    assert_eq!(places, vec![(0, 0), (0, 1), (1, 0), (2, 0)]);
    assert_eq!(
        parse_results(&files, 3).unwrap_err(),
        ResultError::TooManyRows { limit: 3 }
    );
}
