//! What must hold after the chaos: read from the database tables and the simulator's counters,
//! never from the daemon's own reports.

use std::collections::BTreeMap;

use amc_collector::actors::collection::prepare_sql;
use amc_collector::ids::CollectionId;
use amc_collector::simulator::{expected_result_files, sql_workflow_key};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::Week;
use amc_collector::store::Store;
use sha2::{Digest, Sha256};

use crate::support::pipeline::{assert_completed_weeks_are_traceable, stored_row_count, weeks};

/// Figures of one chaos run, printed as the summary line.
#[derive(Debug, Default)]
pub struct Figures {
    pub weeks: usize,
    pub weeks_lost: usize,
    pub duplicate_rows: i64,
    pub duplicate_creates: u64,
    pub rows: i64,
    pub faults: BTreeMap<&'static str, u64>,
    /// Most executions PENDING, RUNNING or PUBLISHING at once on AMC for the instance.
    pub max_in_flight: u64,
}

/// The window key of `creates_per_window` for a week of `sql` on `instance`, in UTC.
fn window_key(instance: &str, sql: &str, week: &Week) -> String {
    let prepared = prepare_sql(sql, week.week_start_date, week.week_end_date).unwrap();
    let end = week.week_end_date + chrono::Duration::days(1);
    format!(
        "{instance}|{}|{}T00:00:00|{end}T00:00:00|UTC",
        sql_workflow_key(&prepared),
        week.week_start_date
    )
}

/// The bytes the simulator serves for a week, computed independently of the daemon.
fn expected_files(instance: &str, sql: &str, week: &Week) -> Vec<Vec<u8>> {
    let prepared = prepare_sql(sql, week.week_start_date, week.week_end_date).unwrap();
    let end = week.week_end_date + chrono::Duration::days(1);
    expected_result_files(
        instance,
        &sql_workflow_key(&prepared),
        &format!("{}T00:00:00", week.week_start_date),
        &format!("{end}T00:00:00"),
        1.0,
    )
}

fn sha256_hex(files: &[Vec<u8>]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file);
    }
    hex::encode(hasher.finalize())
}

/// One `COUNT(*)`-like scalar bound to the collection id, on either backend.
async fn scalar(store: &Store, sql: &str, id: CollectionId) -> i64 {
    match store {
        Store::Postgres(pool) => sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap(),
        Store::Sqlite(pool) => sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

/// Weeks of the collection by status, e.g. `{"running": 3, "pending": 9, ...}`: where an
/// interruption landed.
pub async fn week_phases(store: &Store, id: CollectionId) -> BTreeMap<String, i64> {
    let sql = "SELECT status, COUNT(*) FROM report_data_weeks WHERE collection_id = $1 \
               GROUP BY status";
    let rows: Vec<(String, i64)> = match store {
        Store::Postgres(pool) => sqlx::query_as(sql).bind(id).fetch_all(pool).await.unwrap(),
        Store::Sqlite(pool) => sqlx::query_as(sql).bind(id).fetch_all(pool).await.unwrap(),
    };
    rows.into_iter().collect()
}

fn counter(stats: &serde_json::Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter `{name}` in simulator stats: {stats}"))
}

/// Asserts that nothing was lost or duplicated and returns the figures. `context` (seed, log
/// digest) is appended to every failure message.
pub async fn assert_nothing_lost_or_duplicated(
    store: &Store,
    id: CollectionId,
    instance: &str,
    sql: &str,
    expected_weeks: usize,
    stats: &serde_json::Value,
    context: &str,
) -> Figures {
    let stored = weeks(store, id).await;
    assert_eq!(stored.len(), expected_weeks, "{context}");
    let creates = stats["creates_per_window"]
        .as_object()
        .unwrap_or_else(|| panic!("no creates_per_window: {stats}"));
    let mut figures = Figures {
        weeks: stored.len(),
        ..Figures::default()
    };
    let mut row_count_sum = 0;
    for week in &stored {
        let label = format!("week {} ({:?})", week.week_start_date, week.status);
        if week.status != WeekStatus::Completed {
            figures.weeks_lost += 1;
        }
        assert_eq!(
            week.status,
            WeekStatus::Completed,
            "{label} not completed: {week:?}\n{context}"
        );
        let files = expected_files(instance, sql, week);
        assert_eq!(
            week.data_checksum.as_deref(),
            Some(sha256_hex(&files).as_str()),
            "{label}: checksum\n{context}"
        );
        let expected_rows = amc_collector::results::parse_results(&files, usize::MAX)
            .unwrap()
            .row_count;
        assert_eq!(
            week.row_count,
            Some(expected_rows),
            "{label}: row_count\n{context}"
        );
        assert_eq!(
            stored_row_count(store, week).await,
            expected_rows,
            "{label}: stored rows\n{context}"
        );
        row_count_sum += expected_rows;
        let key = window_key(instance, sql, week);
        let made = creates.get(&key).and_then(|n| n.as_u64()).unwrap_or(0);
        figures.duplicate_creates += made.saturating_sub(1);
        assert_eq!(
            made, 1,
            "{label}: creates for window {key}\ncreates_per_window: {creates:?}\n{context}"
        );
    }
    assert_eq!(
        counter(stats, "creates_total"),
        expected_weeks as u64,
        "creates outside the collection's windows: {creates:?}\n{context}"
    );

    figures.duplicate_rows = scalar(
        store,
        "SELECT COUNT(*) FROM (SELECT week_id, file_index, row_index FROM report_data_rows \
         WHERE collection_id = $1 GROUP BY week_id, file_index, row_index HAVING COUNT(*) > 1) d",
        id,
    )
    .await;
    assert_eq!(figures.duplicate_rows, 0, "duplicated rows\n{context}");
    figures.rows = scalar(
        store,
        "SELECT COUNT(*) FROM report_data_rows WHERE collection_id = $1",
        id,
    )
    .await;
    assert_eq!(figures.rows, row_count_sum, "total rows\n{context}");
    let adopted = scalar(
        store,
        "SELECT COUNT(*) FROM workflow_executions \
         WHERE collection_id = $1 AND amc_execution_id IS NOT NULL",
        id,
    )
    .await;
    let distinct = scalar(
        store,
        "SELECT COUNT(DISTINCT amc_execution_id) FROM workflow_executions \
         WHERE collection_id = $1 AND amc_execution_id IS NOT NULL",
        id,
    )
    .await;
    assert_eq!(
        (adopted, distinct),
        (expected_weeks as i64, expected_weeks as i64),
        "execution rows holding an AMC id (all, distinct)\n{context}"
    );

    assert_completed_weeks_are_traceable(store, id).await;
    let collection = store.collection(id).await.unwrap().unwrap();
    assert_eq!(collection.status, CollectionStatus::Completed, "{context}");

    figures.max_in_flight = stats["max_in_flight_per_instance"][instance]
        .as_u64()
        .unwrap_or(0);
    for (label, name) in [
        ("429", "served_429"),
        ("5xx", "served_5xx"),
        ("omitted_ids", "omitted_ids"),
        ("403_downloads", "served_403_download"),
        ("401", "served_401"),
    ] {
        figures.faults.insert(label, counter(stats, name));
    }
    figures
}
