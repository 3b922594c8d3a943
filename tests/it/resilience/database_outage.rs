//! (PostgreSQL) The database goes away mid-run: every live connection of the daemon is dropped
//! and new ones are closed on arrival for about two seconds. The daemon must resume when the
//! database comes back, lose no acknowledged write and create no AMC execution twice.

use std::time::Duration;

use amc_collector::status::WeekStatus;
use amc_collector::store::{Store, WorkflowSource};

use super::common::{
    assert_all_completed_as_served, assert_one_create_per_window, count, shutdown,
    simulator_config, simulator_with, start_daemon, wait_idle, PATIENCE, SQL,
};
use super::proxy::PgProxy;
use crate::support::pipeline::{fixture, settings};
use crate::support::{wait_until, Backend};

const WEEKS: usize = 8;
/// How long the database stays unreachable.
const OUTAGE: Duration = Duration::from_secs(2);

#[actix_rt::test]
async fn the_database_going_away_mid_run_loses_no_acknowledged_write_and_the_daemon_resumes() {
    // Arrange: 8 weeks through 3 slots, so weeks are submitting, running and downloading when
    // the cut comes, and more are still to start after it.
    let fx = fixture(
        Backend::Postgres,
        WEEKS as i64,
        WorkflowSource::Sql(SQL.into()),
    )
    .await;
    let id = fx.collection_id;
    let proxy = PgProxy::start(&fx.db.url).await;
    let daemon_store = Store::open(&proxy.url(), 5).await.unwrap();
    let sim = simulator_with(simulator_config(400)).await;
    let mut settings = settings(&proxy.url(), &sim.base_url(), &sim.token_url());
    settings.amc.max_in_flight_per_instance = 3;
    let mut daemon = start_daemon(&daemon_store, &settings, true).await;
    wait_until("a running week", PATIENCE, || async {
        count(&fx.store, id, WeekStatus::Running).await > 0
    })
    .await;

    // Act
    proxy.cut();
    let completed_before = count(&fx.store, id, WeekStatus::Completed).await;
    // Scenario time, not a wait for a condition: the outage lasts OUTAGE whatever happens.
    tokio::time::sleep(OUTAGE).await;
    proxy.restore();

    // Assert
    wait_idle(&mut daemon).await;
    shutdown(daemon).await;
    assert!(proxy.connections_cut() > 0, "the cut dropped no connection");
    assert!(
        proxy.connections_refused() > 0,
        "the daemon never tried the database during the outage"
    );
    assert!(completed_before < WEEKS, "the cut came after the run ended");
    assert_all_completed_as_served(&fx.store, id).await;
    assert_one_create_per_window(&sim.stats(), WEEKS);
    daemon_store.close().await;
}
