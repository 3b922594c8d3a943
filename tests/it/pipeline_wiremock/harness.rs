//! Helpers shared by the wiremock pipeline tests: fixtures, running the daemon against the fake
//! AMC, and reading back what was stored.

use std::time::Duration;

use amc_collector::config::Settings;
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::Week;
use amc_collector::store::{Store, WorkflowSource};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::fake_amc::{FakeAmc, Script};
use crate::support::pipeline::{fixture, run_until_idle, settings, weeks, Fixture};
use crate::support::Backend;

pub const SQL: &str = "SELECT campaign, SUM(impressions) FROM t\nWHERE d >= '{{start_date}}' AND d <= '{{end_date}}'\nGROUP BY 1;";

/// The happy path: one RUNNING answer before the terminal status.
pub fn script() -> Script {
    Script {
        running_polls: 1,
        ..Script::default()
    }
}

/// A UTC collection of `week_count` weeks of the inline-SQL workflow, and its weeks.
pub async fn sql_fixture(backend: Backend, week_count: i64) -> (Fixture, Vec<Week>) {
    let fx = fixture(backend, week_count, WorkflowSource::Sql(SQL.into())).await;
    let stored = weeks(&fx.store, fx.collection_id).await;
    (fx, stored)
}

pub async fn run_with(fx: &Fixture, amc: &FakeAmc, tune: impl FnOnce(&mut Settings)) {
    let mut settings = settings(&fx.db.url, &amc.base_url(), &amc.token_url());
    tune(&mut settings);
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;
}

pub async fn run(fx: &Fixture, amc: &FakeAmc) {
    run_with(fx, amc, |_| {}).await;
}

/// Lowercase hex SHA-256 of the files concatenated, computed here rather than by the crate.
pub fn sha256_of(files: &[Vec<u8>]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `data` objects stored for a week, in file then row order.
pub async fn stored_rows(store: &Store, week: &Week) -> Vec<Value> {
    let sql = "SELECT CAST(data AS TEXT) FROM report_data_rows WHERE week_id = $1 \
               ORDER BY file_index, row_index";
    let texts: Vec<String> = match store {
        Store::Postgres(pool) => sqlx::query_scalar(sql)
            .bind(week.id)
            .fetch_all(pool)
            .await
            .unwrap(),
        Store::Sqlite(pool) => sqlx::query_scalar(sql)
            .bind(week.id)
            .fetch_all(pool)
            .await
            .unwrap(),
    };
    texts
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

pub async fn collection_status(fx: &Fixture) -> (CollectionStatus, Option<String>) {
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    (collection.status, collection.error_message)
}

/// A completed week whose count, checksum and AMC id match what the fake served for its window.
#[track_caller]
pub fn assert_completed_with(week: &Week, amc: &FakeAmc, rows: i64) {
    assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
    let files = amc.script().files_for(week.week_start_date);
    assert_eq!(week.row_count, Some(rows), "{week:?}");
    assert_eq!(
        week.data_checksum.as_deref(),
        Some(sha256_of(&files).as_str())
    );
    let amc_ids = amc.amc_ids_for(week.week_start_date);
    assert_eq!(week.amc_execution_id.as_ref(), amc_ids.last(), "{week:?}");
    let internal = week
        .execution_id
        .expect("completed week has an execution_id");
    assert_ne!(Some(internal.to_string()), week.amc_execution_id);
}

pub fn header<'r>(request: &'r wiremock::Request, name: &str) -> Option<&'r str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}
