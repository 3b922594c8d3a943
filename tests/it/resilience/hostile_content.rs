//! Hostile AMC content against the real actor tree (scripted AMC on wiremock): a result that
//! cannot be stored fails only its week with a clear reason; garbage where JSON is expected is
//! retried until JSON returns. The daemon always goes on to finish the other weeks. Formula-like
//! cells are neutralised by `export --excel-safe`.

use std::collections::HashMap;
use std::time::Duration;

use amc_collector::config::Settings;
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::Week;
use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

use super::common::SQL;
use crate::pipeline_wiremock::fake_amc::{executions_path, FakeAmc, Script};
use crate::pipeline_wiremock::script::default_files;
use crate::support::pipeline::{
    assert_completed_weeks_are_traceable, fixture, run_until_idle, settings, stored_row_count,
    weeks, Fixture,
};
use crate::support::{assert_usage_error, stdout_of, Backend};
use amc_collector::store::WorkflowSource;

async fn sql_fixture(backend: Backend, week_count: i64) -> (Fixture, Vec<Week>) {
    let fx = fixture(backend, week_count, WorkflowSource::Sql(SQL.into())).await;
    let stored = weeks(&fx.store, fx.collection_id).await;
    (fx, stored)
}

async fn run_with(fx: &Fixture, amc: &FakeAmc, tune: impl FnOnce(&mut Settings)) {
    let mut settings = settings(&fx.db.url, &amc.base_url(), &amc.token_url());
    tune(&mut settings);
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;
}

fn script_with_files(files: HashMap<NaiveDate, Vec<Vec<u8>>>) -> Script {
    Script {
        running_polls: 1,
        files,
        ..Script::default()
    }
}

/// The week completed with the two rows and the checksum of the fake's default file.
async fn assert_completed_with_default_file(fx: &Fixture, week: &Week) {
    assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
    assert_eq!(week.row_count, Some(2), "{week:?}");
    let expected = hex::encode(Sha256::digest(&default_files(week.week_start_date)[0]));
    assert_eq!(week.data_checksum.as_deref(), Some(expected.as_str()));
    assert_eq!(stored_row_count(&fx.store, week).await, 2);
}

/// The week failed for good on its first attempt, stored nothing, and says `reason_fragment`.
async fn assert_failed_once_with(fx: &Fixture, amc: &FakeAmc, week: &Week, reason_fragment: &str) {
    assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
    assert_eq!(
        week.attempts, 1,
        "a refused result is not worth another run: {week:?}"
    );
    assert_eq!(week.next_attempt_at, None, "{week:?}");
    assert_eq!(week.row_count, None, "{week:?}");
    assert_eq!(stored_row_count(&fx.store, week).await, 0);
    let message = week.error_message.as_deref().unwrap_or("");
    assert!(
        message.contains(reason_fragment),
        "error_message: {message}"
    );
    assert_eq!(amc.creates_for(week.week_start_date).await.len(), 1);
}

async fn collection_status(fx: &Fixture) -> (CollectionStatus, Option<String>) {
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    (collection.status, collection.error_message)
}

async fn non_utf8_bytes_in_a_csv_field_fail_only_that_week_with_a_clear_reason(backend: Backend) {
    // Arrange
    let (fx, stored) = sql_fixture(backend, 2).await;
    let doomed = stored[0].week_start_date;
    let file = b"campaign,week,impressions\nalpha,\xff\xfe\xfd,10\n".to_vec();
    let amc = FakeAmc::start(script_with_files(HashMap::from([(doomed, vec![file])]))).await;

    // Act
    run_with(&fx, &amc, |_| {}).await;

    // Assert
    let after = weeks(&fx.store, fx.collection_id).await;
    assert_failed_once_with(&fx, &amc, &after[0], "not valid UTF-8").await;
    assert_completed_with_default_file(&fx, &after[1]).await;
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
    assert_eq!(
        collection_status(&fx).await,
        (CollectionStatus::Failed, Some("1 of 2 weeks failed".into()))
    );
}

async fn a_result_over_max_result_bytes_fails_only_that_week_as_too_large(backend: Backend) {
    // Arrange: 50 KB served against a 10 000-byte limit.
    let (fx, stored) = sql_fixture(backend, 2).await;
    let doomed = stored[0].week_start_date;
    let mut huge = b"campaign,week,impressions\n".to_vec();
    while huge.len() < 50_000 {
        huge.extend_from_slice(b"some-campaign-name,2024-01-01,123456789\n");
    }
    let amc = FakeAmc::start(script_with_files(HashMap::from([(doomed, vec![huge])]))).await;

    // Act
    run_with(&fx, &amc, |s| s.amc.max_result_bytes = 10_000).await;

    // Assert
    let after = weeks(&fx.store, fx.collection_id).await;
    assert_failed_once_with(&fx, &amc, &after[0], "exceed the limit of 10000 bytes").await;
    assert_completed_with_default_file(&fx, &after[1]).await;
    assert_eq!(
        collection_status(&fx).await,
        (CollectionStatus::Failed, Some("1 of 2 weeks failed".into()))
    );
}

