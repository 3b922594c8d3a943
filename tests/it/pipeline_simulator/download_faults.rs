//! Download-side faults end to end: a reply that is not an answer never completes a week, a
//! cut-off or throttled file is fetched again, and AMC's word that the results cannot be
//! delivered fails the week with AMC's reason instead of waiting.

use crate::support::pipeline::{drive_to_downloading, run_until_idle, settings};
use crate::support::wait_until;
use amc_collector::amc::{AmcClient, CreateExecution, InstanceRef, TimeWindow, WorkflowSpec};

use super::*;

/// The simulator's `statusReason` for a failed DOWNLOAD channel (its start is enough to match).
const CHANNEL_REASON: &str = "Simulated delivery failure";

/// Every week is completed with exactly the rows and checksum the simulator serves.
fn assert_completed_with_expected_rows(stored: &[Week]) {
    for week in stored {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        let files = expected_files(week);
        let rows = amc_collector::results::parse_results(&files, usize::MAX)
            .unwrap()
            .row_count;
        assert_eq!(week.row_count, Some(rows), "{week:?}");
        assert_eq!(
            week.data_checksum.as_deref(),
            Some(checksum(&files).as_str())
        );
    }
}

async fn run_with(
    fx: &Fixture,
    sim: &SimulatorHandle,
    tune: impl FnOnce(&mut amc_collector::config::Settings),
) {
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    tune(&mut settings);
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;
}

async fn malformed_download_urls_at_first_still_complete_every_week_with_all_its_rows(
    backend: Backend,
) {
    // Arrange: each execution's first 9 downloadUrls replies rotate through `{}`, null, a
    // string and HTML, more than the client's own retries (7 calls), so the follow-up's bounded
    // retries are needed too.
    let fx = fixture(backend, 3, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        malformed_download_urls: 9,
        ..fast_simulator()
    })
    .await;

    // Act
    run(&fx, &sim).await;

    // Assert
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert_completed_with_expected_rows(&stored);
    for week in &stored {
        assert_eq!(week.attempts, 1, "{week:?}");
        assert_eq!(
            stored_row_count(&fx.store, week).await,
            week.row_count.unwrap()
        );
    }
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
    assert_eq!(sim.stats().served_malformed_download_urls, 27);
}

async fn a_week_whose_download_urls_never_answer_usably_fails_after_its_attempts_never_completed(
    backend: Backend,
) {
    // Arrange: downloadUrls never holds a usable array.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        malformed_download_urls: u32::MAX,
        ..fast_simulator()
    })
    .await;
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());

    // Act: the daemon runs until the week is settled (it never completes).
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;
    let week = weeks(&fx.store, fx.collection_id).await[0].clone();

    // Assert: failed with the reason once its attempts are spent, never "completed with 0 rows",
    // and never asked for forever.
    assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
    assert!(week.next_attempt_at.is_none(), "bounded: {week:?}");
    assert_eq!(week.attempts, 3, "{week:?}");
    assert_eq!(week.row_count, None);
    assert_eq!(stored_row_count(&fx.store, &week).await, 0);
    let message = week.error_message.as_deref().unwrap_or("");
    assert!(
        message.contains("could not be downloaded") && message.contains("downloadUrls"),
        "{message}"
    );
    let stats = sim.stats();
    assert_eq!(
        stats.creates_total, 1,
        "a succeeded execution is never resubmitted"
    );
    assert!(stats.served_malformed_download_urls >= 35, "{stats:?}");
    assert_eq!(stats.downloads, 0);
}

async fn cut_off_and_throttled_result_files_are_fetched_again_and_stored_whole(backend: Backend) {
    // Arrange: each file is refused twice with 503 SlowDown (once without Retry-After), then cut
    // off once; AMC throttles with Retry-After as an HTTP date.
    let fx = fixture(backend, 3, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        s3_slowdowns: 2,
        truncated_downloads: 1,
        rate_429: 0.2,
        retry_after_secs: 0,
        retry_after_http_date: true,
        ..fast_simulator()
    })
    .await;

    // Act
    run(&fx, &sim).await;

    // Assert
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert_completed_with_expected_rows(&stored);
    for week in &stored {
        assert_eq!(
            stored_row_count(&fx.store, week).await,
            week.row_count.unwrap()
        );
        assert_eq!(week.attempts, 1, "{week:?}");
    }
    let stats = sim.stats();
    let files: u64 = stored.iter().map(|w| expected_files(w).len() as u64).sum();
    assert_eq!(stats.served_s3_slowdowns, 2 * files);
    assert_eq!(stats.served_truncated_downloads, files);
    assert!(stats.served_retry_after_dates > 0, "{stats:?}");
    assert_eq!(stats.creates_total, 3);
}

