//! Operators' controls driven through the CLI (a separate process) while the daemon runs
//! in-process against the simulator, on SQLite and Postgres.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support;
use crate::support::pipeline::{fixture, run_until_idle, settings, weeks, Fixture};
use crate::support::{assert_usage_error, stdout_of, wait_until, Backend};
use amc_collector::amc::AmcClient;
use amc_collector::app::App;
use amc_collector::config::Settings;
use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle};
use amc_collector::status::{CollectionStatus, ExecutionStatus, WeekStatus};
use amc_collector::store::{Transition, WorkflowSource};

/// How long a condition of the run may take to be reached.
const PATIENCE: Duration = Duration::from_secs(30);

const SQL: &str = "SELECT campaign FROM t WHERE d >= '{{start_date}}'";

async fn simulator_with(config: SimulatorConfig) -> SimulatorHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    simulator::start(bind, config).await.unwrap()
}

fn quick() -> SimulatorConfig {
    SimulatorConfig {
        pending_ms: 5,
        running_ms: 30,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    }
}

async fn start_daemon(fx: &Fixture, settings: &Settings) -> App {
    let app = App::build(settings).store(fx.store.clone());
    app.exit_when_idle(true).start().await.unwrap()
}

async fn count(fx: &Fixture, status: WeekStatus) -> usize {
    weeks(&fx.store, fx.collection_id)
        .await
        .iter()
        .filter(|w| w.status == status)
        .count()
}

async fn finish(mut daemon: App) {
    tokio::time::timeout(Duration::from_secs(30), &mut daemon.idle)
        .await
        .unwrap()
        .unwrap();
    daemon.stop().await.unwrap();
}

async fn pause_stops_new_submissions_and_resume_finishes_the_collection(backend: Backend) {
    // Arrange: 6 weeks, 2 slots, runs long enough to pause while the first two are in flight.
    let fx = fixture(backend, 6, WorkflowSource::Sql(SQL.into())).await;
    let sim = simulator_with(SimulatorConfig {
        running_ms: 600,
        ..quick()
    })
    .await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.amc.max_in_flight_per_instance = 2;
    let id = fx.collection_id.to_string();
    let running = start_daemon(&fx, &settings).await;
    wait_until("a running week", PATIENCE, || async {
        count(&fx, WeekStatus::Running).await > 0
    })
    .await;

    // Act
    stdout_of(&fx.db.run_async(&["collection", "pause", &id]).await);
    finish(running).await;

    // Assert: the weeks in flight finished and were stored; nothing else was submitted.
    let completed = count(&fx, WeekStatus::Completed).await;
    assert!((1..=2).contains(&completed), "{completed} completed");
    assert_eq!(count(&fx, WeekStatus::Pending).await, 6 - completed);
    assert_eq!(sim.stats().creates_total as usize, completed);
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Paused);

    stdout_of(&fx.db.run(&["collection", "resume", &id]));
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;
    assert_eq!(count(&fx, WeekStatus::Completed).await, 6);
    assert_eq!(sim.stats().creates_total, 6);
}

async fn cancel_puts_cancelled_to_amc_and_keeps_stored_weeks(backend: Backend) {
    // Arrange: one week already stored; the two others run long on AMC.
    let fx = fixture(backend, 3, WorkflowSource::Sql(SQL.into())).await;
    let stored_week = weeks(&fx.store, fx.collection_id).await.remove(0);
    complete_by_hand(&fx, &stored_week).await;
    let sim = simulator_with(SimulatorConfig {
        running_ms: 20_000,
        ..quick()
    })
    .await;
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    let id = fx.collection_id.to_string();
    let running = start_daemon(&fx, &settings).await;
    wait_until("two running weeks", PATIENCE, || async {
        count(&fx, WeekStatus::Running).await == 2
    })
    .await;

    // Act
    let output = stdout_of(&fx.db.run_async(&["collection", "cancel", &id]).await);

    // Assert
    assert!(output.contains("2 unfinished weeks cancelled"), "{output}");
    wait_until("PUT CANCELLED on AMC", PATIENCE, || async {
        sim.stats().cancels == 2
    })
    .await;
    finish(running).await;
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(stored[0].status, WeekStatus::Completed);
    let two_rows = support::pipeline::checksum_of(support::pipeline::TWO_ROWS);
    assert_eq!(stored[0].data_checksum, Some(two_rows));
    assert!(stored[1..]
        .iter()
        .all(|w| w.status == WeekStatus::Cancelled));
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Cancelled);
    assert_usage_error(
        &fx.db.run(&["collection", "cancel", &id]),
        "it is cancelled",
    );
}