async fn html_and_garbled_json_status_replies_are_retried_until_json_returns(backend: Backend) {
    // Arrange: the first status polls get a proxy's HTML page, then truncated JSON, all with 200;
    // more of them than the client retries one call, so the actor's own polling loop meets them too.
    // Status listings are refused so that every status is read with a GET.
    let (fx, stored) = sql_fixture(backend, 1).await;
    let amc = FakeAmc::start(Script {
        running_polls: 1,
        refuse_status_listings: true,
        ..Script::default()
    })
    .await;
    let get_execution = format!("^{}/[^/]+$", executions_path());
    Mock::given(method("GET"))
        .and(path_regex(get_execution.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "text/html",
        ))
        .up_to_n_times(4)
        .with_priority(1)
        .mount(&amc.server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(get_execution))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(r#"{"workflowExecutionId": "amcexec-"#, "application/json"),
        )
        .up_to_n_times(4)
        .with_priority(2)
        .mount(&amc.server)
        .await;

    // Act
    run_with(&fx, &amc, |s| s.amc.max_retries = 2).await;

    // Assert
    let after = weeks(&fx.store, fx.collection_id).await;
    assert_completed_with_default_file(&fx, &after[0]).await;
    assert_eq!(after[0].attempts, 1, "{:?}", after[0]);
    assert_eq!(amc.creates_for(stored[0].week_start_date).await.len(), 1);
    let amc_id = after[0].amc_execution_id.clone().unwrap();
    let polls = amc.requests_ending(&format!("/{amc_id}")).await.len();
    assert!(
        polls >= 8 + 2,
        "only {polls} status polls: garbage was not retried"
    );
    assert_eq!(collection_status(&fx).await.0, CollectionStatus::Completed);
}

async fn an_excel_safe_csv_export_neutralises_formula_cells_and_other_exports_keep_values(
    backend: Backend,
) {
    // Arrange: a result whose header and values a spreadsheet would evaluate.
    let (fx, stored) = sql_fixture(backend, 1).await;
    let file = b"campaign,=cmd,impressions\n=HYPERLINK(\"http://x\"),@SUM(A1),-5\nalpha,+1,10\n";
    let files = HashMap::from([(stored[0].week_start_date, vec![file.to_vec()])]);
    let amc = FakeAmc::start(script_with_files(files)).await;
    run_with(&fx, &amc, |_| {}).await;
    let id = fx.collection_id.to_string();

    // Act
    let safe = stdout_of(&fx.db.run(&["collection", "export", &id, "--excel-safe"]));
    let plain = stdout_of(&fx.db.run(&["collection", "export", &id]));
    let jsonl = stdout_of(
        &fx.db
            .run(&["collection", "export", &id, "--format", "jsonl"]),
    );

    // Assert: only the result cells change (the fixed columns never start with a formula sign).
    let cells = |text: &str| -> Vec<Vec<String>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        reader
            .records()
            .map(|r| r.unwrap().iter().skip(5).map(str::to_string).collect())
            .collect()
    };
    assert_eq!(
        cells(&safe),
        [
            vec!["campaign", "'=cmd", "impressions"],
            vec!["'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "'-5"],
            vec!["alpha", "'+1", "10"],
        ]
    );
    assert_eq!(
        cells(&plain),
        [
            vec!["campaign", "=cmd", "impressions"],
            vec!["=HYPERLINK(\"http://x\")", "@SUM(A1)", "-5"],
            vec!["alpha", "+1", "10"],
        ]
    );
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["data"]["=cmd"], "@SUM(A1)");
    assert_usage_error(
        &fx.db.run(&[
            "collection",
            "export",
            &id,
            "--format",
            "jsonl",
            "--excel-safe",
        ]),
        "--excel-safe applies to --format csv",
    );
}

crate::actix_on_both_backends!(
    non_utf8_bytes_in_a_csv_field_fail_only_that_week_with_a_clear_reason,
    a_result_over_max_result_bytes_fails_only_that_week_as_too_large,
    html_and_garbled_json_status_replies_are_retried_until_json_returns,
    an_excel_safe_csv_export_neutralises_formula_cells_and_other_exports_keep_values,
);
