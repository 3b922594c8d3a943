//! Results as AMC publishes them: files published a while after `SUCCEEDED` are waited for (an
//! empty list is "no rows" only when AMC affirms it), `downloadUrls` pages are followed, and
//! split files are read as written (a later file may or may not repeat the header) and checked
//! against AMC's metadata file when it has one.

use std::sync::Arc;

use amc_collector::simulator::{without_repeated_headers, ResultContent};
use bytes::Bytes;

use super::*;

/// Weeks enough for the simulator to split some results into several files.
const SPLIT_WEEKS: i64 = 30;

/// The scenario's precondition: some week's result comes as several files.
async fn assert_some_week_is_split(fx: &Fixture) {
    let stored = weeks(&fx.store, fx.collection_id).await;
    let split = stored
        .iter()
        .filter(|w| expected_files(w).len() > 1)
        .count();
    assert!(split > 0, "no split result among {} weeks", stored.len());
}

/// Runs the fixture's collection to idle against `sim`, with settings tuned by `tune`.
async fn run_tuned(
    fx: &Fixture,
    sim: &SimulatorHandle,
    tune: impl FnOnce(&mut amc_collector::config::Settings),
) {
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    tune(&mut settings);
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;
}

/// Every week is completed with the rows of `files_of(week)` (as served) and their checksum.
async fn assert_completed_as_served(fx: &Fixture, served: impl Fn(&Week) -> Vec<Vec<u8>>) {
    let stored = weeks(&fx.store, fx.collection_id).await;
    for week in &stored {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        // The rows AMC wrote, counted from the files as generated (every one with its header).
        let rows = amc_collector::results::parse_results(&expected_files(week), usize::MAX)
            .unwrap()
            .row_count;
        assert_eq!(week.row_count, Some(rows), "{week:?}");
        assert_eq!(stored_row_count(&fx.store, week).await, rows);
        assert_eq!(
            week.data_checksum.as_deref(),
            Some(checksum(&served(week)).as_str()),
            "the checksum is of the files as downloaded"
        );
        assert_eq!(week.attempts, 1, "{week:?}");
    }
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
}

async fn results_published_a_while_after_success_are_waited_for_and_stored_whole(backend: Backend) {
    // Arrange: every result stays unpublished (DOWNLOAD channel PENDING, empty downloadUrls)
    // for 300 ms after its execution SUCCEEDED.
    let fx = fixture(backend, 4, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        publish_lag_ms: 300,
        ..fast_simulator()
    })
    .await;

    // Act
    run_tuned(&fx, &sim, |_| {}).await;

    // Assert: no week stored as empty; each one waited, then got all its rows.
    assert_completed_as_served(&fx, expected_files).await;
    let stats = sim.stats();
    assert!(stats.served_unpublished_download_urls >= 4, "{stats:?}");
    assert_eq!(stats.creates_total, 4, "waiting is not resubmitting");
}

async fn results_never_published_fail_the_attempt_after_the_grace_and_never_complete(
    backend: Backend,
) {
    // Arrange: results stay unpublished for ten minutes; the grace is one second.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        publish_lag_ms: 600_000,
        ..fast_simulator()
    })
    .await;

    // Act
    run_tuned(&fx, &sim, |s| {
        s.results.publish_grace_seconds = 1;
        s.retry.max_attempts = 1;
    })
    .await;

    // Assert
    let week = &weeks(&fx.store, fx.collection_id).await[0];
    assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
    assert_eq!(week.row_count, None);
    assert_eq!(stored_row_count(&fx.store, week).await, 0);
    let message = week.error_message.as_deref().unwrap_or("");
    assert!(
        message.contains("did not publish") && message.contains("within 1 s"),
        "{message}"
    );
    let stats = sim.stats();
    assert!(stats.served_unpublished_download_urls >= 2, "{stats:?}");
    assert_eq!(stats.downloads, 0);
}

async fn an_empty_list_amc_affirms_completes_the_week_with_zero_rows(backend: Backend) {
    // Arrange: AMC lists no file with its DOWNLOAD channel AVAILABLE.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(fast_simulator()).await;
    sim.control()
        .set_result_content(ResultContent::Files(Arc::new(Vec::new())));

    // Act
    run_tuned(&fx, &sim, |_| {}).await;

    // Assert
    let week = &weeks(&fx.store, fx.collection_id).await[0];
    assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
    assert_eq!(week.row_count, Some(0));
    assert_eq!(
        week.data_checksum.as_deref(),
        Some(checksum::<&[u8]>(&[]).as_str())
    );
}

