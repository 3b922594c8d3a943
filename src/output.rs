//! How collections are printed, by `collection list|show` and by the demo: the contract's JSON
//! shape and plain tables for people. Text
//! from outside (AMC ids and reasons, names) goes through `cell`, which escapes control
//! characters, so an ESC sequence or a newline in it cannot drive the terminal or break a row.

use std::collections::HashMap;

use serde_json::json;

use crate::escape::escape_controls;
use crate::ids::WeekId;
use crate::store::model::{Collection, CollectionSummary, Week};
use crate::store::Served;

/// `collection show --json` exactly as docs/contract.md defines it.
pub fn collection_json(collection: &Collection, weeks: &[Week]) -> serde_json::Value {
    json!({
        "id": collection.id,
        "status": collection.status,
        "weeks": weeks.iter().map(week_json).collect::<Vec<_>>(),
    })
}

fn week_json(week: &Week) -> serde_json::Value {
    json!({
        "week_start": week.week_start_date,
        "week_end": week.week_end_date,
        "status": week.status,
        "execution_id": week.execution_id,
        "amc_execution_id": week.amc_execution_id,
        "row_count": week.row_count,
        "data_checksum": week.data_checksum,
        "error_message": week.error_message,
        "attempts": week.attempts,
        "rows_dropped_at": week.rows_dropped_at,
    })
}

pub fn print_collection_list(collections: &[CollectionSummary]) {
    println!(
        "{:<36}  {:<9}  {:<20}  {:<14}  {:<10}  {:<10}  {:>9}",
        "ID", "STATUS", "WORKFLOW", "INSTANCE", "START", "END", "DONE/ALL"
    );
    for c in collections {
        println!(
            "{:<36}  {:<9}  {:<20}  {:<14}  {:<10}  {:<10}  {:>4}/{:<4}",
            c.id,
            c.status,
            cell(&c.workflow, 20),
            cell(&c.instance, 14),
            c.start_date,
            c.end_date,
            c.weeks_completed,
            c.weeks_total
        );
    }
}

/// Adds to each week of `collection_json` what it serves (`"serves"`: the execution whose rows
/// `export` returns for it, with that execution's AMC id, row count and checksum; null when it
/// serves none), by the one rule of `store::Served`.
pub fn add_served(json: &mut serde_json::Value, weeks: &[Week], served: &HashMap<WeekId, Served>) {
    if let Some(items) = json["weeks"].as_array_mut() {
        for (item, week) in items.iter_mut().zip(weeks) {
            item["serves"] = json!(served.get(&week.id));
        }
    }
}

pub fn print_collection(collection: &Collection, weeks: &[Week], served: &HashMap<WeekId, Served>) {
    let done = weeks
        .iter()
        .filter(|w| w.status == crate::status::WeekStatus::Completed)
        .count();
    println!("collection {}", collection.id);
    println!(
        "status {}  weeks {}/{} completed  {} .. {}  ({}, weeks start {})",
        collection.status,
        done,
        weeks.len(),
        collection.start_date,
        collection.end_date,
        collection.time_zone,
        collection.week_start_day
    );
    if let Some(error) = &collection.error_message {
        println!("error {}", escape_controls(error));
    }
    print_week_table(weeks);
    print_serving_notes(weeks, served);
}

/// One line per week that serves rows other than its own current execution's: a week being
/// collected again keeps serving the execution that completed it before.
fn print_serving_notes(weeks: &[Week], served: &HashMap<WeekId, Served>) {
    for week in weeks {
        let Some(serves) = served.get(&week.id) else {
            continue;
        };
        if week.execution_id == Some(serves.execution_id) {
            continue;
        }
        println!(
            "week {} is being collected again ({}); export serves execution {} (AMC id {}): {} rows, checksum {}",
            week.week_start_date,
            week.status,
            serves.execution_id,
            escape_controls(serves.amc_execution_id.as_deref().unwrap_or("")),
            serves.row_count.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
            serves.data_checksum.as_deref().map(|c| cell(c, 12)).unwrap_or_default(),
        );
    }
}

/// The per-week table shared by `collection show` and the demo's final report.
pub fn print_week_table(weeks: &[Week]) {
    println!(
        "{:<10}  {:<11}  {:>6}  {:<12}  {:<36}  {:<36}  ERROR",
        "WEEK", "STATUS", "ROWS", "CHECKSUM", "EXECUTION UUID", "AMC ID"
    );
    for week in weeks {
        println!(
            "{:<10}  {:<11}  {:>6}  {:<12}  {:<36}  {:<36}  {}",
            week.week_start_date,
            week.status,
            week.row_count.map(|n| n.to_string()).unwrap_or_default(),
            week.data_checksum
                .as_deref()
                .map(|c| cell(c, 12))
                .unwrap_or_default(),
            week.execution_id.map(|e| e.to_string()).unwrap_or_default(),
            escape_controls(week.amc_execution_id.as_deref().unwrap_or("")),
            note(week),
        );
    }
}

/// The last column: rows dropped by retention (export serves none of them), else the error.
fn note(week: &Week) -> String {
    let error = week.error_message.as_deref().map(|e| cell(e, 60));
    match (week.rows_dropped_at, error) {
        (Some(at), error) => format!(
            "rows dropped {} (keep_weeks){}",
            at.format("%Y-%m-%d"),
            error.map(|e| format!("; {e}")).unwrap_or_default()
        ),
        (None, error) => error.unwrap_or_default(),
    }
}

/// Outside text as a table cell: control characters escaped, then cut to `max` characters.
pub fn cell(text: &str, max: usize) -> String {
    truncate(&escape_controls(text), max)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars()
            .take(max.saturating_sub(1))
            .chain(['…'])
            .collect()
    }
}
