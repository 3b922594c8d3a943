//! The client against the project's simulator with download-side faults on: what reaches the
//! caller is either the exact files or a transient error, never a short or empty result.

use std::time::Instant;

use amc_collector::simulator::{self, expected_result_files, SimulatorConfig, SimulatorHandle};
use bytes::Bytes;

use super::*;
use crate::support::wait_until;

const WORKFLOW: &str = "weekly_sales";

fn fast(config: SimulatorConfig) -> SimulatorConfig {
    SimulatorConfig {
        pending_ms: 5,
        running_ms: 20,
        publishing_ms: 5,
        ..config
    }
}

async fn simulator(config: SimulatorConfig) -> SimulatorHandle {
    simulator::start("127.0.0.1:0".parse().unwrap(), fast(config))
        .await
        .unwrap()
}

fn client_of(sim: &SimulatorHandle, max_retries: u32, backoff_max: Duration) -> AmcClient {
    let (client_id, secret, refresh) = sim.credentials();
    let mut config = Settings::default().client_config_with(
        client_id,
        SecretString::from(secret),
        SecretString::from(refresh),
    );
    config.base_url_override = Some(sim.base_url());
    config.token_url = sim.token_url();
    config.request_timeout = Duration::from_secs(5);
    config.max_retries = max_retries;
    config.backoff_base = Duration::from_millis(1);
    config.backoff_max = backoff_max;
    config.max_requests_per_second = 0;
    AmcClient::new(config).unwrap()
}

fn utc_week() -> CreateExecution {
    CreateExecution {
        window: TimeWindow {
            time_zone: chrono_tz::UTC,
            ..ny_week()
        },
        ..saved(WORKFLOW)
    }
}

fn expected_files() -> Vec<Vec<u8>> {
    expected_result_files(
        "amc123",
        WORKFLOW,
        "2024-01-01T00:00:00",
        "2024-01-08T00:00:00",
        1.0,
    )
}

/// Creates the week's execution and waits (bounded) until it has SUCCEEDED.
async fn succeeded_execution(client: &AmcClient) -> String {
    let created = client
        .create_execution(&instance(), &utc_week())
        .await
        .unwrap();
    let id = created.workflow_execution_id.unwrap();
    let what = format!("execution {id} succeeds");
    wait_until(what, Duration::from_secs(10), || async {
        let info = client.get_execution(&instance(), &id).await.unwrap();
        info.status == ExecutionStatus::Succeeded
    })
    .await;
    id
}

fn as_vecs(files: Vec<Bytes>) -> Vec<Vec<u8>> {
    files.into_iter().map(|f| f.to_vec()).collect()
}

#[tokio::test]
async fn a_result_file_cut_off_before_its_content_length_is_downloaded_again_whole() {
    let sim = simulator(SimulatorConfig {
        truncated_downloads: 1,
        ..SimulatorConfig::default()
    })
    .await;
    let client = client_of(&sim, 3, Duration::from_millis(5));
    let id = succeeded_execution(&client).await;

    let files = client.download_results(&instance(), &id).await.unwrap();

    assert_eq!(as_vecs(files), expected_files());
    let stats = sim.stats();
    assert_eq!(
        stats.served_truncated_downloads,
        expected_files().len() as u64
    );
}

#[tokio::test]
async fn a_result_file_cut_off_every_time_is_a_transient_error_never_a_short_file() {
    let sim = simulator(SimulatorConfig {
        truncated_downloads: u32::MAX,
        ..SimulatorConfig::default()
    })
    .await;
    let client = client_of(&sim, 2, Duration::from_millis(5));
    let id = succeeded_execution(&client).await;

    let error = client.download_results(&instance(), &id).await.unwrap_err();

    // hyper itself refuses a body that ends before its Content-Length.
    assert!(matches!(error, AmcError::Transport(_)), "{error:?}");
    assert!(error.is_transient());
    assert_eq!(sim.stats().served_truncated_downloads, 3);
}

#[tokio::test]
async fn s3_slowdown_with_and_without_retry_after_is_retried_until_the_file_is_served() {
    let sim = simulator(SimulatorConfig {
        s3_slowdowns: 2,
        ..SimulatorConfig::default()
    })
    .await;
    let client = client_of(&sim, 3, Duration::from_millis(5));
    let id = succeeded_execution(&client).await;

    let files = client.download_results(&instance(), &id).await.unwrap();

    assert_eq!(as_vecs(files), expected_files());
    assert_eq!(
        sim.stats().served_s3_slowdowns,
        2 * expected_files().len() as u64
    );
}

#[tokio::test]
async fn malformed_download_urls_replies_are_asked_again_and_then_answered() {
    let sim = simulator(SimulatorConfig {
        malformed_download_urls: 4,
        ..SimulatorConfig::default()
    })
    .await;
    let client = client_of(&sim, 4, Duration::from_millis(5));
    let id = succeeded_execution(&client).await;

    let files = client.download_results(&instance(), &id).await.unwrap();

    assert_eq!(as_vecs(files), expected_files());
    assert_eq!(sim.stats().served_malformed_download_urls, 4);
}

#[tokio::test]
async fn download_urls_never_answered_usably_is_a_transient_decode_error_not_zero_files() {
    let sim = simulator(SimulatorConfig {
        malformed_download_urls: u32::MAX,
        ..SimulatorConfig::default()
    })
    .await;
    let client = client_of(&sim, 3, Duration::from_millis(5));
    let id = succeeded_execution(&client).await;

    let result = client.download_results(&instance(), &id).await;

    let error = result.expect_err("a malformed downloadUrls reply must not read as no files");
    assert!(matches!(error, AmcError::Decode(_)), "{error:?}");
    assert!(error.is_transient());
    let stats = sim.stats();
    assert_eq!(stats.served_malformed_download_urls, 4, "{stats:?}");
    assert_eq!(stats.downloads, 0);
}

#[tokio::test]
async fn an_http_date_retry_after_is_honoured() {
    let sim = simulator(SimulatorConfig {
        rate_429: 1.0,
        retry_after_secs: 1,
        retry_after_http_date: true,
        ..SimulatorConfig::default()
    })
    .await;
    let client = client_of(&sim, 1, Duration::from_secs(1));
    let started = Instant::now();

    let error = client.get_execution(&instance(), "e1").await.unwrap_err();

    assert!(
        matches!(
            error,
            AmcError::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{error:?}"
    );
    // The date is at least one second ahead; only a lower bound cannot flake.
    assert!(started.elapsed() >= Duration::from_millis(900));
    let stats = sim.stats();
    assert_eq!((stats.served_429, stats.served_retry_after_dates), (2, 2));
}

#[tokio::test]
async fn an_http_date_retry_after_far_ahead_is_capped_and_kept_in_the_error() {
    let sim = simulator(SimulatorConfig {
        rate_429: 1.0,
        retry_after_secs: 3600,
        retry_after_http_date: true,
        ..SimulatorConfig::default()
    })
    .await;
    let client = client_of(&sim, 1, Duration::from_millis(5));

    // The wait is capped at 4 x backoff_max (20 ms), so an hour-long date cannot stall the call.
    let instance = instance();
    let call = client.get_execution(&instance, "e1");
    let error = tokio::time::timeout(Duration::from_secs(30), call)
        .await
        .expect("Retry-After must be capped")
        .unwrap_err();

    let AmcError::RateLimited {
        retry_after: Some(wait),
    } = error
    else {
        panic!("{error:?}");
    };
    assert!(
        wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3601),
        "{wait:?}"
    );
}