async fn paged_download_urls_are_followed_to_the_last_file(backend: Backend) {
    // Arrange: downloadUrls lists one file per reply and pages on with nextToken; some of the
    // weeks hold split results of 2 and 3 files.
    let fx = fixture(backend, SPLIT_WEEKS, WorkflowSource::Sql(SQL.into())).await;
    assert_some_week_is_split(&fx).await;
    let sim = start_simulator(SimulatorConfig {
        download_urls_page_size: 1,
        ..fast_simulator()
    })
    .await;

    // Act
    run_tuned(&fx, &sim, |_| {}).await;

    // Assert
    assert_completed_as_served(&fx, expected_files).await;
    assert!(sim.stats().served_download_url_pages > 0, "a split result");
}

async fn split_files_without_a_repeated_header_are_stored_with_every_row_under_its_column(
    backend: Backend,
) {
    // Arrange: later split files start with data.
    let fx = fixture(backend, SPLIT_WEEKS, WorkflowSource::Sql(SQL.into())).await;
    assert_some_week_is_split(&fx).await;
    let sim = start_simulator(SimulatorConfig {
        headerless_continuation: true,
        ..fast_simulator()
    })
    .await;

    // Act
    run_tuned(&fx, &sim, |_| {}).await;

    // Assert
    assert_completed_as_served(&fx, |week| without_repeated_headers(expected_files(week))).await;
    assert!(sim.stats().served_headerless_files > 0, "a split result");
    let mut keys = std::collections::BTreeSet::new();
    fx.store
        .export_rows(fx.collection_id, |row| {
            if let Some(object) = row.data.0.as_object() {
                keys.extend(object.keys().cloned());
            }
            Ok(())
        })
        .await
        .unwrap();
    let header = ["campaign", "clicks", "impressions", "note", "week_start"];
    assert_eq!(keys, header.iter().map(|k| k.to_string()).collect());
}

async fn a_split_file_whose_first_line_is_neither_header_nor_data_fails_naming_the_file(
    backend: Backend,
) {
    // Arrange: file 1 starts with a line of three fields under a header of two.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(fast_simulator()).await;
    let files = vec![
        Bytes::from_static(b"a,b\n1,2\n"),
        Bytes::from_static(b"x,y,z\n3,4,5\n"),
    ];
    sim.control()
        .set_result_content(ResultContent::Files(Arc::new(files)));

    // Act
    run_tuned(&fx, &sim, |_| {}).await;

    // Assert
    let week = &weeks(&fx.store, fx.collection_id).await[0];
    assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
    assert_eq!(week.row_count, None);
    assert_eq!(stored_row_count(&fx.store, week).await, 0);
    let message = week.error_message.as_deref().unwrap_or("");
    assert!(
        message.contains("result file 1") && message.contains("neither"),
        "{message}"
    );
}

async fn a_result_agreeing_with_amcs_metadata_file_is_stored(backend: Backend) {
    // Arrange: each result comes with a metadata file stating its rows and columns; split files
    // without a repeated header.
    let fx = fixture(backend, 6, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        metadata_files: true,
        headerless_continuation: true,
        ..fast_simulator()
    })
    .await;

    // Act
    run_tuned(&fx, &sim, |_| {}).await;

    // Assert
    assert_completed_as_served(&fx, |week| without_repeated_headers(expected_files(week))).await;
    assert!(sim.stats().served_metadata_files >= 6);
}

async fn a_result_disagreeing_with_amcs_metadata_file_fails_the_attempt(backend: Backend) {
    // Arrange: the metadata file states one row more than the files hold.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(fast_simulator()).await;
    sim.control().set_metadata_files(true, 1);

    // Act
    run_tuned(&fx, &sim, |_| {}).await;

    // Assert
    let week = &weeks(&fx.store, fx.collection_id).await[0];
    assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
    assert_eq!(week.row_count, None);
    assert_eq!(stored_row_count(&fx.store, week).await, 0);
    let message = week.error_message.as_deref().unwrap_or("");
    assert!(
        message.contains("metadata") && message.contains("data rows read"),
        "{message}"
    );
}

crate::actix_on_both_backends!(
    a_result_agreeing_with_amcs_metadata_file_is_stored,
    a_result_disagreeing_with_amcs_metadata_file_fails_the_attempt,
    results_published_a_while_after_success_are_waited_for_and_stored_whole,
    results_never_published_fail_the_attempt_after_the_grace_and_never_complete,
    an_empty_list_amc_affirms_completes_the_week_with_zero_rows,
    paged_download_urls_are_followed_to_the_last_file,
    split_files_without_a_repeated_header_are_stored_with_every_row_under_its_column,
    a_split_file_whose_first_line_is_neither_header_nor_data_fails_naming_the_file,
);
