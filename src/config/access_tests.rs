//! Unit tests of what `access.rs` derives from the settings: durations and the AMC client's
//! configuration, from the one set of defaults.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::*;

#[test]
fn every_duration_key_is_read_as_a_duration_in_its_unit() {
    let env = [
        ("AMC_COLLECTOR__AMC__POLL_INTERVAL_MS", "250"),
        ("AMC_COLLECTOR__AMC__REQUEST_TIMEOUT_MS", "1500"),
        ("AMC_COLLECTOR__AMC__BACKOFF_BASE_MS", "20"),
        ("AMC_COLLECTOR__AMC__BACKOFF_MAX_MS", "900"),
        ("AMC_COLLECTOR__RETRY__BACKOFF_BASE_MS", "700"),
        ("AMC_COLLECTOR__SCHEDULER__LEASE_SECONDS", "12"),
        ("AMC_COLLECTOR__SCHEDULER__SCAN_INTERVAL_MS", "150"),
        ("AMC_COLLECTOR__SCHEDULER__SHUTDOWN_DEADLINE_SECONDS", "9"),
        ("AMC_COLLECTOR__SCHEDULER__RESTART_WINDOW_SECONDS", "45"),
        ("AMC_COLLECTOR__SCHEDULER__RESTART_BACKOFF_BASE_MS", "80"),
        ("AMC_COLLECTOR__SCHEDULER__TREE_LOG_INTERVAL_SECONDS", "60"),
        ("AMC_COLLECTOR__RESULTS__FILE_DEADLINE_SECONDS", "120"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let settings = Settings::load_from(Some(empty_file().path()), env).unwrap();

    assert_eq!(settings.amc.poll_interval(), Duration::from_millis(250));
    assert_eq!(settings.amc.request_timeout(), Duration::from_millis(1500));
    assert_eq!(settings.amc.backoff_base(), Duration::from_millis(20));
    assert_eq!(settings.amc.backoff_max(), Duration::from_millis(900));
    assert_eq!(settings.retry.backoff_base(), Duration::from_millis(700));
    let scheduler = &settings.scheduler;
    assert_eq!(scheduler.lease(), Duration::from_secs(12));
    assert_eq!(scheduler.scan_interval(), Duration::from_millis(150));
    assert_eq!(scheduler.shutdown_deadline(), Duration::from_secs(9));
    assert_eq!(scheduler.restart_window(), Duration::from_secs(45));
    assert_eq!(scheduler.restart_backoff_base(), Duration::from_millis(80));
    assert_eq!(scheduler.tree_log_interval(), Some(Duration::from_secs(60)));
    assert_eq!(settings.results.file_deadline(), Duration::from_secs(120));
}

#[test]
fn a_tree_log_interval_of_zero_means_no_periodic_log() {
    let mut settings = Settings::default();
    settings.scheduler.tree_log_interval_seconds = 0;
    assert_eq!(settings.scheduler.tree_log_interval(), None);
}

#[test]
fn the_amc_client_built_from_default_settings_has_the_documented_defaults() {
    let config = Settings::default().client_config_with(
        "id",
        SecretString::from("secret"),
        SecretString::from("refresh"),
    );
    assert_eq!(config.base_url_override, None);
    assert_eq!(config.token_url, "https://api.amazon.com/auth/o2/token");
    assert_eq!(config.request_timeout, Duration::from_secs(30));
    assert_eq!(config.max_retries, 8);
    assert_eq!(config.backoff_base, Duration::from_millis(500));
    assert_eq!(config.backoff_max, Duration::from_secs(60));
    assert_eq!(config.max_requests_per_second, 20);
    assert_eq!(config.max_result_bytes, 2 * 1024 * 1024 * 1024);
    assert_eq!(config.download_file_deadline, Duration::from_secs(3600));
}

#[test]
fn the_amc_client_takes_every_amc_key_and_the_file_deadline_from_the_settings() {
    let mut settings = Settings::default();
    settings.amc.base_url = Some("http://127.0.0.1:9/".into());
    settings.amc.token_url = "http://127.0.0.1:9/token".into();
    settings.amc.client_id = Some("client".into());
    settings.amc.client_secret = Some(SecretString::from("secret"));
    settings.amc.refresh_token = Some(SecretString::from("refresh"));
    settings.amc.request_timeout_ms = 1_234;
    settings.amc.max_retries = 3;
    settings.amc.backoff_base_ms = 7;
    settings.amc.backoff_max_ms = 70;
    settings.amc.max_requests_per_second = 5;
    settings.amc.max_result_bytes = 1_000;
    settings.results.file_deadline_seconds = 42;

    let config = settings.client_config().unwrap();

    assert_eq!(
        config.base_url_override.as_deref(),
        Some("http://127.0.0.1:9/")
    );
    assert_eq!(config.token_url, "http://127.0.0.1:9/token");
    assert_eq!(config.client_id, "client");
    assert_eq!(config.client_secret.expose_secret(), "secret");
    assert_eq!(config.refresh_token.expose_secret(), "refresh");
    assert_eq!(config.request_timeout, Duration::from_millis(1_234));
    assert_eq!(config.max_retries, 3);
    assert_eq!(config.backoff_base, Duration::from_millis(7));
    assert_eq!(config.backoff_max, Duration::from_millis(70));
    assert_eq!(config.max_requests_per_second, 5);
    assert_eq!(config.max_result_bytes, 1_000);
    assert_eq!(config.download_file_deadline, Duration::from_secs(42));
}

#[test]
fn a_missing_credential_names_its_key_and_environment_variable() {
    let mut settings = Settings::default();
    settings.amc.client_id = Some("client".into());
    settings.amc.client_secret = Some(SecretString::from("secret"));

    let error = settings.client_config().unwrap_err();

    assert_eq!(
        error.to_string(),
        "configuration key `amc.refresh_token` is required to run \
         (set AMC_COLLECTOR__AMC__REFRESH_TOKEN)"
    );
}

fn empty_file() -> tempfile::NamedTempFile {
    tempfile::NamedTempFile::new().unwrap()
}
