//! In-process daemon helpers shared by the resilience tests: the simulator, starting and finishing
//! the actor tree, waiting on conditions, and reading the supervision tree.

use std::net::SocketAddr;
use std::time::Duration;

use amc_collector::actors::collection::prepare_sql;
use amc_collector::actors::supervisor::{ChildStatus, GetSupervisorStatus};
use amc_collector::app::App;
use amc_collector::config::Settings;
use amc_collector::ids::CollectionId;
use amc_collector::results::{checksum, parse_results};
use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle, SimulatorStats};
use amc_collector::simulator::{expected_result_files, sql_workflow_key};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::Week;
use amc_collector::store::Store;

use crate::support::pipeline::{
    assert_completed_weeks_are_traceable, stored_row_count, weeks, INSTANCE_ID,
};
use crate::support::wait_until;

pub const SQL: &str = "SELECT campaign, SUM(impressions) FROM t\nWHERE d >= '{{start_date}}' AND d <= '{{end_date}}'\nGROUP BY 1;";

/// Upper bound of every wait; generous because two cores are shared with other test binaries.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub async fn simulator_with(config: SimulatorConfig) -> SimulatorHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    simulator::start(bind, config).await.unwrap()
}

/// A fast simulator whose executions stay RUNNING for `running_ms`.
pub fn simulator_config(running_ms: u64) -> SimulatorConfig {
    SimulatorConfig {
        pending_ms: 5,
        running_ms,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    }
}

pub async fn start_daemon(store: &Store, settings: &Settings, exit_when_idle: bool) -> App {
    let app = App::build(settings).store(store.clone());
    app.exit_when_idle(exit_when_idle).start().await.unwrap()
}

pub async fn count(store: &Store, id: CollectionId, status: WeekStatus) -> usize {
    weeks(store, id)
        .await
        .iter()
        .filter(|w| w.status == status)
        .count()
}

/// Waits for the idle signal (the daemon must run with `exit_when_idle`).
pub async fn wait_idle(daemon: &mut App) {
    tokio::time::timeout(PATIENCE, &mut daemon.idle)
        .await
        .expect("collections did not finish in time")
        .expect("idle signal");
}

pub async fn shutdown(daemon: App) {
    daemon.stop().await.unwrap();
}

/// The supervisor's view of one collection, if it has a child for it.
pub async fn child_of(daemon: &App, id: CollectionId) -> Option<ChildStatus> {
    let status = daemon.supervisor.send(GetSupervisorStatus).await.unwrap();
    status.children.into_iter().find(|c| c.collection_id == id)
}

/// Waits until the collection's child of `generation` runs, and returns it.
pub async fn running_child(daemon: &App, id: CollectionId, generation: u32) -> ChildStatus {
    let what = format!("generation {generation} of the collection's child runs");
    wait_until(what, PATIENCE, || async {
        child_of(daemon, id)
            .await
            .filter(|child| child.generation == generation && child.running)
    })
    .await
}

/// Every window was created exactly once on the simulator, and there were `windows` of them.
#[track_caller]
pub fn assert_one_create_per_window(stats: &SimulatorStats, windows: usize) {
    assert_eq!(
        stats.creates_per_window.len(),
        windows,
        "{:?}",
        stats.creates_per_window
    );
    for (window, creates) in &stats.creates_per_window {
        assert_eq!(*creates, 1, "creates of {window}");
    }
    assert_eq!(stats.creates_total as usize, windows);
}

/// The files the simulator serves for a week of the `SQL` workflow.
pub fn expected_files(week: &Week) -> Vec<Vec<u8>> {
    let sql = prepare_sql(SQL, week.week_start_date, week.week_end_date).unwrap();
    let end = week.week_end_date + chrono::Duration::days(1);
    expected_result_files(
        INSTANCE_ID,
        &sql_workflow_key(&sql),
        &format!("{}T00:00:00", week.week_start_date),
        &format!("{end}T00:00:00"),
        1.0,
    )
}

/// Every week completed on its first attempt with the rows and checksum the simulator served.
pub async fn assert_all_completed_as_served(store: &Store, id: CollectionId) {
    let stored = weeks(store, id).await;
    for week in &stored {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        let files = expected_files(week);
        assert_eq!(
            week.data_checksum.as_deref(),
            Some(checksum(&files).as_str()),
            "{week:?}"
        );
        let rows = parse_results(&files, usize::MAX).unwrap().row_count;
        assert_eq!(week.row_count, Some(rows), "{week:?}");
        assert_eq!(stored_row_count(store, week).await, rows, "{week:?}");
        assert_eq!(week.attempts, 1, "{week:?}");
    }
    assert_completed_weeks_are_traceable(store, id).await;
    let collection = store.collection(id).await.unwrap().unwrap();
    assert_eq!(collection.status, CollectionStatus::Completed);
}
