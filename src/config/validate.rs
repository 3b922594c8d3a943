//! Range and format checks of a loaded configuration; each failure names the key and its source.

use std::path::Path;

use super::{origin_of, ConfigError, Settings};
use crate::store::dsn::{PgTarget, TRANSACTION_POOLER};

/// Most days back a week may start: AMC keeps 13 months of data.
const MAX_RETENTION_DAYS: u32 = 395;

/// One range check: the key, whether its value passed, and the message when it did not.
type Check = (&'static str, bool, &'static str);

impl Settings {
    /// Checks run in a fixed order and the first failure is the one reported: duration bounds,
    /// the scan interval, the AMC URLs, Postgres specifics, then the range checks of each section.
    pub(super) fn validate(
        &self,
        env_keys: &[(String, String)],
        file: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let fail = |key: &str, message: &str| invalid(key, env_keys, file, message);
        if let Some((key, message)) = self.duration_overflow() {
            return Err(fail(key, message));
        }
        if !(10..=3_600_000).contains(&self.scheduler.scan_interval_ms) {
            // Zero would make the scan interval timer spin (or panic).
            return Err(fail(
                "scheduler.scan_interval_ms",
                "must be in 10..=3600000",
            ));
        }
        if let Some((key, message)) = self.refused_amc_url() {
            return Err(fail(key, message));
        }
        self.validate_postgres(env_keys, file)?;
        self.alerts.validate(env_keys, file)?;
        self.http.validate(env_keys, file)?;
        let checks = [
            self.pipeline_checks().as_slice(),
            self.database_checks().as_slice(),
            self.amc_checks().as_slice(),
            self.retry_and_supervision_checks().as_slice(),
            self.collection_checks().as_slice(),
            self.exposure_checks().as_slice(),
        ]
        .concat();
        match checks.iter().find(|(_, ok, _)| !ok) {
            Some((key, _, message)) => Err(fail(key, message)),
            None => Ok(()),
        }
    }

    /// Durations that feed `Instant + d`, `Duration * 2^n` or `DateTime + d`: bounded so that
    /// no arithmetic on them can overflow (and panic), whatever is configured.
    fn duration_overflow(&self) -> Option<(&'static str, &'static str)> {
        let durations: [(&str, u64, u64, &str); 6] = [
            (
                "amc.backoff_base_ms",
                self.amc.backoff_base_ms,
                3_600_000,
                "must be at most 3600000",
            ),
            (
                "amc.backoff_max_ms",
                self.amc.backoff_max_ms,
                3_600_000,
                "must be at most 3600000",
            ),
            (
                "retry.backoff_base_ms",
                self.retry.backoff_base_ms,
                86_400_000,
                "must be at most 86400000",
            ),
            (
                "scheduler.restart_backoff_base_ms",
                self.scheduler.restart_backoff_base_ms,
                3_600_000,
                "must be at most 3600000",
            ),
            (
                "scheduler.shutdown_deadline_seconds",
                self.scheduler.shutdown_deadline_seconds,
                86_400,
                "must be at most 86400",
            ),
            (
                "scheduler.restart_window_seconds",
                self.scheduler.restart_window_seconds,
                86_400,
                "must be at most 86400",
            ),
        ];
        durations
            .into_iter()
            .find(|(_, value, max, _)| value > max)
            .map(|(key, _, _, message)| (key, message))
    }

    /// The first AMC URL that does not parse or would send credentials without TLS.
    fn refused_amc_url(&self) -> Option<(&'static str, &'static str)> {
        let urls = [
            ("amc.token_url", Some(self.amc.token_url.as_str())),
            ("amc.base_url", self.amc.base_url.as_deref()),
        ];
        for (key, value) in urls {
            let Some(value) = value else { continue };
            let Ok(parsed) = url::Url::parse(value) else {
                return Some((key, "is not a valid URL"));
            };
            // Tokens and client secrets travel on these: only loopback may go without TLS.
            if !crate::amc::url_is_allowed(&parsed) {
                return Some((
                    key,
                    "must be an https:// URL (plain http only on loopback: 127.0.0.0/8, ::1, localhost)",
                ));
            }
        }
        None
    }

    /// `results.*`, and the scheduler's collection and claim counts.
    fn pipeline_checks(&self) -> [Check; 5] {
        [
            (
                "results.max_concurrent_downloads",
                (1..=64).contains(&self.results.max_concurrent_downloads),
                "must be in 1..=64",
            ),
            (
                "results.file_deadline_seconds",
                (1..=86_400).contains(&self.results.file_deadline_seconds),
                "must be in 1..=86400",
            ),
            (
                "results.publish_grace_seconds",
                (1..=86_400).contains(&self.results.publish_grace_seconds),
                "must be in 1..=86400",
            ),
            (
                "scheduler.max_collections",
                self.scheduler.max_collections >= 1,
                "must be at least 1",
            ),
            (
                "scheduler.claim_batch",
                (1..=10_000).contains(&self.scheduler.claim_batch),
                "must be in 1..=10000",
            ),
        ]
    }

