//! The `[alerts]` section (issue 15): where alerts are posted, in which shape, how they are
//! signed, and the delivery's pacing. Its checks live here too, so the section stays one file.

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{de, origin_of, ConfigError};

/// The body posted to the webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// The alert as a JSON object (`event`, `collection_id`, ...).
    #[default]
    Json,
    /// Slack's incoming-webhook shape: `{"text": "<one readable line>"}`.
    Slack,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsSettings {
    /// Where alerts are POSTed (https, or plain http on loopback); no alerts are sent when unset.
    pub webhook_url: Option<String>,
    pub format: AlertFormat,
    /// When set, each body is signed: `X-Amc-Collector-Signature: sha256=<hex HMAC-SHA256>`.
    pub secret: Option<SecretString>,
    /// A collection held back by AMC's daily limit this long is reported (`quota.waiting`).
    #[serde(deserialize_with = "de::number")]
    pub quota_waiting_after_seconds: u64,
    /// How often the outbox is looked at for alerts to deliver, in milliseconds.
    #[serde(deserialize_with = "de::number")]
    pub poll_interval_ms: u64,
    /// Timeout of one delivery attempt, in milliseconds.
    #[serde(deserialize_with = "de::number")]
    pub timeout_ms: u64,
    /// First pause after a failed delivery, in milliseconds; doubled per attempt, with jitter.
    #[serde(deserialize_with = "de::number")]
    pub backoff_base_ms: u64,
    /// Longest pause between two delivery attempts of one alert, in milliseconds.
    #[serde(deserialize_with = "de::number")]
    pub backoff_max_ms: u64,
}

impl Default for AlertsSettings {
    fn default() -> Self {
        Self {
            webhook_url: None,
            format: AlertFormat::Json,
            secret: None,
            quota_waiting_after_seconds: 3600,
            poll_interval_ms: 2_000,
            timeout_ms: 10_000,
            backoff_base_ms: 5_000,
            backoff_max_ms: 900_000,
        }
    }
}

impl AlertsSettings {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn quota_waiting_after(&self) -> Duration {
        Duration::from_secs(self.quota_waiting_after_seconds)
    }

    /// Range and format checks; the first failure names its key (and never the secret).
    pub(super) fn validate(
        &self,
        env_keys: &[(String, String)],
        file: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_string(),
            origin: origin_of(key, env_keys, file),
            message: message.to_string(),
        };
        if let Some(raw) = &self.webhook_url {
            let Ok(url) = url::Url::parse(raw) else {
                return Err(invalid("alerts.webhook_url", "is not a valid URL"));
            };
            if !crate::amc::url_is_allowed(&url) {
                return Err(invalid(
                    "alerts.webhook_url",
                    "must be an https:// URL (plain http only on loopback: 127.0.0.0/8, ::1, localhost)",
                ));
            }
        }
        let checks: [(&str, bool, &str); 6] = [
            (
                "alerts.secret",
                !self
                    .secret
                    .as_ref()
                    .is_some_and(|secret| secret.expose_secret().trim().is_empty()),
                "must not be empty",
            ),
            (
                "alerts.quota_waiting_after_seconds",
                (1..=2_592_000).contains(&self.quota_waiting_after_seconds),
                "must be in 1..=2592000",
            ),
            (
                "alerts.poll_interval_ms",
                (10..=3_600_000).contains(&self.poll_interval_ms),
                "must be in 10..=3600000",
            ),
            (
                "alerts.timeout_ms",
                (100..=600_000).contains(&self.timeout_ms),
                "must be in 100..=600000",
            ),
            (
                "alerts.backoff_base_ms",
                (1..=3_600_000).contains(&self.backoff_base_ms),
                "must be in 1..=3600000",
            ),
            (
                "alerts.backoff_max_ms",
                self.backoff_max_ms >= self.backoff_base_ms && self.backoff_max_ms <= 86_400_000,
                "must be in alerts.backoff_base_ms..=86400000",
            ),
        ];
        match checks.iter().find(|(_, ok, _)| !ok) {
            Some((key, _, message)) => Err(invalid(key, message)),
            None => Ok(()),
        }
    }
}
