//! End to end: the real actor tree against the project's AMC simulator on loopback and a real
//! database (SQLite file and PostgreSQL).

mod all_at_once;
mod create_side;
mod credentials_outage;
mod real_amc;

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::pipeline::{
    assert_completed_weeks_are_traceable, fixture, run_until_idle, settings, stored_row_count,
    weeks, Fixture, INSTANCE_ID,
};
use crate::support::{stdout_of, Backend, TestDb};
use amc_collector::ids::CollectionId;
use amc_collector::results::checksum;
use amc_collector::simulator::{
    self, expected_result_files, sql_workflow_key, SimulatorConfig, SimulatorHandle,
};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::Week;
use amc_collector::store::WorkflowSource;

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
    expected_files_of(SQL, week)
}

/// The files the simulator serves for a week of an inline-SQL workflow of `sql`.
fn expected_files_of(sql: &str, week: &Week) -> Vec<Vec<u8>> {
    let sql = amc_collector::actors::collection::prepare_sql(
        sql,
        week.week_start_date,
        week.week_end_date,
    )
    .unwrap();
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
    )
    .unwrap();
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

/// A query as an analyst writes it: notes on the first line, a block comment inside, a literal
/// holding two spaces.
const COMMENTED_SQL: &str = "-- weekly campaign totals (see the wiki)\n\
    SELECT campaign, 'a  b' AS tag, /* impressions only */ SUM(impressions)\n\
    FROM t\n\
    WHERE d >= '{{start_date}}' AND d <= '{{end_date}}'\n\
    GROUP BY 1;\n";

/// What AMC must receive for `week`, written out by hand rather than by the code under test.
fn intended_query(week: &Week) -> String {
    format!(
        "SELECT campaign, 'a  b' AS tag, SUM(impressions) FROM t \
         WHERE d >= '{}' AND d <= '{}' GROUP BY 1",
        week.week_start_date, week.week_end_date
    )
}

async fn a_commented_sql_file_reaches_amc_as_exactly_the_query_written(backend: Backend) {
    // Arrange: the catalog and collection made with the real binary, as a user would.
    let db = TestDb::new(backend).await;
    std::fs::write(db.path("weekly.sql"), COMMENTED_SQL).unwrap();
    let cli = |args: &'static [&'static str]| db.run_async(args);
    stdout_of(
        &cli(&[
            "instance",
            "add",
            "--instance-id",
            INSTANCE_ID,
            "--advertiser-id",
            "ENTITYPIPE",
            "--marketplace-id",
            "ATVPDKIKX0DER",
        ])
        .await,
    );
    stdout_of(
        &cli(&[
            "workflow",
            "add",
            "--name",
            "weekly",
            "--sql-file",
            "weekly.sql",
        ])
        .await,
    );
    let created = stdout_of(
        &cli(&[
            "collection",
            "create",
            "--workflow",
            "weekly",
            "--instance",
            INSTANCE_ID,
            "--weeks",
            "3",
            "--time-zone",
            "UTC",
        ])
        .await,
    );
    let collection_id: CollectionId = created.parse().unwrap();
    let store = db.store().await;
    let sim = start_simulator(fast_simulator()).await;

    // Act
    let settings = settings(&db.url, &sim.base_url(), &sim.token_url());
    run_until_idle(&store, &settings, Duration::from_secs(60)).await;

    // Assert: one create per week, keyed by the SHA-256 of exactly the intended text, and the
    // stored rows are that query's results.
    let stored = weeks(&store, collection_id).await;
    assert_eq!(stored.len(), 3);
    let stats = sim.stats();
    assert_eq!(stats.creates_total, 3, "{stats:?}");
    for week in &stored {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        let key = sql_workflow_key(&intended_query(week));
        let end = week.week_end_date + chrono::Duration::days(1);
        let window = format!(
            "{INSTANCE_ID}|{key}|{}T00:00:00|{end}T00:00:00|UTC",
            week.week_start_date
        );
        assert_eq!(
            stats.creates_per_window.get(&window),
            Some(&1),
            "{window} not in {:?}",
            stats.creates_per_window
        );
        let files = expected_result_files(
            INSTANCE_ID,
            &key,
            &format!("{}T00:00:00", week.week_start_date),
            &format!("{end}T00:00:00"),
            1.0,
        );
        assert_eq!(
            week.data_checksum.as_deref(),
            Some(checksum(&files).as_str())
        );
    }
}

async fn adoption_matches_an_amc_echo_of_the_sql_that_differs_in_whitespace(backend: Backend) {
    // Arrange: no create reply carries an id, so every week is adopted by listing, and AMC
    // echoes each query reformatted.
    let fx = fixture(backend, 4, WorkflowSource::Sql(COMMENTED_SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        omit_id_rate: 1.0,
        echo_sql_reformatted: true,
        ..fast_simulator()
    })
    .await;

    // Act
    run(&fx, &sim).await;

    // Assert
    let stats = sim.stats();
    assert!(stats.echoed_sql_reformatted > 0, "{stats:?}");
    assert_eq!(stats.omitted_ids, 4, "{stats:?}");
    for week in &weeks(&fx.store, fx.collection_id).await {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        assert_eq!(week.attempts, 1);
    }
    assert_eq!(stats.creates_total, 4, "{stats:?}");
    assert!(stats
        .creates_per_window
        .values()
        .all(|creates| *creates == 1));
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
}

crate::actix_on_both_backends!(
    a_commented_sql_file_reaches_amc_as_exactly_the_query_written,
    adoption_matches_an_amc_echo_of_the_sql_that_differs_in_whitespace,
    a_collection_completes_with_every_week_traceable_and_one_create_per_week,
    slots_are_never_exceeded_and_are_kept_busy,
    faults_are_survived_and_a_failing_window_fails_only_its_week,
    a_rejected_window_stores_amcs_reason,
);

mod download_faults;

mod ingest;

mod poll_economy;

mod publication;
