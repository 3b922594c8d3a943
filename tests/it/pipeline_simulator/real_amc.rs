//! AMC as its docs and public clients describe it, not as kind as the simulator's defaults: creates
//! answered 502 after they were made, a list that lags and reads times in its own zone, and a
//! daily limit on executions. Every week must still end stored once, with no attempt spent on
//! anything but AMC's verdict.

use std::time::Duration;

use amc_collector::results::checksum;
use amc_collector::simulator::{SimulatorConfig, SimulatorHandle};
use amc_collector::status::WeekStatus;
use amc_collector::store::WorkflowSource;
use support::pipeline::{
    assert_completed_weeks_are_traceable, fixture, run_until_idle, run_until_idle_with, settings,
    weeks, Fixture, INSTANCE_ID,
};
use support::Backend;

use super::{expected_files, fast_simulator, start_simulator, window_key, SQL};
use crate::support;

/// Every week completed with the simulator's rows, on its first attempt, created exactly once.
async fn assert_each_week_stored_once(fx: &Fixture, sim: &SimulatorHandle) {
    let stored = weeks(&fx.store, fx.collection_id).await;
    let stats = sim.stats();
    for week in &stored {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        assert_eq!(week.attempts, 1, "{week:?}");
        assert_eq!(
            week.data_checksum.as_deref(),
            Some(checksum(&expected_files(week)).as_str())
        );
        assert_eq!(
            stats.creates_per_window.get(&window_key(week)),
            Some(&1),
            "creates of {}: {stats:?}",
            week.week_start_date
        );
    }
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
    let peak = stats.max_in_flight_per_instance[INSTANCE_ID];
    assert!(peak <= 10, "{peak} executions in flight on one instance");
}

async fn a_create_answered_502_after_it_was_made_is_adopted_and_never_sent_again(backend: Backend) {
    // Arrange: half the creates are made and answered 502; the list lags behind creates and
    // reads an unzoned minCreationTime as Los Angeles time.
    let fx = fixture(backend, 10, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        create_then_5xx_rate: 0.5,
        list_lag_ms: 15,
        list_default_zone: "America/Los_Angeles".into(),
        ..fast_simulator()
    })
    .await;

    // Act
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert
    assert_each_week_stored_once(&fx, &sim).await;
    assert!(sim.stats().creates_answered_5xx > 0, "{:?}", sim.stats());
}

async fn the_daily_limit_is_waited_for_in_the_collector_and_never_fails_a_week(backend: Backend) {
    // Arrange: AMC allows 4 creates per instance per (shrunk) day; so does the collector.
    let fx = fixture(backend, 10, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        daily_limit: 4,
        daily_window_ms: 2_000,
        ..fast_simulator()
    })
    .await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.amc.max_creates_per_day = 4;
    settings.amc.quota_window_seconds = 2;

    // Act
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert: AMC never had to refuse, and never saw more than the limit in one window.
    assert_each_week_stored_once(&fx, &sim).await;
    let stats = sim.stats();
    assert_eq!(stats.daily_limit_refusals, 0, "{stats:?}");
    assert!(stats.max_creates_per_daily_window <= 4, "{stats:?}");
}

async fn a_create_amc_refuses_for_its_daily_limit_waits_without_spending_an_attempt(
    backend: Backend,
) {
    // Arrange: the collector does not know AMC's limit (other clients may use the instance).
    let fx = fixture(backend, 8, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        daily_limit: 3,
        daily_window_ms: 1_000,
        ..fast_simulator()
    })
    .await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.amc.max_creates_per_day = 0;
    settings.amc.quota_window_seconds = 1;

    // Act
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert
    assert_each_week_stored_once(&fx, &sim).await;
    let stats = sim.stats();
    assert!(stats.daily_limit_refusals > 0, "{stats:?}");
}

