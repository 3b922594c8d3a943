//! How collections are printed, by `collection list|show` and by the demo: the contract's JSON
//! shape and plain tables for people. Text
//! from outside (AMC ids and reasons, names) goes through `cell`, which escapes control
//! characters, so an ESC sequence or a newline in it cannot drive the terminal or break a row.

use serde_json::json;

use crate::escape::escape_controls;
use crate::store::model::{Collection, CollectionSummary, Week};

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

pub fn print_collection(collection: &Collection, weeks: &[Week]) {
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
            week.error_message
                .as_deref()
                .map(|e| cell(e, 60))
                .unwrap_or_default(),
        );
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
