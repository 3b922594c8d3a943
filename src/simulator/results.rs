//! Result files of simulated executions: a pure, deterministic function of (instance, workflow
//! key, window start, window end) so tests can compute the expected bytes independently.

use chrono::NaiveDateTime;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// Format of window bounds as AMC accepts them (`yyyy-MM-ddTHH:mm:ss`).
pub(crate) const WINDOW_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Values that break naive CSV handling; each data row cycles through them so any file with
/// five or more rows carries all of them.
const NOTES: [&str; 5] = [
    "plain",
    "contains, a comma",
    "says \"hello\" loudly",
    "first line\nsecond line",
    "Café – 東京 ✓",
];

const CAMPAIGNS: [&str; 4] = [
    "Spring Sale",
    "Brand, Awareness",
    "Back to \"School\"",
    "Été – Ñandú",
];

/// The CSV files (each with its own header line) that the simulator serves for an execution of
/// `workflow_key` (see [`sql_workflow_key`]) on `instance` over `[start, end)`. `start`/`end` are window bounds as submitted
/// (`yyyy-MM-ddTHH:mm:ss`); they are normalised first, so `2024-01-01T00:00:00` and
/// `2024-01-01T00:00` give the same files. About 1 window in 8 yields header-only output and
/// about 1 in 4 is split into 2 or 3 files. `rows_scale` multiplies the row count.
pub fn expected_result_files(
    instance: &str,
    workflow_key: &str,
    start: &str,
    end: &str,
    rows_scale: f64,
) -> Vec<Vec<u8>> {
    let start = normalise_window_bound(start);
    let end = normalise_window_bound(end);
    let mut rng = StdRng::from_seed(window_seed(instance, workflow_key, &start, &end));

    let base_rows: u32 = if rng.gen_range(0..8) == 0 {
        0
    } else {
        rng.gen_range(1..=40)
    };
    let scale = if rows_scale.is_finite() && rows_scale > 0.0 {
        rows_scale
    } else {
        0.0
    };
    let rows = (f64::from(base_rows) * scale).round() as usize;
    let file_count = if rows > 0 && rng.gen_range(0..4) == 0 {
        rng.gen_range(2..=3)
    } else {
        1
    };
    let note_offset = rng.gen_range(0..NOTES.len());
    let week_start = start.get(..10).unwrap_or(&start).to_owned();

    let all_rows: Vec<[String; 5]> = (0..rows)
        .map(|row| {
            [
                week_start.clone(),
                CAMPAIGNS[rng.gen_range(0..CAMPAIGNS.len())].to_owned(),
                rng.gen_range(0..100_000u32).to_string(),
                rng.gen_range(0..1_000u32).to_string(),
                NOTES[(row + note_offset) % NOTES.len()].to_owned(),
            ]
        })
        .collect();

    let per_file = rows.div_ceil(file_count).max(1);
    (0..file_count)
        .map(|index| {
            let from = (index * per_file).min(rows);
            let to = ((index + 1) * per_file).min(rows);
            write_csv(&all_rows[from..to])
        })
        .collect()
}

/// The workflow key of an inline-SQL execution: `sql:` plus the first 12 hex digits of the
/// SHA-256 of `sql_query` exactly as sent. Saved workflows use their `workflowId` as the key.
pub fn sql_workflow_key(sql_query: &str) -> String {
    let digest = hex::encode(Sha256::digest(sql_query.as_bytes()));
    format!("sql:{}", &digest[..12])
}

/// Reformats a parseable window bound to the canonical `yyyy-MM-ddTHH:mm:ss`; anything else is
/// returned unchanged so the function stays total.
pub(crate) fn normalise_window_bound(raw: &str) -> String {
    parse_window_bound(raw)
        .map(|parsed| parsed.format(WINDOW_FORMAT).to_string())
        .unwrap_or_else(|| raw.to_owned())
}

/// Parses `yyyy-MM-ddTHH:mm:ss`, tolerating a missing seconds part or fractional seconds.
pub(crate) fn parse_window_bound(raw: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
}

