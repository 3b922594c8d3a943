//! Unit tests of configuration layering and validation.

use super::*;
use secrecy::ExposeSecret;
use std::io::Write;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file_with(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn defaults_apply_when_nothing_is_configured() {
    let settings = Settings::load_from(Some(file_with("").path()), env(&[])).unwrap();
    assert_eq!(settings.database.url, "sqlite://amc-collector.db");
    assert_eq!(settings.amc.max_in_flight_per_instance, 10);
    assert_eq!(settings.retry.max_attempts, 3);
    assert_eq!(settings.scheduler.lease_seconds, 30);
    assert_eq!(settings.collection.data_lag_days, 14);
    assert_eq!(settings.collection.retention_days, 395);
}

#[test]
fn file_overrides_defaults_and_environment_overrides_file() {
    let file = file_with("[amc]\npoll_interval_ms = 5000\nmax_retries = 4\n");
    let settings = Settings::load_from(
        Some(file.path()),
        env(&[("AMC_COLLECTOR__AMC__POLL_INTERVAL_MS", "250")]),
    )
    .unwrap();
    assert_eq!(settings.amc.poll_interval_ms, 250);
    assert_eq!(settings.amc.max_retries, 4);
}

#[test]
fn numeric_looking_secrets_from_the_environment_stay_strings() {
    let settings = Settings::load_from(
        Some(file_with("").path()),
        env(&[("AMC_COLLECTOR__AMC__CLIENT_SECRET", "123456")]),
    )
    .unwrap();
    let secret = settings.amc.client_secret.unwrap();
    assert_eq!(secret.expose_secret(), "123456");
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let settings = Settings::load_from(
        Some(file_with("").path()),
        env(&[("AMC_COLLECTOR__AMC__REFRESH_TOKEN", "Atzr|very-secret")]),
    )
    .unwrap();
    assert!(!format!("{settings:?}").contains("very-secret"));
}

#[test]
fn unknown_environment_key_is_refused_with_its_name() {
    let error = Settings::load_from(
        Some(file_with("").path()),
        env(&[("AMC_COLLECTOR__AMC__POLL_INTERVAL", "5")]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("poll_interval"), "{error}");
    assert!(
        error.contains("AMC_COLLECTOR__AMC__POLL_INTERVAL"),
        "{error}"
    );
}

#[test]
fn unknown_file_section_is_refused() {
    let error = Settings::load_from(Some(file_with("[amcc]\nx = 1\n").path()), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(error.contains("amcc"), "{error}");
}

#[test]
fn non_numeric_value_is_refused_naming_the_key() {
    let error = Settings::load_from(
        Some(file_with("").path()),
        env(&[("AMC_COLLECTOR__RETRY__MAX_ATTEMPTS", "three")]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("retry.max_attempts"), "{error}");
    assert!(!error.contains('\n'));
}

#[test]
fn out_of_range_value_is_refused_naming_the_key() {
    let error = Settings::load_from(
        Some(file_with("").path()),
        env(&[("AMC_COLLECTOR__AMC__MAX_IN_FLIGHT_PER_INSTANCE", "0")]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("amc.max_in_flight_per_instance"), "{error}");
}

#[test]
fn negative_number_in_file_is_refused() {
    let error = Settings::load_from(
        Some(file_with("[retry]\nmax_attempts = -1\n").path()),
        env(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("retry.max_attempts"), "{error}");
}

#[test]
fn database_url_with_unknown_scheme_is_refused() {
    let error = Settings::load_from(
        Some(file_with("").path()),
        env(&[("AMC_COLLECTOR__DATABASE__URL", "mysql://x")]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("database.url"), "{error}");
}

#[test]
fn malformed_environment_name_is_refused() {
    let error = Settings::load_from(
        Some(file_with("").path()),
        env(&[("AMC_COLLECTOR__DATABASE", "x")]),
    )
    .unwrap_err();
    assert!(matches!(error, ConfigError::BadEnvName { .. }));
}

#[test]
fn missing_config_file_given_explicitly_is_an_error() {
    let error =
        Settings::load_from(Some(Path::new("/nonexistent/amc.toml")), env(&[])).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
}

#[test]
fn http_and_tree_log_defaults_are_loopback_enabled_and_five_minutes() {
    let settings = Settings::load_from(Some(file_with("").path()), env(&[])).unwrap();
    assert!(settings.http.enabled);
    assert_eq!(settings.http.bind.to_string(), "127.0.0.1:9898");
    assert!(settings.http.token.is_none());
    assert_eq!(settings.scheduler.tree_log_interval_seconds, 300);
}

#[test]
fn http_section_is_read_from_the_environment_as_strings() {
    let settings = Settings::load_from(
        Some(file_with("[http]\nenabled = true\n").path()),
        env(&[
            ("AMC_COLLECTOR__HTTP__ENABLED", "false"),
            ("AMC_COLLECTOR__HTTP__BIND", "127.0.0.1:0"),
            ("AMC_COLLECTOR__HTTP__TOKEN", "s3cret-token-0123456"),
            ("AMC_COLLECTOR__SCHEDULER__TREE_LOG_INTERVAL_SECONDS", "0"),
        ]),
    )
    .unwrap();
    assert!(!settings.http.enabled);
    assert_eq!(settings.http.bind.port(), 0);
    assert_eq!(
        settings.http.token.unwrap().expose_secret(),
        "s3cret-token-0123456"
    );
    assert_eq!(settings.scheduler.tree_log_interval_seconds, 0);
}

#[test]
fn non_loopback_http_bind_without_a_token_is_refused_with_the_key_name() {
    let error = Settings::load_from(
        Some(file_with("[http]\nbind = \"0.0.0.0:9898\"\n").path()),
        env(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("http.bind"), "{error}");
    let allowed = Settings::load_from(
        Some(
            file_with("[http]\nbind = \"0.0.0.0:9898\"\ntoken = \"a-token-of-16-chars\"\n").path(),
        ),
        env(&[]),
    );
    assert!(allowed.is_ok());
}

#[test]
fn bad_http_values_are_refused_with_their_key_names() {
    let cases = [
        ("AMC_COLLECTOR__HTTP__ENABLED", "maybe", "http.enabled"),
        ("AMC_COLLECTOR__HTTP__BIND", "localhost", "http.bind"),
        ("AMC_COLLECTOR__HTTP__TOKEN", " ", "http.token"),
        (
            "AMC_COLLECTOR__SCHEDULER__TREE_LOG_INTERVAL_SECONDS",
            "999999",
            "scheduler.tree_log_interval_seconds",
        ),
    ];
    for (name, value, key) in cases {
        let error = Settings::load_from(Some(file_with("").path()), env(&[(name, value)]))
            .unwrap_err()
            .to_string();
        assert!(error.contains(key), "{name}={value}: {error}");
    }
}

#[test]
fn http_token_is_redacted_in_debug_output() {
    let settings = Settings::load_from(
        Some(file_with("").path()),
        env(&[("AMC_COLLECTOR__HTTP__TOKEN", "tok-very-secret-0123")]),
    )
    .unwrap();
    assert!(!format!("{settings:?}").contains("tok-very-secret-0123"));
}

#[test]
fn durations_that_would_overflow_arithmetic_are_refused_naming_the_key() {
    let huge = u64::MAX.to_string();
    for key in [
        "AMC__BACKOFF_BASE_MS",
        "AMC__BACKOFF_MAX_MS",
        "RETRY__BACKOFF_BASE_MS",
        "SCHEDULER__RESTART_BACKOFF_BASE_MS",
        "SCHEDULER__SHUTDOWN_DEADLINE_SECONDS",
        "SCHEDULER__RESTART_WINDOW_SECONDS",
        "SCHEDULER__SCAN_INTERVAL_MS",
    ] {
        let name = format!("AMC_COLLECTOR__{key}");
        let error = Settings::load_from(Some(file_with("").path()), env(&[(&name, &huge)]))
            .unwrap_err()
            .to_string();
        let dotted = key.to_ascii_lowercase().replacen("__", ".", 1);
        assert!(error.contains(&dotted), "{key}: {error}");
    }
    let zero_scan = env(&[("AMC_COLLECTOR__SCHEDULER__SCAN_INTERVAL_MS", "0")]);
    assert!(Settings::load_from(Some(file_with("").path()), zero_scan).is_err());
}

fn refusal(pairs: &[(&str, &str)]) -> String {
    Settings::load_from(Some(file_with("").path()), env(pairs))
        .unwrap_err()
        .to_string()
}

#[test]
fn amc_urls_must_be_https_except_on_loopback() {
    for (key, name) in [
        ("amc.token_url", "AMC_COLLECTOR__AMC__TOKEN_URL"),
        ("amc.base_url", "AMC_COLLECTOR__AMC__BASE_URL"),
    ] {
        let error = refusal(&[(name, "http://advertising-api.example.com/")]);
        assert!(error.contains(key) && error.contains("https"), "{error}");
        for allowed in [
            "https://advertising-api.example.com/",
            "http://127.0.0.1:8089/",
            "http://[::1]:8089/",
            "http://localhost:8089/",
        ] {
            Settings::load_from(Some(file_with("").path()), env(&[(name, allowed)]))
                .unwrap_or_else(|e| panic!("{allowed} refused: {e}"));
        }
    }
}

#[test]
fn a_database_schema_that_is_not_a_plain_identifier_is_refused_on_postgres() {
    let url = (
        "AMC_COLLECTOR__DATABASE__URL",
        "postgres://app@127.0.0.1/amc",
    );
    for schema in ["public", "Amc", "amc;drop", "pg_x"] {
        let error = refusal(&[url, ("AMC_COLLECTOR__DATABASE__SCHEMA", schema)]);
        assert!(error.contains("database.schema"), "{schema}: {error}");
    }
}

#[test]
fn unverified_remote_tls_is_refused_only_when_verified_tls_is_required() {
    let url = (
        "AMC_COLLECTOR__DATABASE__URL",
        "postgres://app:s3cr3t@db.example.com/amc?sslmode=require",
    );
    let required = ("AMC_COLLECTOR__DATABASE__REQUIRE_VERIFIED_TLS", "true");

    let error = refusal(&[url, required]);
    let lenient = Settings::load_from(Some(file_with("").path()), env(&[url]));
    let verified = Settings::load_from(
        Some(file_with("").path()),
        env(&[
            (
                url.0,
                "postgres://app@db.example.com/amc?sslmode=verify-full",
            ),
            required,
        ]),
    );

    assert!(
        error.contains("database.url") && error.contains("verify-full"),
        "{error}"
    );
    assert!(!error.contains("s3cr3t"), "{error}");
    assert!(lenient.is_ok());
    assert!(verified.is_ok());
}

#[test]
fn results_keys_default_to_two_downloads_and_an_hour_and_read_the_environment() {
    let settings = Settings::load_from(Some(file_with("").path()), env(&[])).unwrap();
    assert_eq!(settings.results.max_concurrent_downloads, 2);
    assert_eq!(settings.results.file_deadline_seconds, 3600);
    assert_eq!(settings.results.publish_grace_seconds, 1800);
    let settings = Settings::load_from(
        Some(file_with("[results]\nfile_deadline_seconds = 60\n").path()),
        env(&[("AMC_COLLECTOR__RESULTS__MAX_CONCURRENT_DOWNLOADS", "4")]),
    )
    .unwrap();
    assert_eq!(settings.results.max_concurrent_downloads, 4);
    assert_eq!(settings.results.file_deadline_seconds, 60);
}

#[test]
fn zero_concurrent_downloads_is_refused_naming_the_key_and_its_source() {
    let error = Settings::load_from(
        Some(file_with("").path()),
        env(&[("AMC_COLLECTOR__RESULTS__MAX_CONCURRENT_DOWNLOADS", "0")]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("results.max_concurrent_downloads"),
        "{error}"
    );
    assert!(
        error.contains("AMC_COLLECTOR__RESULTS__MAX_CONCURRENT_DOWNLOADS"),
        "{error}"
    );
}

/// `config/default.toml` says its values are the built-in defaults: it must load to exactly
/// `Settings::default()`, and name every key (set, or shown commented out as `# key = ...` for
/// the optional ones), so that it documents the whole configuration.
#[test]
fn the_shipped_default_toml_is_exactly_the_built_in_defaults_and_names_every_key() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
    let loaded = Settings::load_from(Some(&path), env(&[])).unwrap();
    let built_in = Settings::default();
    assert_eq!(format!("{loaded:#?}"), format!("{built_in:#?}"));

    let text = std::fs::read_to_string(&path).unwrap();
    let mut section = String::new();
    let mut documented = std::collections::BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, _)) = line.trim_start_matches("# ").split_once(" = ") {
            if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                documented.insert(format!("{section}.{key}"));
            }
        }
    }
    // The pretty Debug form puts each section's fields at an indent of eight spaces.
    let mut missing = Vec::new();
    let mut section = String::new();
    for line in format!("{built_in:#?}").lines() {
        if let Some(rest) = line.strip_prefix("    ").filter(|r| !r.starts_with(' ')) {
            if let Some((name, _)) = rest.split_once(": ") {
                section = name.to_string();
            }
        } else if let Some(rest) = line
            .strip_prefix("        ")
            .filter(|r| !r.starts_with(' '))
        {
            if let Some((key, _)) = rest.split_once(": ") {
                let key = format!("{section}.{key}");
                if !documented.contains(&key) {
                    missing.push(key);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "config/default.toml does not name {missing:?}"
    );
}

#[test]
fn a_publish_grace_of_zero_or_over_a_day_is_refused_naming_the_key() {
    for value in ["0", "86401"] {
        let error = Settings::load_from(
            Some(file_with("").path()),
            env(&[("AMC_COLLECTOR__RESULTS__PUBLISH_GRACE_SECONDS", value)]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("results.publish_grace_seconds"), "{error}");
    }
    let settings = Settings::load_from(
        Some(file_with("[results]\npublish_grace_seconds = 60\n").path()),
        env(&[]),
    )
    .unwrap();
    assert_eq!(
        settings.results.publish_grace(),
        std::time::Duration::from_secs(60)
    );
}
