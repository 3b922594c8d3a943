//! Streaming ingest end to end: a result larger than every buffer is stored whole and exactly
//! once; hostile content (NUL bytes, 10,000 duplicate header names), a file that never arrives
//! whole, a body that stalls and a plain-http URL to a non-loopback host each end the week as
//! specified, and none of them loops.

use std::sync::Arc;

use amc_collector::simulator::{large_result_summary, ResultContent};
use bytes::Bytes;

use super::*;

/// Settles the week with the simulator switched by `switch`, with settings tuned by `tune`.
async fn settle_one_week(
    backend: Backend,
    switch: impl FnOnce(&amc_collector::simulator::SimulatorControl),
    tune: impl FnOnce(&mut amc_collector::config::Settings),
) -> (Fixture, SimulatorHandle, Week) {
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(fast_simulator()).await;
    switch(&sim.control());
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.retry.max_attempts = 2;
    tune(&mut settings);
    run_until_idle(&fx.store, &settings, Duration::from_secs(90)).await;
    let week = weeks(&fx.store, fx.collection_id).await[0].clone();
    (fx, sim, week)
}

/// The week failed for good (no retry planned) with a message containing `needle`, no rows.
async fn assert_failed_for_good(fx: &Fixture, week: &Week, needle: &str) {
    assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
    assert!(week.next_attempt_at.is_none(), "bounded: {week:?}");
    let message = week.error_message.as_deref().unwrap_or("");
    assert!(message.contains(needle), "{message}");
    assert_eq!(week.row_count, None);
    assert_eq!(
        stored_row_count(&fx.store, week).await,
        0,
        "nothing staged stays"
    );
}

