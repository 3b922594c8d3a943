//! AMC as it really is, on the create side: the Ads API throttles with a bare 429 (no
//! `Retry-After`), AMC refuses creates with wording the client cannot classify, and it accepts a
//! query it will then fail in validation every time. Throttling is retried, refusals wait without
//! spending attempts, and a query AMC will never run stops spending the instance's daily runs.

use std::time::Duration;

use amc_collector::app::App;
use amc_collector::simulator::{SimulatorConfig, VALIDATION_FAILURE};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::{AlertEvent, Control, Store, WorkflowSource};
use support::pipeline::{
    add_collection, finish, fixture, run_until_idle, settings, weeks, Fixture,
};
use support::{wait_until, Backend};

use super::{expected_files, fast_simulator, start_simulator, window_key, SQL};
use crate::support;
use amc_collector::ids::CollectionId;
use amc_collector::results::checksum;

/// AMC's daily-limit refusal as observed, worded without "limit", "quota" or "daily".
pub(super) const AD_HOC_REFUSAL: &str =
    "You have reached the maximum number of ad hoc workflow executions allowed for this instance today";

/// A query the simulator accepts at create and fails in validation moments later.
pub(super) const BROKEN_SQL: &str =
    "SELECT no_such_column FROM t WHERE d >= '{{start_date}}' AND d <= '{{end_date}}'";

/// Every week of the fixture's collection completed with the simulator's rows, on its first
/// attempt, created once.
async fn assert_each_week_stored_once(
    fx: &Fixture,
    sim: &amc_collector::simulator::SimulatorHandle,
) {
    let stats = sim.stats();
    for week in weeks(&fx.store, fx.collection_id).await {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        assert_eq!(week.attempts, 1, "{week:?}");
        assert_eq!(
            week.data_checksum.as_deref(),
            Some(checksum(&expected_files(&week)).as_str())
        );
        assert_eq!(stats.creates_per_window.get(&window_key(&week)), Some(&1));
    }
}

/// The `collection.held` alerts waiting in the outbox: (collection, payload).
async fn held_alerts(store: &Store) -> Vec<(Option<CollectionId>, serde_json::Value)> {
    let until = chrono::Utc::now() + chrono::Duration::minutes(5);
    let claimed = store.claim_alerts("test", until, 100).await.unwrap();
    claimed
        .into_iter()
        .filter(|alert| alert.event == AlertEvent::CollectionHeld.as_str())
        .map(|alert| {
            (
                alert.collection_id,
                serde_json::from_str(&alert.payload).unwrap(),
            )
        })
        .collect()
}

async fn bare_429s_on_every_endpoint_are_throttling_and_never_park_or_fail_a_week(
    backend: Backend,
) {
    // Arrange: a third of AMC calls answer 429 without Retry-After; parking a week for a
    // twenty-fourth of this one-hour window (150 s) would outlast the run.
    let fx = fixture(backend, 8, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        rate_429_bare: 0.3,
        ..fast_simulator()
    })
    .await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.amc.quota_window_seconds = 3600;

    // Act
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert
    assert_each_week_stored_once(&fx, &sim).await;
    let stats = sim.stats();
    assert!(stats.served_bare_429 > 0, "{stats:?}");
    assert_eq!(stats.daily_limit_refusals, 0);
}

async fn a_refusal_worded_unlike_a_limit_waits_without_spending_an_attempt_and_fails_no_week(
    backend: Backend,
) {
    // Arrange: AMC allows 3 creates per 1.5 s and refuses the rest with a 400 the client cannot
    // classify; the collector does not know the limit (other clients may use the instance).
    let fx = fixture(backend, 8, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        daily_limit: 3,
        daily_window_ms: 1_500,
        daily_limit_status: 400,
        daily_limit_message: Some(AD_HOC_REFUSAL.into()),
        ..fast_simulator()
    })
    .await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    // A twenty-fourth of it caps the wait after a refusal at 1 s.
    settings.amc.quota_window_seconds = 24;

    // Act
    let app = App::build(&settings).store(fx.store.clone());
    let app = app.exit_when_idle(true).start().await.unwrap();

    // Assert: while AMC refuses, the weeks say so (as `collection show` and `watch` print it).
    let shown = wait_until(
        "a refused create shown",
        Duration::from_secs(60),
        || async {
            let stored = weeks(&fx.store, fx.collection_id).await;
            amc_collector::store::create_refusal(&stored, chrono::Utc::now())
        },
    )
    .await;
    let expected = format!("AMC refuses creates: {AD_HOC_REFUSAL} (since ");
    assert!(shown.starts_with(&expected), "{shown}");
    finish(app, Duration::from_secs(90)).await;
    assert_each_week_stored_once(&fx, &sim).await;
    assert!(sim.stats().daily_limit_refusals > 0, "{:?}", sim.stats());
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Completed);
    assert_eq!(collection.held_reason, None);
}

