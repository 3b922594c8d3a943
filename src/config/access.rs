//! What the rest of the program reads from `Settings` beyond the raw keys: every duration key as a
//! `Duration` (the keys keep their `_ms`/`_seconds` names; the unit is converted here only), the
//! daily limit as the store checks it, and the AMC client's configuration.

use std::time::Duration;

use secrecy::SecretString;

use super::{
    AmcSettings, ConfigError, ResultsSettings, RetrySettings, SchedulerSettings, Settings,
    ENV_PREFIX,
};
use crate::amc::AmcClientConfig;

impl AmcSettings {
    /// `amc.poll_interval_ms`: delay between two status polls of one execution.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// `amc.unknown_status_max_seconds`: how long a status the client does not know is polled.
    pub fn unknown_status_max(&self) -> Duration {
        Duration::from_secs(self.unknown_status_max_seconds)
    }

    /// `amc.request_timeout_ms`: deadline of one HTTP attempt.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// `amc.backoff_base_ms`: first HTTP retry delay.
    pub fn backoff_base(&self) -> Duration {
        Duration::from_millis(self.backoff_base_ms)
    }

    /// `amc.backoff_max_ms`: cap of one HTTP retry delay.
    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms)
    }

    /// The daily limit as the store checks it.
    pub fn create_quota(&self) -> crate::store::CreateQuota {
        crate::store::CreateQuota {
            max_creates: i64::from(self.max_creates_per_day),
            // Validated to at most ten years, far inside `TimeDelta`'s range.
            window: chrono::TimeDelta::try_seconds(
                i64::try_from(self.quota_window_seconds).unwrap_or(i64::MAX),
            )
            .unwrap_or(chrono::TimeDelta::MAX),
        }
    }
}

impl RetrySettings {
    /// `retry.backoff_base_ms`: first delay before a failed week is tried again.
    pub fn backoff_base(&self) -> Duration {
        Duration::from_millis(self.backoff_base_ms)
    }
}

impl SchedulerSettings {
    /// `scheduler.lease_seconds`.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    /// `scheduler.scan_interval_ms`.
    pub fn scan_interval(&self) -> Duration {
        Duration::from_millis(self.scan_interval_ms)
    }

    /// `scheduler.shutdown_deadline_seconds`.
    pub fn shutdown_deadline(&self) -> Duration {
        Duration::from_secs(self.shutdown_deadline_seconds)
    }

    /// `scheduler.restart_window_seconds`.
    pub fn restart_window(&self) -> Duration {
        Duration::from_secs(self.restart_window_seconds)
    }

    /// `scheduler.restart_backoff_base_ms`.
    pub fn restart_backoff_base(&self) -> Duration {
        Duration::from_millis(self.restart_backoff_base_ms)
    }

    /// `scheduler.tree_log_interval_seconds`; `None` when it is 0 (never).
    pub fn tree_log_interval(&self) -> Option<Duration> {
        match self.tree_log_interval_seconds {
            0 => None,
            seconds => Some(Duration::from_secs(seconds)),
        }
    }
}

impl ResultsSettings {
    /// `results.file_deadline_seconds`: deadline of one result file as a whole.
    pub fn file_deadline(&self) -> Duration {
        Duration::from_secs(self.file_deadline_seconds)
    }

    /// `results.publish_grace_seconds`: how long unpublished results are waited for.
    pub fn publish_grace(&self) -> Duration {
        Duration::from_secs(self.publish_grace_seconds)
    }
}

impl Settings {
    /// The AMC client's configuration; `run` needs the three credentials.
    pub fn client_config(&self) -> Result<AmcClientConfig, ConfigError> {
        let amc = &self.amc;
        let client_id = amc.client_id.clone().ok_or_else(|| required("client_id"))?;
        let client_secret = amc
            .client_secret
            .clone()
            .ok_or_else(|| required("client_secret"))?;
        let refresh_token = amc
            .refresh_token
            .clone()
            .ok_or_else(|| required("refresh_token"))?;
        Ok(self.client_config_with(client_id, client_secret, refresh_token))
    }

    /// The AMC client's configuration around the given credentials (tools and tests that have
    /// them from elsewhere); everything else comes from these settings.
    pub fn client_config_with(
        &self,
        client_id: impl Into<String>,
        client_secret: SecretString,
        refresh_token: SecretString,
    ) -> AmcClientConfig {
        let amc = &self.amc;
        AmcClientConfig {
            base_url_override: amc.base_url.clone(),
            token_url: amc.token_url.clone(),
            client_id: client_id.into(),
            client_secret,
            refresh_token,
            request_timeout: amc.request_timeout(),
            max_retries: amc.max_retries,
            backoff_base: amc.backoff_base(),
            backoff_max: amc.backoff_max(),
            max_requests_per_second: amc.max_requests_per_second,
            max_result_bytes: amc.max_result_bytes,
            download_file_deadline: self.results.file_deadline(),
        }
    }
}

fn required(key: &str) -> ConfigError {
    ConfigError::Required {
        key: format!("amc.{key}"),
        env: format!("{ENV_PREFIX}AMC__{}", key.to_ascii_uppercase()),
    }
}