    fn database_checks(&self) -> [Check; 2] {
        [
            (
                "database.url",
                self.database.url.starts_with("sqlite:")
                    || self.database.url.starts_with("postgres://")
                    || self.database.url.starts_with("postgresql://"),
                "must start with sqlite:, postgres:// or postgresql://",
            ),
            (
                "database.max_connections",
                (1..=200).contains(&self.database.max_connections),
                "must be in 1..=200",
            ),
        ]
    }

    fn amc_checks(&self) -> [Check; 8] {
        [
            (
                "amc.poll_interval_ms",
                (10..=3_600_000).contains(&self.amc.poll_interval_ms),
                "must be in 10..=3600000",
            ),
            (
                "amc.max_in_flight_per_instance",
                (1..=200).contains(&self.amc.max_in_flight_per_instance),
                "must be in 1..=200",
            ),
            (
                "amc.max_creates_per_day",
                self.amc.max_creates_per_day <= 100_000,
                "must be at most 100000 (0 = no limit)",
            ),
            (
                "amc.quota_window_seconds",
                (1..=315_360_000).contains(&self.amc.quota_window_seconds),
                "must be in 1..=315360000",
            ),
            (
                "amc.request_timeout_ms",
                (100..=600_000).contains(&self.amc.request_timeout_ms),
                "must be in 100..=600000",
            ),
            (
                "amc.max_retries",
                self.amc.max_retries <= 50,
                "must be at most 50",
            ),
            (
                "amc.backoff_max_ms",
                self.amc.backoff_max_ms >= self.amc.backoff_base_ms,
                "must be at least amc.backoff_base_ms",
            ),
            (
                "amc.unknown_status_max_seconds",
                (1..=30 * 86_400).contains(&self.amc.unknown_status_max_seconds),
                "must be in 1..=2592000",
            ),
        ]
    }

    /// `retry.max_attempts` and the scheduler's lease and restart intensity.
    fn retry_and_supervision_checks(&self) -> [Check; 3] {
        [
            (
                "retry.max_attempts",
                (1..=20).contains(&self.retry.max_attempts),
                "must be in 1..=20",
            ),
            (
                "scheduler.lease_seconds",
                (2..=3600).contains(&self.scheduler.lease_seconds),
                "must be in 2..=3600",
            ),
            (
                "scheduler.restart_intensity",
                self.scheduler.restart_intensity >= 1,
                "must be at least 1",
            ),
        ]
    }

    fn collection_checks(&self) -> [Check; 2] {
        [
            (
                // AMC keeps 13 months of data (AMC documentation, data retention): a week older
                // than that can only come back empty or refused.
                "collection.retention_days",
                (7..=MAX_RETENTION_DAYS).contains(&self.collection.retention_days),
                "must be in 7..=395 (AMC keeps 13 months of data)",
            ),
            (
                "collection.data_lag_days",
                self.collection.data_lag_days < self.collection.retention_days,
                "must be below collection.retention_days",
            ),
        ]
    }

    /// How the supervision tree is shown: its log interval (who may read it over HTTP is
    /// `http.rs`'s check).
    fn exposure_checks(&self) -> [Check; 1] {
        [(
            "scheduler.tree_log_interval_seconds",
            self.scheduler.tree_log_interval_seconds <= 86_400,
            "must be at most 86400",
        )]
    }
}

impl Settings {
    /// Postgres only: the schema name, the URL's readability, Supabase's transaction pooler, and
    /// certificate verification when `database.require_verified_tls` asks for it.
    fn validate_postgres(
        &self,
        env_keys: &[(String, String)],
        file: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let database = &self.database;
        if !(database.url.starts_with("postgres://") || database.url.starts_with("postgresql://")) {
            // SQLite, or a scheme the checks above refuse.
            return Ok(());
        }
        if !crate::store::schema::valid_schema_name(&database.schema) {
            return Err(invalid(
                "database.schema",
                env_keys,
                file,
                "must be a plain lower-case identifier (a-z, 0-9, _; not public or pg_*)",
            ));
        }
        if !crate::store::schema::valid_schema_name(&self.results.schema)
            || self.results.schema == database.schema
        {
            return Err(invalid(
                "results.schema",
                env_keys,
                file,
                "must be a plain lower-case identifier (a-z, 0-9, _; not public or pg_*) other \
                 than database.schema",
            ));
        }
        let url_error = |message: &str| invalid("database.url", env_keys, file, message);
        let target = PgTarget::parse(&database.url).map_err(|e| url_error(&e.to_string()))?;
        if target.transaction_pooler {
            return Err(url_error(TRANSACTION_POOLER));
        }
        if database.require_verified_tls {
            if let Some(risk) = target.tls_risk() {
                return Err(url_error(&format!(
                    "is refused because database.require_verified_tls = true: {risk}"
                )));
            }
        }
        Ok(())
    }
}

fn invalid(
    key: &str,
    env_keys: &[(String, String)],
    file: Option<&Path>,
    msg: &str,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        origin: origin_of(key, env_keys, file),
        message: msg.to_string(),
    }
}