async fn a_multi_file_result_larger_than_every_buffer_is_stored_with_its_exact_count_and_checksum(
    backend: Backend,
) {
    // Arrange: 6 MiB over 3 files: several parser batches and many body chunks per file.
    let bytes = 6 * 1024 * 1024;
    let (fx, sim, week) = settle_one_week(
        backend,
        |control| control.set_result_content(ResultContent::Large { bytes, files: 3 }),
        |_| {},
    )
    .await;

    // Assert
    let (rows, checksum) = large_result_summary(bytes, 3);
    assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
    assert_eq!(week.row_count, Some(rows));
    assert_eq!(week.data_checksum.as_deref(), Some(checksum.as_str()));
    assert_eq!(stored_row_count(&fx.store, &week).await, rows);
    let mut exported = 0;
    let count = fx
        .store
        .export_rows(fx.collection_id, |row| {
            assert_eq!(
                row.data.0["note"],
                format!(
                    "row {} of file {}, generated",
                    row.row_index, row.file_index
                )
            );
            exported += 1;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!((count, exported), (rows as u64, rows));
    assert_eq!(sim.stats().served_large_results, 3);
}

async fn nul_bytes_are_stored_as_replacement_characters_and_the_week_completes(backend: Backend) {
    // Arrange: NUL in a header name and in values (Postgres refuses NUL in text and JSONB).
    let file = Bytes::from_static(b"name,no\0te\nA\0B,x\n\0,\0\0\n");
    let (fx, sim, week) = settle_one_week(
        backend,
        |control| control.set_result_content(ResultContent::Files(Arc::new(vec![file]))),
        |_| {},
    )
    .await;

    // Assert
    assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
    assert_eq!(week.row_count, Some(2));
    assert_eq!(week.attempts, 1, "{week:?}");
    let mut rows = Vec::new();
    fx.store
        .export_rows(fx.collection_id, |row| {
            rows.push(row.data.0);
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(rows[0]["name"], "A\u{FFFD}B");
    assert_eq!(rows[0]["no\u{FFFD}te"], "x");
    assert_eq!(rows[1]["no\u{FFFD}te"], "\u{FFFD}\u{FFFD}");
    assert_eq!(sim.stats().creates_total, 1);
}

async fn ten_thousand_duplicate_header_names_fail_the_week_for_good_with_a_clear_reason(
    backend: Backend,
) {
    // Arrange
    let header = vec!["x"; 10_000].join(",") + "\n";
    let file = Bytes::from(header);
    let (fx, sim, week) = settle_one_week(
        backend,
        |control| control.set_result_content(ResultContent::Files(Arc::new(vec![file]))),
        |_| {},
    )
    .await;

    // Assert: refused at once (the same bytes would be refused again), one execution only.
    assert_failed_for_good(&fx, &week, "10000 columns, more than the limit of 4096").await;
    assert_eq!(week.attempts, 1, "{week:?}");
    assert_eq!(sim.stats().creates_total, 1);
}

async fn a_file_that_never_arrives_whole_fails_the_week_after_bounded_attempts(backend: Backend) {
    // Arrange: every download of every file is cut off before its Content-Length.
    let (fx, sim, week) = settle_one_week(
        backend,
        |control| control.set_truncated_downloads(u32::MAX),
        |settings| settings.amc.max_retries = 1,
    )
    .await;

    // Assert
    assert_failed_for_good(&fx, &week, "could not be downloaded").await;
    assert_eq!(week.attempts, 2, "{week:?}");
    assert!(sim.stats().served_truncated_downloads >= 2);
}

async fn a_stalled_body_ends_at_the_file_deadline_and_the_week_fails_after_bounded_attempts(
    backend: Backend,
) {
    // Arrange: bodies trickle a byte every 100 ms forever, each read well within its timeout.
    let (fx, sim, week) = settle_one_week(
        backend,
        |control| control.set_stalled_downloads(true),
        |settings| settings.results.file_deadline_seconds = 1,
    )
    .await;

    // Assert
    assert_failed_for_good(&fx, &week, "was not downloaded within 1 s").await;
    assert_eq!(week.attempts, 2, "{week:?}");
    assert_eq!(sim.stats().served_stalled_downloads, 2);
}

async fn a_plain_http_url_to_a_non_loopback_host_is_refused_and_fails_the_week_for_good(
    backend: Backend,
) {
    // Arrange: the host is never contacted (the URL is refused before any connection).
    let (fx, sim, week) = settle_one_week(
        backend,
        |control| control.set_insecure_download_urls(Some("results.example.com")),
        |_| {},
    )
    .await;

    // Assert
    assert_failed_for_good(&fx, &week, "not https (http://results.example.com)").await;
    assert_eq!(week.attempts, 1, "{week:?}");
    let stats = sim.stats();
    assert_eq!(stats.served_insecure_download_urls, 1);
    assert_eq!(stats.downloads, 0);
}

async fn a_week_the_database_refuses_to_complete_fails_with_the_reason_after_bounded_attempts(
    backend: Backend,
) {
    // Arrange: a trigger makes the database refuse every completion (a non-transient error).
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let refuse: &[&str] = match backend {
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'completion refused by the test'; END $$",
            "CREATE TRIGGER refuse_completion BEFORE UPDATE ON report_data_weeks FOR EACH ROW \
             WHEN (NEW.status = 'completed') EXECUTE FUNCTION refuse_completion()",
        ],
        Backend::Sqlite => &[
            "CREATE TRIGGER refuse_completion BEFORE UPDATE ON report_data_weeks \
             WHEN NEW.status = 'completed' \
             BEGIN SELECT RAISE(ABORT, 'completion refused by the test'); END",
        ],
    };
    for sql in refuse {
        match &fx.store {
            amc_collector::store::Store::Postgres(pool) => {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
            amc_collector::store::Store::Sqlite(pool) => {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
        }
    }
    let sim = start_simulator(fast_simulator()).await;
    let content = ResultContent::Large {
        bytes: 256 * 1024,
        files: 2,
    };
    sim.control().set_result_content(content);
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.retry.max_attempts = 2;

    // Act
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert: failed with the database's reason once its attempts are spent, no rows left.
    let week = weeks(&fx.store, fx.collection_id).await[0].clone();
    assert_failed_for_good(&fx, &week, "completion refused by the test").await;
    assert_eq!(week.attempts, 2, "{week:?}");
}

crate::actix_on_both_backends!(
    a_week_the_database_refuses_to_complete_fails_with_the_reason_after_bounded_attempts,
    a_multi_file_result_larger_than_every_buffer_is_stored_with_its_exact_count_and_checksum,
    nul_bytes_are_stored_as_replacement_characters_and_the_week_completes,
    ten_thousand_duplicate_header_names_fail_the_week_for_good_with_a_clear_reason,
    a_file_that_never_arrives_whole_fails_the_week_after_bounded_attempts,
    a_stalled_body_ends_at_the_file_deadline_and_the_week_fails_after_bounded_attempts,
    a_plain_http_url_to_a_non_loopback_host_is_refused_and_fails_the_week_for_good,
);