fn window_seed(instance: &str, workflow_key: &str, start: &str, end: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [instance, workflow_key, start, end] {
        hasher.update(part.as_bytes());
        // A separator keeps ("ab","c") and ("a","bc") apart.
        hasher.update([0u8]);
    }
    hasher.finalize().into()
}

/// `files` as served with the headerless-continuation fault: every file after the first loses
/// its header line (its first line; generated headers hold no quoted line break), so a later
/// split file starts with data.
pub fn without_repeated_headers(mut files: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    for file in files.iter_mut().skip(1) {
        let data = file
            .iter()
            .position(|&byte| byte == b'\n')
            .map_or(file.len(), |end| end + 1);
        file.drain(..data);
    }
    files
}

fn write_csv(rows: &[[String; 5]]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let header = ["week_start", "campaign", "impressions", "clicks", "note"];
    // Writing to a Vec cannot fail, so the results are ignored rather than unwrapped.
    let _ = writer.write_record(header);
    for row in rows {
        let _ = writer.write_record(row);
    }
    writer.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_rows(file: &[u8]) -> usize {
        let mut reader = csv::Reader::from_reader(file);
        assert!(csv::Reader::from_reader(file)
            .records()
            .all(|record| record.is_ok()));
        reader.records().filter(|record| record.is_ok()).count()
    }

    fn windows() -> impl Iterator<Item = (String, String)> {
        (0..200).map(|week| {
            let start = chrono::NaiveDate::from_ymd_opt(2023, 1, 2).unwrap()
                + chrono::Duration::weeks(week);
            let end = start + chrono::Duration::days(7);
            (format!("{start}T00:00:00"), format!("{end}T00:00:00"))
        })
    }

    #[test]
    fn result_files_are_deterministic_and_ignore_bound_spelling() {
        let first = expected_result_files(
            "amc1",
            "wf",
            "2024-01-01T00:00:00",
            "2024-01-08T00:00:00",
            1.0,
        );
        let again =
            expected_result_files("amc1", "wf", "2024-01-01T00:00", "2024-01-08T00:00:00", 1.0);
        assert_eq!(first, again);
        let other = expected_result_files(
            "amc2",
            "wf",
            "2024-01-01T00:00:00",
            "2024-01-08T00:00:00",
            1.0,
        );
        assert_ne!(first, other);
    }

    #[test]
    fn every_file_has_a_header_and_rows_parse_back_with_hostile_values() {
        let mut saw_empty = false;
        let mut saw_split = false;
        let mut saw_hostile = false;
        for (start, end) in windows() {
            let files = expected_result_files("amc1", "wf", &start, &end, 1.0);
            saw_split |= files.len() > 1;
            let rows: usize = files.iter().map(|file| data_rows(file)).sum();
            saw_empty |= rows == 0;
            for file in &files {
                assert!(file.starts_with(b"week_start,campaign,impressions,clicks,note\n"));
                let text = String::from_utf8(file.clone()).unwrap();
                saw_hostile |= text.contains("東京") && text.contains("\"\"hello\"\"");
            }
            assert!(rows <= 40);
        }
        assert!(saw_empty && saw_split && saw_hostile);
    }

    #[test]
    fn headerless_continuation_keeps_the_first_header_and_every_data_row() {
        let files = vec![b"a,b\n1,2\n".to_vec(), b"a,b\n3,4\n".to_vec()];
        let served = without_repeated_headers(files);
        assert_eq!(served, vec![b"a,b\n1,2\n".to_vec(), b"3,4\n".to_vec()]);
    }

    #[test]
    fn rows_scale_zero_gives_a_single_header_only_file() {
        for (start, end) in windows().take(20) {
            let files = expected_result_files("amc1", "wf", &start, &end, 0.0);
            assert_eq!(files.len(), 1);
            assert_eq!(data_rows(&files[0]), 0);
        }
    }
}