async fn a_week_whose_download_channel_failed_fails_with_amcs_reason(backend: Backend) {
    // Arrange
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let doomed = weeks(&fx.store, fx.collection_id).await[0].clone();
    let sim = start_simulator(SimulatorConfig {
        download_channel_fail_windows: vec![doomed.week_start_date],
        ..fast_simulator()
    })
    .await;

    // Act
    run(&fx, &sim).await;

    // Assert: each attempt creates a new execution (the old one will never deliver) and the
    // week fails with AMC's reason once they are spent.
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(stored[0].status, WeekStatus::Failed, "{:?}", stored[0]);
    assert_eq!(stored[0].attempts, 3);
    let message = stored[0].error_message.as_deref().unwrap_or("");
    assert!(message.contains(CHANNEL_REASON), "{message}");
    assert_eq!(stored[0].row_count, None);
    assert_completed_with_expected_rows(&stored[1..]);
    let stats = sim.stats();
    assert_eq!(stats.creates_per_window.get(&window_key(&doomed)), Some(&3));
    assert_eq!(
        stats.download_url_requests, 1,
        "only the healthy week asks for urls"
    );
}

async fn a_resumed_download_that_amc_cannot_deliver_ends_with_amcs_reason(backend: Backend) {
    // Arrange: a week left in `downloading` (as after a crash) whose execution SUCCEEDED with a
    // failed DOWNLOAD channel, so downloadUrls answers "unavailable for download".
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let week = weeks(&fx.store, fx.collection_id).await[0].clone();
    let sim = start_simulator(SimulatorConfig {
        download_channel_fail_windows: vec![week.week_start_date],
        ..fast_simulator()
    })
    .await;
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    let amc_id = succeeded_execution(&settings, &week).await;
    drive_to_downloading(&fx, &week, &amc_id).await;

    // Act: one attempt only, so the outcome is that of the resumed download.
    run_with(&fx, &sim, |s| s.retry.max_attempts = 1).await;

    // Assert
    let week = &weeks(&fx.store, fx.collection_id).await[0];
    assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
    let message = week.error_message.as_deref().unwrap_or("");
    assert!(message.contains(CHANNEL_REASON), "{message}");
    assert!(message.contains(&amc_id), "{message}");
    let stats = sim.stats();
    assert_eq!(stats.creates_total, 1, "nothing new was submitted");
    assert_eq!(
        stats.download_url_requests, 1,
        "the first refusal is enough"
    );
}

/// Creates the week's execution on the simulator out of band and waits until it SUCCEEDED.
async fn succeeded_execution(settings: &amc_collector::config::Settings, week: &Week) -> String {
    let client = AmcClient::new(settings.client_config().unwrap()).unwrap();
    let instance = InstanceRef {
        instance_id: INSTANCE_ID.into(),
        advertiser_id: "ENTITYPIPE".into(),
        marketplace_id: "ATVPDKIKX0DER".into(),
        region: "na".parse().unwrap(),
        credentials: None,
    };
    let start = week.week_start_date.and_hms_opt(0, 0, 0).unwrap();
    let request = CreateExecution {
        window: TimeWindow {
            start,
            end: start + chrono::Duration::days(7),
            time_zone: chrono_tz::UTC,
        },
        workflow: WorkflowSpec::Saved {
            workflow_id: "out_of_band".into(),
        },
        parameter_values: None,
    };
    let created = client.create_execution(&instance, &request).await.unwrap();
    let id = created.workflow_execution_id.unwrap();
    let what = format!("execution {id} succeeds");
    wait_until(what, Duration::from_secs(10), || async {
        let execution = client.get_execution(&instance, &id).await.unwrap();
        execution.status.is_success()
    })
    .await;
    id
}

crate::actix_on_both_backends!(
    malformed_download_urls_at_first_still_complete_every_week_with_all_its_rows,
    a_week_whose_download_urls_never_answer_usably_fails_after_its_attempts_never_completed,
    cut_off_and_throttled_result_files_are_fetched_again_and_stored_whole,
    a_week_whose_download_channel_failed_fails_with_amcs_reason,
    a_resumed_download_that_amc_cannot_deliver_ends_with_amcs_reason,
);