async fn a_cancel_amc_refuses_because_the_run_ended_stores_how_it_really_ended(backend: Backend) {
    // Arrange: a week whose AMC execution already SUCCEEDED when the operator cancels it.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let sim = simulator_with(quick()).await;
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    let client = AmcClient::new(settings.client_config().unwrap()).unwrap();
    let instance = amc_collector::actors::gateway::instance_ref(&fx.instance).unwrap();
    let request = amc_collector::actors::collection::build_request(
        &fx.workflow,
        &Default::default(),
        week.week_start_date,
        week.week_end_date,
        "UTC",
    )
    .unwrap();
    let created = client.create_execution(&instance, &request).await.unwrap();
    let amc_id = created.workflow_execution_id.unwrap();
    wait_until("the run to succeed on AMC", PATIENCE, || async {
        client
            .get_execution(&instance, &amc_id)
            .await
            .is_ok_and(|info| info.status.is_success())
    })
    .await;
    let execution_id = amc_collector::ids::ExecutionId::new();
    fx.store
        .apply_transition(Transition::Intent(support::pipeline::intent(
            &fx,
            &week,
            execution_id,
        )))
        .await
        .unwrap()
        .unwrap();
    fx.store
        .apply_transition(amc_collector::store::Transition::Submitted(
            amc_collector::store::Submitted {
                collection_id: fx.collection_id,
                execution_id,
                amc_execution_id: amc_id.clone(),
                fence: fx.fence.clone(),
            },
        ))
        .await
        .unwrap()
        .unwrap();
    fx.store
        .apply_control(fx.collection_id, amc_collector::store::Control::Cancel)
        .await
        .unwrap();

    // Act: the daemon's sweep asks AMC to cancel; AMC answers 400.
    let running = start_daemon(&fx, &settings).await;
    wait_until("the execution's end to be stored", PATIENCE, || async {
        let (_, execution) = fx.store.week_with_execution(week.id).await.unwrap();
        execution.is_some_and(|e| e.status != ExecutionStatus::Pending)
    })
    .await;
    finish(running).await;

    // Assert: not "cancelled": AMC said it had succeeded.
    let (_, execution) = fx.store.week_with_execution(week.id).await.unwrap();
    assert_eq!(execution.unwrap().status, ExecutionStatus::Succeeded);
    assert_eq!(sim.stats().cancels, 0);
}

/// Stores a week as completed through the state machine, without AMC.
async fn complete_by_hand(fx: &Fixture, week: &amc_collector::store::model::Week) {
    let execution_id = support::pipeline::drive_to_downloading(fx, week, "amc-by-hand").await;
    let done = support::pipeline::completed_week(fx, week, execution_id, "amc-by-hand").await;
    fx.store
        .apply_transition(Transition::Completed(done.clone()))
        .await
        .unwrap()
        .unwrap();
}

async fn retry_failed_completes_a_previously_failed_week(backend: Backend) {
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let doomed = weeks(&fx.store, fx.collection_id).await[0].week_start_date;
    let failing = simulator_with(SimulatorConfig {
        fail_windows: vec![doomed],
        ..quick()
    })
    .await;
    let mut first = settings(&fx.db.url, &failing.base_url(), &failing.token_url());
    first.retry.max_attempts = 1;
    run_until_idle(&fx.store, &first, Duration::from_secs(60)).await;
    assert_eq!(count(&fx, WeekStatus::Failed).await, 1);
    let id = fx.collection_id.to_string();
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Failed);

    let output = stdout_of(&fx.db.run(&["collection", "retry-failed", &id]));
    assert!(
        output.contains("1 failed weeks back to pending"),
        "{output}"
    );
    let healthy = simulator_with(quick()).await;
    run_until_idle(
        &fx.store,
        &settings(&fx.db.url, &healthy.base_url(), &healthy.token_url()),
        Duration::from_secs(60),
    )
    .await;

    assert_eq!(count(&fx, WeekStatus::Completed).await, 2);
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Completed);
    assert_usage_error(
        &fx.db.run(&["collection", "resume", &id]),
        "it is completed",
    );
    assert_usage_error(
        &fx.db.run(&["collection", "retry-failed", &id]),
        "it is completed",
    );
}

async fn export_gives_every_stored_row_with_its_week_and_execution(backend: Backend) {
    let fx = fixture(backend, 4, WorkflowSource::Sql(SQL.into())).await;
    let sim = simulator_with(quick()).await;
    run_until_idle(
        &fx.store,
        &settings(&fx.db.url, &sim.base_url(), &sim.token_url()),
        Duration::from_secs(60),
    )
    .await;
    let stored = weeks(&fx.store, fx.collection_id).await;
    let total: i64 = stored.iter().map(|w| w.row_count.unwrap()).sum();
    let id = fx.collection_id.to_string();

    stdout_of(&fx.db.run(&[
        "collection",
        "export",
        &id,
        "--format",
        "csv",
        "--output",
        "out.csv",
    ]));
    let jsonl = stdout_of(
        &fx.db
            .run(&["collection", "export", &id, "--format", "jsonl"]),
    );

    let mut reader = csv::Reader::from_path(fx.db.path("out.csv")).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(&header[..3], ["week_start", "week_end", "execution_id"]);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len() as i64, total);
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as i64, total);
    for (record, line) in records.iter().zip(&lines) {
        let week = stored
            .iter()
            .find(|w| w.week_start_date.to_string() == record[0])
            .unwrap();
        assert_eq!(record[2], week.execution_id.unwrap().to_string());
        assert_eq!(line["execution_id"], record[2]);
        for (column, value) in header.iter().zip(record.iter()).skip(5) {
            // A result column named like one of export's own is headed `result_<name>`.
            let source = column
                .strip_prefix("result_")
                .filter(|name| header[..5].iter().any(|fixed| fixed == name))
                .unwrap_or(column);
            assert_eq!(line["data"][source].as_str().unwrap_or(""), value);
        }
    }
    assert_usage_error(
        &fx.db.run(&["collection", "export", "nope"]),
        "not a collection UUID",
    );
    assert_usage_error(
        &fx.db.run(&["collection", "export", &id, "--format", "xml"]),
        "invalid value",
    );
}

crate::actix_on_both_backends!(
    pause_stops_new_submissions_and_resume_finishes_the_collection,
    cancel_puts_cancelled_to_amc_and_keeps_stored_weeks,
    a_cancel_amc_refuses_because_the_run_ended_stores_how_it_really_ended,
    retry_failed_completes_a_previously_failed_week,
    export_gives_every_stored_row_with_its_week_and_execution,
);
