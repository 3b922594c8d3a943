//! Encoding one stored row: a JSON object keyed by column name, either as a plain JSON text
//! (SQLite binds it) or inside a Postgres `COPY ... FROM STDIN` text-format line, where every
//! backslash of the JSON is doubled (the JSON escapes every control character, so no raw tab or
//! newline can reach the line). NUL, which neither Postgres text nor JSONB can hold, becomes
//! U+FFFD and is counted.

use crate::ids::{CollectionId, ExecutionId, WeekId};

/// UTF-8 of U+FFFD.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// How rows are encoded for the writer.
#[derive(Debug, Clone)]
pub enum RowFormat {
    /// One `COPY` text line per row: `week_id, collection_id, execution_id, file_index,
    /// row_index, data`, tab-separated (the constant first three are `prefix`).
    Copy { prefix: Vec<u8> },
    /// The JSON text alone; the batch records where each row ends.
    Json,
}

impl RowFormat {
    /// The `COPY` format of a week's rows.
    pub fn copy_for(week: WeekId, collection: CollectionId, execution: ExecutionId) -> Self {
        RowFormat::Copy {
            prefix: format!("{week}\t{collection}\t{execution}\t").into_bytes(),
        }
    }

    pub(crate) fn copy(&self) -> bool {
        matches!(self, RowFormat::Copy { .. })
    }

    /// `"name":` of every column, escaped for this format.
    pub(crate) fn keys(&self, names: &[String]) -> Vec<Vec<u8>> {
        names
            .iter()
            .map(|name| {
                let mut key = Vec::with_capacity(name.len() + 3);
                let mut ignored = 0;
                push_json_string(&mut key, name.as_bytes(), self.copy(), &mut ignored);
                key.push(b':');
                key
            })
            .collect()
    }

    pub(crate) fn row_start(&self, out: &mut Vec<u8>, file: i32, row: i32) {
        if let RowFormat::Copy { prefix } = self {
            out.extend_from_slice(prefix);
            push_int(out, file);
            out.push(b'\t');
            push_int(out, row);
            out.push(b'\t');
        }
    }

    pub(crate) fn row_end(&self, out: &mut Vec<u8>, ends: &mut Vec<usize>) {
        match self {
            RowFormat::Copy { .. } => out.push(b'\n'),
            RowFormat::Json => ends.push(out.len()),
        }
    }
}

fn push_int(out: &mut Vec<u8>, value: i32) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{value}");
}

/// Appends `field` (valid UTF-8) as a quoted JSON string; `copy` doubles every backslash for the
/// `COPY` text format. NUL becomes U+FFFD and is counted in `replaced`.
pub(crate) fn push_json_string(out: &mut Vec<u8>, field: &[u8], copy: bool, replaced: &mut u64) {
    let backslash: &[u8] = if copy { b"\\\\" } else { b"\\" };
    out.push(b'"');
    let mut start = 0;
    for (i, &byte) in field.iter().enumerate() {
        let short: u8 = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0 => 0,
            1..=0x1f => 1,
            _ => continue,
        };
        out.extend_from_slice(&field[start..i]);
        start = i + 1;
        match short {
            0 => {
                out.extend_from_slice(REPLACEMENT);
                *replaced += 1;
            }
            1 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(backslash);
                out.extend_from_slice(b"u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
            b'\\' => {
                out.extend_from_slice(backslash);
                out.extend_from_slice(backslash);
            }
            letter => {
                out.extend_from_slice(backslash);
                out.push(letter);
            }
        }
    }
    out.extend_from_slice(&field[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(field: &str) -> (String, u64) {
        let mut out = Vec::new();
        let mut replaced = 0;
        push_json_string(&mut out, field.as_bytes(), false, &mut replaced);
        (String::from_utf8(out).unwrap(), replaced)
    }

    #[test]
    fn json_strings_round_trip_through_serde_for_hostile_text() {
        for text in [
            "plain",
            "a \"q\" \\ b",
            "line1\nline2\r\t",
            "\u{1}\u{1f}",
            "Café – 東京 ✓",
        ] {
            let (encoded, replaced) = json(text);
            assert_eq!(replaced, 0);
            let back: String = serde_json::from_str(&encoded).unwrap();
            assert_eq!(back, text);
        }
    }

    #[test]
    fn nul_becomes_the_replacement_character_and_is_counted() {
        let (encoded, replaced) = json("a\0b\0");
        assert_eq!(replaced, 2);
        let back: String = serde_json::from_str(&encoded).unwrap();
        assert_eq!(back, "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn copy_lines_double_every_backslash_and_hold_no_raw_control_character() {
        let mut out = Vec::new();
        let mut replaced = 0;
        push_json_string(&mut out, b"x\\y\"\n\t", true, &mut replaced);
        let line = String::from_utf8(out).unwrap();
        assert!(!line.contains(['\n', '\t', '\r']));
        // Undoing COPY's escaping gives the JSON text back.
        let json = line.replace("\\\\", "\\");
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, "x\\y\"\n\t");
    }
}
