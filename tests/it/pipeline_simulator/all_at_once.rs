//! AMC as it really is, every documented and observed departure from the happy path at once:
//! bare 429s, a query accepted at create and failed in validation, creates refused with wording
//! that names no limit, results published a while after `SUCCEEDED`, `downloadUrls` paged one
//! file at a time, and split results whose later files start with data. Every good week is
//! stored whole, once; the broken query is held; nothing completes with data AMC did not deliver.

use std::time::Duration;

use amc_collector::results::parse_results;
use amc_collector::simulator::{without_repeated_headers, SimulatorConfig, VALIDATION_FAILURE};
use amc_collector::status::WeekStatus;
use amc_collector::store::WorkflowSource;
use support::pipeline::{add_collection, fixture, run_until_idle, settings, weeks};
use support::Backend;

use super::create_side::{AD_HOC_REFUSAL, BROKEN_SQL};
use super::{
    checksum, expected_files, fast_simulator, start_simulator, stored_row_count, window_key, SQL,
};
use crate::support;

/// Weeks enough for the simulator to split some results into several files.
const GOOD_WEEKS: i64 = 30;

async fn with_every_fault_of_amc_as_it_is_at_once_every_good_week_is_stored_whole_and_the_broken_query_held(
    backend: Backend,
) {
    // Arrange: 30 good weeks (some split into several files) and a 6-week collection of a query
    // that fails validation; 15 % bare 429s; 10 creates per (shrunk) day, refused beyond that
    // with the unclassifiable 400; results published 300 ms after SUCCEEDED; downloadUrls one
    // file a page; later split files without the header.
    let fx = fixture(backend, GOOD_WEEKS, WorkflowSource::Sql(SQL.into())).await;
    let good = weeks(&fx.store, fx.collection_id).await;
    assert!(
        good.iter().any(|w| expected_files(w).len() > 1),
        "no split result"
    );
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
        publish_lag_ms: 300,
        download_urls_page_size: 1,
        headerless_continuation: true,
        ..fast_simulator()
    })
    .await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.amc.quota_window_seconds = 24;
    let started = std::time::Instant::now();

    // Act
    run_until_idle(&fx.store, &settings, Duration::from_secs(240)).await;

    // Assert: every good week completed once, on its first attempt, with every row AMC wrote
    // (data rows only) and the checksum of the files as served.
    let stats = sim.stats();
    for week in weeks(&fx.store, fx.collection_id).await {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        assert_eq!(week.attempts, 1, "{week:?}");
        let rows = parse_results(&expected_files(&week), usize::MAX)
            .unwrap()
            .row_count;
        assert_eq!(week.row_count, Some(rows), "{week:?}");
        assert_eq!(stored_row_count(&fx.store, &week).await, rows);
        let served = without_repeated_headers(expected_files(&week));
        assert_eq!(
            week.data_checksum.as_deref(),
            Some(checksum(&served).as_str())
        );
        assert_eq!(stats.creates_per_window.get(&window_key(&week)), Some(&1));
    }
    // The broken query: held with AMC's reason after at most 3 executions, no week failed.
    let held = fx.store.collection(broken_id).await.unwrap().unwrap();
    assert_eq!(held.held_reason.as_deref(), Some(VALIDATION_FAILURE));
    assert!(stats.served_validation_failures <= 3, "{stats:?}");
    let failed = weeks(&fx.store, broken_id)
        .await
        .iter()
        .filter(|w| w.status == WeekStatus::Failed && w.next_attempt_at.is_none())
        .count();
    assert_eq!(failed, 0);
    // Every fault was met.
    assert!(stats.served_bare_429 > 0, "{stats:?}");
    assert!(stats.daily_limit_refusals > 0, "{stats:?}");
    assert!(stats.served_unpublished_download_urls > 0, "{stats:?}");
    assert!(stats.served_headerless_files > 0, "{stats:?}");
    assert!(stats.served_download_url_pages > 0, "{stats:?}");
    println!(
        "AMC as it is, all faults [{backend:?}]: {GOOD_WEEKS} of {GOOD_WEEKS} good weeks \
         completed once, 0 failed; broken query held after {} executions; bare 429s {}, \
         refusals {}, unpublished listings {}, headerless files {}, downloadUrls pages {}, \
         creates {}, AMC gets {}, whole run {:.1} s",
        stats.served_validation_failures,
        stats.served_bare_429,
        stats.daily_limit_refusals,
        stats.served_unpublished_download_urls,
        stats.served_headerless_files,
        stats.served_download_url_pages,
        stats.creates_total,
        stats.gets,
        started.elapsed().as_secs_f64()
    );
}

crate::actix_on_both_backends!(
    with_every_fault_of_amc_as_it_is_at_once_every_good_week_is_stored_whole_and_the_broken_query_held,
);
