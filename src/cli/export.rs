//! `collection export ID --format csv|jsonl [--output FILE]`: every stored row with its week and
//! execution UUID, streamed. With `--output` the file appears only when complete, and only
//! where nothing but a regular file the operator agreed to replace (`--force`) was
//! (`output_file.rs`).
//!
//! `--excel-safe` (CSV only) neutralises formula injection for people who open the export in a
//! spreadsheet (OWASP "CSV Injection"): a cell starting with `=`, `+`, `-`, `@`, tab or carriage
//! return gets a leading single quote, so the spreadsheet shows text instead of evaluating it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use super::control::open_for_collection;
use super::output_file::OutputFile;
use super::CliError;
use crate::config::Settings;
use crate::ids::CollectionId;
use crate::results_tables::export_headers;
use crate::store::{ExportRow, Store};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Collection id (fleet id for `fleet export`), or a unique prefix of it (at least 8
    /// characters).
    pub id: String,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// File to write (default: standard output); refused when it exists, unless --force.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Replace an existing --output file (a regular file only, keeping its permissions).
    #[arg(long, requires = "output")]
    pub force: bool,
    /// CSV for spreadsheets: cells starting with = + - @, tab or CR get a leading ' so they are
    /// not evaluated as formulas (negative numbers then read as text too).
    #[arg(long)]
    pub excel_safe: bool,
}

/// The column a fleet's export adds first: the AMC instance id the row came from.
const INSTANCE: &str = "instance_id";

/// Columns every exported row starts with.
const FIXED: [&str; 5] = [
    "week_start",
    "week_end",
    "execution_id",
    "file_index",
    "row_index",
];

/// One collection an export reads, with its `instance_id` column's value in a fleet's export.
pub(super) struct Source {
    pub id: CollectionId,
    pub instance: Option<String>,
}

pub async fn run(args: ExportArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    let target = prepare(&args)?;
    let (store, id) = open_for_collection(&args.id, settings).await?;
    write(&store, &[Source { id, instance: None }], &args, target).await
}

/// Checks the arguments and the target before any work: a bad one is refused without exporting.
pub(super) fn prepare(args: &ExportArgs) -> Result<Option<OutputFile>, CliError> {
    if args.excel_safe && !matches!(args.format, Format::Csv) {
        return Err(CliError::Usage(
            "--excel-safe applies to --format csv only (JSON lines are not opened as a sheet)"
                .into(),
        ));
    }
    match &args.output {
        Some(path) => Ok(Some(OutputFile::prepare(path, args.force)?)),
        None => Ok(None),
    }
}

/// Exports the rows of `sources`, one after the other, to the target (standard output without).
pub(super) async fn write(
    store: &Store,
    sources: &[Source],
    args: &ExportArgs,
    target: Option<OutputFile>,
) -> Result<ExitCode, CliError> {
    let mut columns: Vec<String> = Vec::new();
    for source in sources {
        for name in store
            .result_columns(source.id)
            .await
            .map_err(anyhow::Error::from)?
        {
            if !columns.contains(&name) {
                columns.push(name);
            }
        }
    }
    let writer: Box<dyn Write> = match &target {
        Some(target) => Box::new(std::io::BufWriter::new(target.writer()?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let count = match args.format {
        Format::Csv => export_csv(store, sources, &columns, args.excel_safe, writer).await,
        Format::Jsonl => export_jsonl(store, sources, writer).await,
    };
    let count = match &target {
        Some(target) => count.map_err(|error| target.name_in(error))?,
        None => count?,
    };
    if let (Some(target), Some(path)) = (target, &args.output) {
        target.commit()?;
        eprintln!("{count} rows written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn export_csv(
    store: &Store,
    sources: &[Source],
    columns: &[String],
    excel_safe: bool,
    writer: Box<dyn Write>,
) -> Result<u64, CliError> {
    let mut csv = csv::Writer::from_writer(writer);
    let cell = |text: String| {
        if excel_safe {
            excel_safe_cell(text)
        } else {
            text
        }
    };
    // A fleet's export starts each row with the instance it came from.
    let fleet = sources.iter().any(|s| s.instance.is_some());
    let fixed: Vec<&str> = fleet
        .then_some(INSTANCE)
        .into_iter()
        .chain(FIXED.iter().copied())
        .collect();
    // Column names come from AMC's result headers: made unique against export's own columns
    // (a result column `week_start` must not pass for the week), then neutralised like values.
    let header = fixed
        .iter()
        .map(|s| s.to_string())
        .chain(export_headers(&fixed, columns).into_iter().map(cell));
    csv.write_record(header)
        .map_err(|e| CliError::Runtime(e.into()))?;
    let mut count = 0;
    for source in sources {
        count += store
            .export_rows(source.id, |row: ExportRow| {
                let mut record: Vec<String> = source.instance.iter().cloned().map(cell).collect();
                record.extend([
                    row.week_start.to_string(),
                    row.week_end.to_string(),
                    row.execution_id.to_string(),
                    row.file_index.to_string(),
                    row.row_index.to_string(),
                ]);
                record.extend(
                    columns
                        .iter()
                        .map(|name| cell(text_of(row.data.0.get(name)))),
                );
                csv.write_record(&record).map_err(std::io::Error::other)
            })
            .await
            .map_err(anyhow::Error::from)?;
    }
    csv.flush().map_err(|e| CliError::Runtime(e.into()))?;
    Ok(count)
}

async fn export_jsonl(
    store: &Store,
    sources: &[Source],
    mut writer: Box<dyn Write>,
) -> Result<u64, CliError> {
    let mut count = 0;
    for source in sources {
        count += store
            .export_rows(source.id, |row: ExportRow| {
                let mut line = json!({
                    "week_start": row.week_start,
                    "week_end": row.week_end,
                    "execution_id": row.execution_id,
                    "file_index": row.file_index,
                    "row_index": row.row_index,
                    "data": row.data.0,
                });
                if let Some(instance) = &source.instance {
                    line[INSTANCE] = json!(instance);
                }
                writeln!(writer, "{line}")
            })
            .await
            .map_err(anyhow::Error::from)?;
    }
    writer.flush().map_err(|e| CliError::Runtime(e.into()))?;
    Ok(count)
}

/// A cell a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, CR first) made plain text by a
/// leading single quote; any other cell is returned unchanged.
fn excel_safe_cell(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_evaluate_get_a_leading_quote() {
        for (given, expected) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1+cmd", "'+1+cmd"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\r=1", "'\r=1"),
        ] {
            assert_eq!(excel_safe_cell(given.into()), expected, "{given:?}");
        }
    }

    #[test]
    fn other_cells_are_left_as_they_are() {
        for given in ["", "alpha", "10", "a=b", " =1", "'quoted", "2024-01-01"] {
            assert_eq!(excel_safe_cell(given.into()), given);
        }
    }
}