async fn a_query_that_fails_validation_is_held_after_two_executions_while_others_run(
    backend: Backend,
) {
    // Arrange: a 6-week collection of a query AMC fails in validation every time, and a good
    // 4-week collection on the same instance.
    let fx = fixture(backend, 6, WorkflowSource::Sql(BROKEN_SQL.into())).await;
    let good = fx
        .store
        .insert_workflow("good", &WorkflowSource::Sql(SQL.into()))
        .await
        .unwrap();
    let good_id = add_collection(&fx.store, &fx.instance, &good, 4, "UTC").await;
    let sim = start_simulator(SimulatorConfig {
        fail_validation_sql: vec!["no_such_column".into()],
        ..fast_simulator()
    })
    .await;
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());

    // Act: `--exit-when-idle` does not wait for the held collection.
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert: at most 3 executions spent on the broken query, no week failed for good.
    let stats = sim.stats();
    assert!(
        (2..=3).contains(&stats.served_validation_failures),
        "{stats:?}"
    );
    let held = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.status, CollectionStatus::Paused);
    assert_eq!(held.held_reason.as_deref(), Some(VALIDATION_FAILURE));
    let broken_weeks = weeks(&fx.store, fx.collection_id).await;
    let failed_for_good = |w: &&amc_collector::store::model::Week| {
        w.status == WeekStatus::Failed && w.next_attempt_at.is_none()
    };
    assert_eq!(broken_weeks.iter().filter(failed_for_good).count(), 0);
    let good_weeks = weeks(&fx.store, good_id).await;
    assert!(good_weeks.iter().all(|w| w.status == WeekStatus::Completed));
    let alerts = held_alerts(&fx.store).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].0, Some(fx.collection_id));
    assert_eq!(alerts[0].1["reason"], VALIDATION_FAILURE);
    let id = fx.collection_id.to_string();
    let shown = support::stdout_of(&fx.db.run(&["collection", "show", &id]));
    assert!(
        shown.contains(&format!("held: {VALIDATION_FAILURE}")),
        "{shown}"
    );
    let json = support::stdout_of(&fx.db.run(&["collection", "show", &id, "--json"]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["held_reason"], VALIDATION_FAILURE);

    // Act: the operator resumes it.
    fx.store
        .apply_control(fx.collection_id, Control::Resume)
        .await
        .unwrap();

    // Assert
    let resumed = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            resumed.status,
            CollectionStatus::Pending | CollectionStatus::Running
        ),
        "{resumed:?}"
    );
    assert_eq!(resumed.held_reason, None);
}

