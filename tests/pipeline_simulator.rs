//! End to end: the real actor tree against the project's AMC simulator on loopback and a real
//! database (SQLite file and PostgreSQL).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use amc_collector::results::checksum;
use amc_collector::simulator::{
    self, expected_result_files, sql_workflow_key, SimulatorConfig, SimulatorHandle,
};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::Week;
use amc_collector::store::WorkflowSource;
use support::pipeline::{
    assert_completed_weeks_are_traceable, fixture, run_until_idle, settings, stored_row_count,
    weeks, Fixture, INSTANCE_ID,
};
use support::Backend;

const SQL: &str = "SELECT campaign, SUM(impressions) FROM t\nWHERE d >= '{{start_date}}' AND d <= '{{end_date}}'\nGROUP BY 1;";

fn fast_simulator() -> SimulatorConfig {
    SimulatorConfig {
        pending_ms: 5,
        running_ms: 30,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    }
}

async fn start_simulator(config: SimulatorConfig) -> SimulatorHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    simulator::start(bind, config).await.unwrap()
}

/// The files the simulator serves for a week of the fixture's inline-SQL workflow.
fn expected_files(week: &Week) -> Vec<Vec<u8>> {
    let sql = amc_collector::actors::collection::prepare_sql(
        SQL,
        week.week_start_date,
        week.week_end_date,
    );
    let end = week.week_end_date + chrono::Duration::days(1);
    expected_result_files(
        INSTANCE_ID,
        &sql_workflow_key(&sql),
        &format!("{}T00:00:00", week.week_start_date),
        &format!("{end}T00:00:00"),
        1.0,
    )
}

fn window_key(week: &Week) -> String {
    let sql = amc_collector::actors::collection::prepare_sql(
        SQL,
        week.week_start_date,
        week.week_end_date,
    );
    let end = week.week_end_date + chrono::Duration::days(1);
    format!(
        "{INSTANCE_ID}|{}|{}T00:00:00|{end}T00:00:00|UTC",
        sql_workflow_key(&sql),
        week.week_start_date
    )
}

async fn run(fx: &Fixture, sim: &SimulatorHandle) {
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;
}

async fn a_collection_completes_with_every_week_traceable_and_one_create_per_week(
    backend: Backend,
) {
    // Arrange
    let fx = fixture(backend, 12, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(fast_simulator()).await;

    // Act
    run(&fx, &sim).await;

    // Assert
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(stored.len(), 12);
    for week in &stored {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        let files = expected_files(week);
        assert_eq!(
            week.data_checksum.as_deref(),
            Some(checksum(&files).as_str())
        );
        let expected_rows = amc_collector::results::parse_results(&files, usize::MAX)
            .unwrap()
            .row_count;
        assert_eq!(week.row_count, Some(expected_rows));
        assert_eq!(stored_row_count(&fx.store, week).await, expected_rows);
        assert_eq!(week.attempts, 1);
    }
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
    let stats = sim.stats();
    assert_eq!(stats.creates_total, 12);
    for week in &stored {
        assert_eq!(
            stats.creates_per_window.get(&window_key(week)),
            Some(&1),
            "{}",
            window_key(week)
        );
    }
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Completed);
}

async fn slots_are_never_exceeded_and_are_kept_busy(backend: Backend) {
    // Arrange: 25 weeks on one instance with a limit of 10; runs long enough for all 10 slots to fill.
    let fx = fixture(backend, 25, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        running_ms: 1_000,
        ..fast_simulator()
    })
    .await;

    // Act
    run(&fx, &sim).await;

    // Assert
    let stats = sim.stats();
    let peak = stats
        .max_in_flight_per_instance
        .get(INSTANCE_ID)
        .copied()
        .unwrap_or(0);
    assert!(peak <= 10, "peak in flight {peak}");
    assert!(peak >= 9, "slots were not kept busy: peak {peak}");
    assert_eq!(stats.creates_total, 25);
}

async fn faults_are_survived_and_a_failing_window_fails_only_its_week(backend: Backend) {
    // Arrange: 429s, 5xx, creates without ids, short-lived URLs, and one window AMC always fails.
    let fx = fixture(backend, 8, WorkflowSource::Sql(SQL.into())).await;
    let doomed = weeks(&fx.store, fx.collection_id).await[3].clone();
    let sim = start_simulator(SimulatorConfig {
        rate_429: 0.15,
        retry_after_secs: 0,
        rate_5xx: 0.1,
        omit_id_rate: 0.3,
        url_ttl_ms: 40,
        fail_windows: vec![doomed.week_start_date],
        ..fast_simulator()
    })
    .await;

    // Act
    run(&fx, &sim).await;

    // Assert
    let stored = weeks(&fx.store, fx.collection_id).await;
    for week in &stored {
        if week.id == doomed.id {
            assert_eq!(week.status, WeekStatus::Failed);
            assert_eq!(week.attempts, 3);
            assert!(
                week.error_message
                    .as_deref()
                    .unwrap_or("")
                    .contains("simulated failure"),
                "{week:?}"
            );
        } else {
            assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
            assert_eq!(
                week.data_checksum.as_deref(),
                Some(checksum(&expected_files(week)).as_str())
            );
        }
    }
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
    let stats = sim.stats();
    for week in &stored {
        let creates = stats
            .creates_per_window
            .get(&window_key(week))
            .copied()
            .unwrap_or(0);
        let expected = if week.id == doomed.id { 3 } else { 1 };
        assert_eq!(creates, expected, "creates for {}", week.week_start_date);
    }
    // Which faults a run meets depends on how many requests it makes; some must have been met.
    assert!(
        stats.served_429 + stats.served_5xx + stats.omitted_ids > 0,
        "{stats:?}"
    );
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Failed);
    assert_eq!(
        collection.error_message.as_deref(),
        Some("1 of 8 weeks failed")
    );
}

async fn a_rejected_window_stores_amcs_reason(backend: Backend) {
    let fx = fixture(backend, 2, WorkflowSource::Saved("saved_weekly".into())).await;
    let first = weeks(&fx.store, fx.collection_id).await[0].clone();
    let sim = start_simulator(SimulatorConfig {
        reject_windows: vec![first.week_start_date],
        ..fast_simulator()
    })
    .await;

    run(&fx, &sim).await;

    let stored = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(stored[0].status, WeekStatus::Failed);
    assert!(stored[0]
        .error_message
        .as_deref()
        .unwrap_or("")
        .contains("too many workflows"));
    assert_eq!(stored[1].status, WeekStatus::Completed);
}

actix_on_both_backends!(
    a_collection_completes_with_every_week_traceable_and_one_create_per_week,
    slots_are_never_exceeded_and_are_kept_busy,
    faults_are_survived_and_a_failing_window_fails_only_its_week,
    a_rejected_window_stores_amcs_reason,
);

#[path = "pipeline_simulator/download_faults.rs"]
mod download_faults;
