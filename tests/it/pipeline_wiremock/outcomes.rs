//! How a week ends: AMC's FAILED verdict after the configured attempts, expired result URLs, and
//! what is stored from the result files (several files, tricky CSV, a ragged row).

use std::collections::HashMap;

use amc_collector::status::{CollectionStatus, WeekStatus};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::fake_amc::{FakeAmc, Script};
use super::harness::{
    assert_completed_with, collection_status, run, run_with, script, sql_fixture, stored_rows,
};
use crate::support::pipeline::{assert_completed_weeks_are_traceable, stored_row_count, weeks};
use crate::support::Backend;

async fn an_execution_amc_fails_fails_its_week_with_amcs_reason_after_the_configured_attempts(
    backend: Backend,
) {
    // Arrange
    let (fx, stored) = sql_fixture(backend, 2).await;
    let doomed = stored[0].week_start_date;
    let reason = "Query exceeded the memory limit of the instance";
    let amc = FakeAmc::start(Script {
        fail_windows: HashMap::from([(doomed, reason.to_string())]),
        ..script()
    })
    .await;

    // Act
    run_with(&fx, &amc, |s| s.retry.max_attempts = 2).await;

    // Assert
    for week in &weeks(&fx.store, fx.collection_id).await {
        if week.week_start_date == doomed {
            assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
            assert_eq!(week.attempts, 2);
            assert_eq!(week.next_attempt_at, None);
            let message = week.error_message.as_deref().unwrap_or("");
            assert!(message.contains(reason), "{week:?}");
            assert_eq!(amc.creates_for(doomed).await.len(), 2);
        } else {
            assert_completed_with(week, &amc, 2);
            assert_eq!(amc.creates_for(week.week_start_date).await.len(), 1);
        }
    }
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
    assert_eq!(
        collection_status(&fx).await,
        (CollectionStatus::Failed, Some("1 of 2 weeks failed".into()))
    );
}

async fn a_status_the_client_does_not_know_is_polled_at_most_the_configured_time_then_fails_naming_it(
    backend: Backend,
) {
    // Arrange: one week's execution stays in a status that is not in the API model.
    let (fx, stored) = sql_fixture(backend, 2).await;
    let odd = stored[1].week_start_date;
    let amc = FakeAmc::start(Script {
        unknown_status_windows: vec![odd],
        ..script()
    })
    .await;

    // Act
    run_with(&fx, &amc, |s| {
        s.amc.unknown_status_max_seconds = 1;
        s.retry.max_attempts = 1;
    })
    .await;

    // Assert
    for week in &weeks(&fx.store, fx.collection_id).await {
        if week.week_start_date == odd {
            assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
            let message = week.error_message.as_deref().unwrap_or("");
            assert!(message.contains("`QUEUED_FOR_REVIEW`"), "{week:?}");
        } else {
            assert_completed_with(week, &amc, 2);
        }
    }
}

async fn an_expired_download_url_is_renewed_and_the_week_completes(backend: Backend) {
    // Arrange
    let (fx, stored) = sql_fixture(backend, 2).await;
    let amc = FakeAmc::start(Script {
        expire_first_urls: true,
        ..script()
    })
    .await;

    // Act
    run(&fx, &amc).await;

    // Assert
    for week in &weeks(&fx.store, fx.collection_id).await {
        assert_completed_with(week, &amc, 2);
        assert_eq!(week.attempts, 1);
    }
    for week in &stored {
        let amc_id = amc.amc_ids_for(week.week_start_date).pop().unwrap();
        let asked = amc
            .requests_ending(&format!("/{amc_id}/downloadUrls"))
            .await;
        assert_eq!(asked.len(), 2, "downloadUrls must be asked again");
        let signatures: Vec<String> = amc
            .downloads()
            .await
            .into_iter()
            .filter(|r| r.url.path().contains(&amc_id))
            .filter_map(|r| r.url.query().map(str::to_string))
            .collect();
        assert_eq!(
            signatures,
            ["X-Amz-Signature=v1", "X-Amz-Signature=v2"],
            "the expired url, then the renewed one"
        );
    }
}

async fn two_result_files_are_counted_without_headers_and_checksummed_in_order(backend: Backend) {
    // Arrange
    let (fx, stored) = sql_fixture(backend, 1).await;
    let files = vec![
        b"campaign,impressions\nalpha,1\nbeta,2\n".to_vec(),
        b"campaign,impressions\ngamma,3\n".to_vec(),
    ];
    let amc = FakeAmc::start(Script {
        files: HashMap::from([(stored[0].week_start_date, files.clone())]),
        ..script()
    })
    .await;

    // Act
    run(&fx, &amc).await;

    // Assert
    let week = &weeks(&fx.store, fx.collection_id).await[0];
    assert_completed_with(week, &amc, 3);
    let expected = hex::encode(Sha256::digest(files.concat()));
    assert_eq!(week.data_checksum.as_deref(), Some(expected.as_str()));
    assert_eq!(
        stored_rows(&fx.store, week).await,
        [
            json!({"campaign": "alpha", "impressions": "1"}),
            json!({"campaign": "beta", "impressions": "2"}),
            json!({"campaign": "gamma", "impressions": "3"}),
        ]
    );
}