async fn the_running_daemons_status_says_held_with_amcs_reason(backend: Backend) {
    // Arrange: a collection of a query AMC fails in validation, a daemon with its endpoint.
    let fx = fixture(backend, 3, WorkflowSource::Sql(BROKEN_SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        fail_validation_sql: vec!["no_such_column".into()],
        ..fast_simulator()
    })
    .await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.scheduler.tree_log_interval_seconds = 0;
    let app = App::build(&settings).store(fx.store.clone()).inspected();
    let daemon = app.start().await.unwrap();
    let endpoint = daemon.observer().and_then(|o| o.http_addr()).unwrap();
    let url = format!("http://{endpoint}");

    // Act: the collection gets held while the daemon runs.
    let held = wait_until("held in /status", Duration::from_secs(60), || async {
        let tree: serde_json::Value = reqwest::get(format!("{url}/status"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        tree["held"]
            .as_array()
            .filter(|held| !held.is_empty())
            .cloned()
    })
    .await;
    // The binary runs off this thread: the daemon answering it runs on this one.
    let status_url = url.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(support::binary())
            .args(["status", "--url", status_url.as_str()])
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = support::stdout_of(&output);
    daemon.stop().await.unwrap();

    // Assert
    assert_eq!(held[0]["collection_id"], fx.collection_id.to_string());
    assert_eq!(held[0]["reason"], VALIDATION_FAILURE);
    let line = format!(
        "collection {}  held: {VALIDATION_FAILURE}",
        fx.collection_id
    );
    assert!(printed.contains(&line), "{printed}");
}

async fn a_collection_amc_never_accepted_is_held_after_three_identical_refusals(backend: Backend) {
    // Arrange: AMC allows one create per (long) day; a first collection spends it.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        daily_limit: 1,
        daily_window_ms: 3_600_000,
        daily_limit_status: 400,
        daily_limit_message: Some(AD_HOC_REFUSAL.into()),
        ..fast_simulator()
    })
    .await;
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;
    let other = fx
        .store
        .insert_workflow("other", &WorkflowSource::Sql(BROKEN_SQL.into()))
        .await
        .unwrap();
    let refused_id = add_collection(&fx.store, &fx.instance, &other, 5, "UTC").await;

    // Act
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert: held after three refusals; no week failed, no attempt spent.
    assert_eq!(sim.stats().daily_limit_refusals, 3, "{:?}", sim.stats());
    let held = fx.store.collection(refused_id).await.unwrap().unwrap();
    assert_eq!(held.status, CollectionStatus::Paused);
    let expected = format!("AMC refuses creates: {AD_HOC_REFUSAL}");
    assert_eq!(held.held_reason.as_deref(), Some(expected.as_str()));
    for week in weeks(&fx.store, refused_id).await {
        assert_eq!(week.status, WeekStatus::Pending, "{week:?}");
        assert_eq!(week.attempts, 0, "{week:?}");
    }
    let alerts = held_alerts(&fx.store).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].1["reason"], expected.as_str());
}

async fn with_every_create_side_fault_at_once_good_weeks_are_stored_and_the_broken_query_held(
    backend: Backend,
) {
    // Arrange: 12 good weeks and a 6-week collection of a query that fails validation, 15 %
    // bare 429s, and 10 creates per (shrunk) day refused beyond that with the unclassifiable 400.
    let fx = fixture(backend, 12, WorkflowSource::Sql(SQL.into())).await;
    let broken = fx
        .store
        .insert_workflow("broken", &WorkflowSource::Sql(BROKEN_SQL.into()))
        .await
        .unwrap();
    let broken_id = add_collection(&fx.store, &fx.instance, &broken, 6, "UTC").await;
    let sim = start_simulator(SimulatorConfig {
        rate_429_bare: 0.15,
        fail_validation_sql: vec!["no_such_column".into()],
        daily_limit: 10,
        daily_window_ms: 2_000,
        daily_limit_status: 400,
        daily_limit_message: Some(AD_HOC_REFUSAL.into()),
        ..fast_simulator()
    })
    .await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.amc.quota_window_seconds = 24;
    let started = std::time::Instant::now();

    // Act
    run_until_idle(&fx.store, &settings, Duration::from_secs(120)).await;

    // Assert
    assert_each_week_stored_once(&fx, &sim).await;
    let held = fx.store.collection(broken_id).await.unwrap().unwrap();
    assert_eq!(held.held_reason.as_deref(), Some(VALIDATION_FAILURE));
    let stats = sim.stats();
    assert!(stats.served_validation_failures <= 3, "{stats:?}");
    let broken_weeks = weeks(&fx.store, broken_id).await;
    let failed = broken_weeks
        .iter()
        .filter(|w| w.status == WeekStatus::Failed && w.next_attempt_at.is_none())
        .count();
    assert_eq!(failed, 0, "{broken_weeks:?}");
    println!(
        "create side, all faults [{backend:?}]: 12 of 12 good weeks completed once, 0 failed; \
         broken query held after {} executions; bare 429s served {}, refusals served {}, \
         creates {}, whole run {:.1} s",
        stats.served_validation_failures,
        stats.served_bare_429,
        stats.daily_limit_refusals,
        stats.creates_total,
        started.elapsed().as_secs_f64()
    );
}

crate::actix_on_both_backends!(
    with_every_create_side_fault_at_once_good_weeks_are_stored_and_the_broken_query_held,
    bare_429s_on_every_endpoint_are_throttling_and_never_park_or_fail_a_week,
    a_refusal_worded_unlike_a_limit_waits_without_spending_an_attempt_and_fails_no_week,
    a_query_that_fails_validation_is_held_after_two_executions_while_others_run,
    a_collection_amc_never_accepted_is_held_after_three_identical_refusals,
    the_running_daemons_status_says_held_with_amcs_reason,
);