/// Every fault a real AMC, LwA and S3 are known for, at once.
fn all_faults() -> SimulatorConfig {
    SimulatorConfig {
        // AMC API
        rate_429: 0.05,
        retry_after_secs: 0,
        retry_after_http_date: true,
        rate_5xx: 0.05,
        omit_id_rate: 0.2,
        create_then_5xx_rate: 0.3,
        list_lag_ms: 15,
        list_default_zone: "America/Los_Angeles".into(),
        echo_sql_reformatted: true,
        daily_limit: 6,
        daily_window_ms: 2_000,
        malformed_download_urls: 2,
        // S3
        truncated_downloads: 1,
        s3_slowdowns: 1,
        // Login with Amazon refuses grants for the first 1.5 s.
        refuse_grants_ms: 1_500,
        refuse_grants_kind: amc_collector::simulator::GrantRefusal::InvalidGrant,
        ..fast_simulator()
    }
}

async fn with_every_fault_at_once_each_week_is_stored_once_and_none_fails(backend: Backend) {
    // Arrange
    let fx = fixture(backend, 14, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(all_faults()).await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.amc.max_in_flight_per_instance = 4;
    settings.amc.max_creates_per_day = 6;
    settings.amc.quota_window_seconds = 2;
    settings.amc.backoff_max_ms = 500;
    let client = amc_collector::amc::AmcClient::new(settings.client_config().unwrap()).unwrap();
    let started = std::time::Instant::now();

    // Act
    run_until_idle_with(
        &fx.store,
        client.clone(),
        &settings,
        Duration::from_secs(120),
    )
    .await;

    // Assert
    assert_each_week_stored_once(&fx, &sim).await;
    let stats = sim.stats();
    let stored = weeks(&fx.store, fx.collection_id).await;
    let failed = stored
        .iter()
        .filter(|w| w.status == WeekStatus::Failed)
        .count();
    assert_eq!(failed, 0);
    let peak = stats.max_in_flight_per_instance[INSTANCE_ID];
    assert!(peak <= 4, "{peak} in flight with a limit of 4");
    assert!(stats.max_creates_per_daily_window <= 6, "{stats:?}");
    let credentials = client.credentials();
    for (fault, served) in [
        ("429", stats.served_429),
        ("5xx", stats.served_5xx),
        ("create made then 5xx", stats.creates_answered_5xx),
        ("create reply without id", stats.omitted_ids),
        (
            "malformed downloadUrls",
            stats.served_malformed_download_urls,
        ),
        ("truncated file", stats.served_truncated_downloads),
        ("S3 SlowDown", stats.served_s3_slowdowns),
        ("LwA refusal", stats.token_refusals),
        ("reformatted SQL echo", stats.echoed_sql_reformatted),
    ] {
        println!("fault served: {fault}: {served}");
    }
    assert!(
        stats.creates_answered_5xx > 0 && stats.token_refusals > 0,
        "{stats:?}"
    );
    assert!(stats.served_malformed_download_urls > 0 && stats.served_truncated_downloads > 0);
    println!(
        "all faults [{backend:?}]: {} weeks completed, {failed} failed, creates per window max {}, \
         in flight peak {peak} (limit 4), creates per day max {} (limit 6), daily refusals {}, \
         token outage waited {:?} ms, whole run {:.1} s",
        stored.len(),
        stats.creates_per_window.values().max().copied().unwrap_or(0),
        stats.max_creates_per_daily_window,
        stats.daily_limit_refusals,
        credentials.last_outage_ms,
        started.elapsed().as_secs_f64()
    );
    assert!(credentials.last_outage_ms.is_some(), "{credentials:?}");
}

crate::actix_on_both_backends!(
    with_every_fault_at_once_each_week_is_stored_once_and_none_fails,
    a_create_answered_502_after_it_was_made_is_adopted_and_never_sent_again,
    the_daily_limit_is_waited_for_in_the_collector_and_never_fails_a_week,
    a_create_amc_refuses_for_its_daily_limit_waits_without_spending_an_attempt,
);
