//! Weeks given back to a collection while its actor runs (`retry-failed`, `rerun` from another
//! process) start at the daemon's next scan, not once every other week of the collection has
//! finished. On SQLite and Postgres.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::pipeline::{
    completed_week, drive_to_downloading, fixture, settings, weeks, Fixture,
};
use crate::support::{stdout_of, wait_until, Backend};
use amc_collector::app::App;
use amc_collector::ids::ExecutionId;
use amc_collector::simulator::{self, SimulatorConfig};
use amc_collector::status::WeekStatus;
use amc_collector::store::model::Week;
use amc_collector::store::{Transition, WorkflowSource};

const PATIENCE: Duration = Duration::from_secs(30);
const SQL: &str = "SELECT campaign FROM t WHERE d >= '{{start_date}}'";
/// Weeks of the collection: the seven besides the one given back take AMC 3.5 s one by one.
const WEEKS: i64 = 8;

/// The simulator, which runs one execution at a time per instance (the others wait PENDING on
/// AMC, so the collection's weeks stay in flight for seconds), and the daemon.
async fn start(fx: &Fixture) -> (simulator::SimulatorHandle, App) {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 500,
        publishing_ms: 5,
        max_running_per_instance: 1,
        ..SimulatorConfig::default()
    };
    let sim = simulator::start(bind, config).await.unwrap();
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    let app = App::build(&settings)
        .store(fx.store.clone())
        .start()
        .await
        .unwrap();
    wait_until("another week running", PATIENCE, || async {
        weeks(&fx.store, fx.collection_id)
            .await
            .iter()
            .any(|w| w.status == WeekStatus::Running)
    })
    .await;
    (sim, app)
}

/// The week given back gets a new execution while the collection's other weeks are still being
/// collected (not once they all ended).
async fn assert_started_before_the_others(fx: &Fixture, given_back: &Week, previous: &Week) {
    wait_until(
        "a new execution for the week given back",
        PATIENCE,
        || async {
            let now = week(fx, given_back).await;
            now.execution_id.is_some() && now.execution_id != previous.execution_id
        },
    )
    .await;
    let done = completed_others(fx, given_back).await;
    assert!(
        done < WEEKS as usize - 1,
        "the week given back waited until all {done} other weeks were completed"
    );
}

/// The newest week, brought to `downloading` by hand under a made-up AMC id.
async fn newest_downloading(fx: &Fixture) -> (Week, ExecutionId) {
    let newest = weeks(&fx.store, fx.collection_id).await.pop().unwrap();
    let execution = drive_to_downloading(fx, &newest, "amc-by-hand").await;
    (newest, execution)
}

async fn week(fx: &Fixture, week: &Week) -> Week {
    let all = weeks(&fx.store, fx.collection_id).await;
    all.into_iter().find(|w| w.id == week.id).unwrap()
}

async fn completed_others(fx: &Fixture, week: &Week) -> usize {
    let all = weeks(&fx.store, fx.collection_id).await;
    all.iter()
        .filter(|w| w.id != week.id && w.status == WeekStatus::Completed)
        .count()
}

async fn retry_failed_starts_a_failed_week_while_the_collections_other_weeks_still_run(
    backend: Backend,
) {
    // Arrange: the newest week failed for good before the daemon started; the seven others
    // then run on AMC one at a time.
    let fx = fixture(backend, WEEKS, WorkflowSource::Sql(SQL.into())).await;
    let (newest, execution) = newest_downloading(&fx).await;
    fx.store
        .apply_transition(Transition::Failed(amc_collector::store::Failed {
            collection_id: fx.collection_id,
            week_id: newest.id,
            execution_id: Some(execution),
            amc_status: Some("FAILED".into()),
            reason: "failed by hand".into(),
            retry_at: None,
            fence: fx.fence.clone(),
        }))
        .await
        .unwrap()
        .unwrap();
    let failed = week(&fx, &newest).await;
    assert_eq!(failed.status, WeekStatus::Failed);
    let (_sim, app) = start(&fx).await;

    // Act: the operator's command, from another process.
    let id = fx.collection_id.to_string();
    stdout_of(&fx.db.run_async(&["collection", "retry-failed", &id]).await);

    // Assert: the week gets a new execution while the other weeks are still being collected.
    assert_started_before_the_others(&fx, &newest, &failed).await;
    app.stop().await.unwrap();
}

async fn rerun_starts_a_completed_week_again_while_the_collections_other_weeks_still_run(
    backend: Backend,
) {
    // Arrange: the newest week was completed before the daemon started; the seven others then
    // run on AMC one at a time.
    let fx = fixture(backend, WEEKS, WorkflowSource::Sql(SQL.into())).await;
    let (newest, execution) = newest_downloading(&fx).await;
    let done = completed_week(&fx, &newest, execution, "amc-by-hand").await;
    fx.store
        .apply_transition(Transition::Completed(done))
        .await
        .unwrap()
        .unwrap();
    let completed = week(&fx, &newest).await;
    assert_eq!(completed.status, WeekStatus::Completed);
    let (_sim, app) = start(&fx).await;

    // Act
    let id = fx.collection_id.to_string();
    let day = newest.week_start_date.to_string();
    let output = fx
        .db
        .run_async(&["collection", "rerun", &id, "--week", &day])
        .await;
    assert!(output.status.success(), "{output:?}");

    // Assert
    assert_started_before_the_others(&fx, &newest, &completed).await;
    app.stop().await.unwrap();
}

crate::actix_on_both_backends!(
    retry_failed_starts_a_failed_week_while_the_collections_other_weeks_still_run,
    rerun_starts_a_completed_week_again_while_the_collections_other_weeks_still_run,
);