async fn quoted_commas_newlines_quotes_and_non_ascii_are_stored_exactly(backend: Backend) {
    // Arrange
    let (fx, stored) = sql_fixture(backend, 1).await;
    let csv = "name,note,city\n\
               \"Smith, John\",\"He said \"\"hi\"\"\",Zürich\n\
               \"line one\nline two\",\"a,b,\"\"c\"\"\",東京 – café ✓\n";
    let amc = FakeAmc::start(Script {
        files: HashMap::from([(stored[0].week_start_date, vec![csv.as_bytes().to_vec()])]),
        ..script()
    })
    .await;

    // Act
    run(&fx, &amc).await;

    // Assert
    let week = &weeks(&fx.store, fx.collection_id).await[0];
    assert_completed_with(week, &amc, 2);
    assert_eq!(
        stored_rows(&fx.store, week).await,
        [
            json!({"name": "Smith, John", "note": "He said \"hi\"", "city": "Zürich"}),
            json!({"name": "line one\nline two", "note": "a,b,\"c\"", "city": "東京 – café ✓"}),
        ]
    );
}

async fn a_ragged_result_fails_only_its_week_with_a_clear_reason(backend: Backend) {
    // Arrange
    let (fx, stored) = sql_fixture(backend, 3).await;
    let ragged = stored[1].week_start_date;
    let amc = FakeAmc::start(Script {
        files: HashMap::from([(ragged, vec![b"a,b\n1,2\n3\n".to_vec()])]),
        ..script()
    })
    .await;

    // Act
    run(&fx, &amc).await;

    // Assert
    for week in &weeks(&fx.store, fx.collection_id).await {
        if week.week_start_date == ragged {
            assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
            assert_eq!(week.next_attempt_at, None, "a bad result is not retried");
            let message = week.error_message.as_deref().unwrap_or("");
            assert!(
                message.contains("has 1 fields, the header has 2"),
                "{message}"
            );
            assert_eq!(week.row_count, None);
            assert_eq!(stored_row_count(&fx.store, week).await, 0);
        } else {
            assert_completed_with(week, &amc, 2);
        }
    }
    assert_eq!(
        collection_status(&fx).await,
        (CollectionStatus::Failed, Some("1 of 3 weeks failed".into()))
    );
}

/// Everything the current thread logs, as plain text (the week futures run on the test's thread).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn an_empty_download_urls_list_completes_with_0_rows_and_warns_with_both_ids(
    backend: Backend,
) {
    // Arrange: AMC answers `{"downloadUrls": []}` for the first week, its DOWNLOAD channel
    // AVAILABLE.
    let (fx, stored) = sql_fixture(backend, 2).await;
    let empty = stored[0].week_start_date;
    let amc = FakeAmc::start(Script {
        files: HashMap::from([(empty, Vec::new())]),
        ..script()
    })
    .await;
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);

    // Act
    run(&fx, &amc).await;
    drop(guard);

    // Assert: an empty list AMC affirms is an answer (0 rows), made visible with both ids.
    for week in &weeks(&fx.store, fx.collection_id).await {
        if week.week_start_date == empty {
            assert_completed_with(week, &amc, 0);
            assert_eq!(week.attempts, 1);
            let execution_id = week.execution_id.unwrap().to_string();
            let amc_id = week.amc_execution_id.clone().unwrap();
            let text = log.text();
            let warning = text
                .lines()
                .find(|line| line.contains("WARN") && line.contains("empty downloadUrls"))
                .unwrap_or_else(|| panic!("no warning in:\n{text}"));
            assert!(warning.contains(&execution_id), "{warning}");
            assert!(warning.contains(&amc_id), "{warning}");
        } else {
            assert_completed_with(week, &amc, 2);
        }
    }
}

crate::actix_on_both_backends!(
    a_status_the_client_does_not_know_is_polled_at_most_the_configured_time_then_fails_naming_it,
    an_execution_amc_fails_fails_its_week_with_amcs_reason_after_the_configured_attempts,
    an_expired_download_url_is_renewed_and_the_week_completes,
    two_result_files_are_counted_without_headers_and_checksummed_in_order,
    quoted_commas_newlines_quotes_and_non_ascii_are_stored_exactly,
    a_ragged_result_fails_only_its_week_with_a_clear_reason,
    an_empty_download_urls_list_completes_with_0_rows_and_warns_with_both_ids,
);
