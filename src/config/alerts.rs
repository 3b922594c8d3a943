//! The `[alerts]` section: where alerts are posted, in which shape, how they are
//! signed, and the delivery's pacing. Its checks live here too, so the section stays one file.

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{de, invalid_key, ConfigError};

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

    pub fn backoff_base(&self) -> Duration {
        Duration::from_millis(self.backoff_base_ms)
    }

    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms)
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
        let invalid = |key: &str, message: &str| invalid_key(key, message, env_keys, file);
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

#[cfg(test)]
mod tests {
    use crate::config::{AlertFormat, ConfigError, Settings};
    use secrecy::ExposeSecret;

    fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::load_from(None, env)
    }

    #[test]
    fn alerts_are_configured_from_the_environment() {
        let settings = load(&[
            (
                "AMC_COLLECTOR__ALERTS__WEBHOOK_URL",
                "https://hooks.example.com/services/T/B/x",
            ),
            ("AMC_COLLECTOR__ALERTS__FORMAT", "slack"),
            ("AMC_COLLECTOR__ALERTS__SECRET", "s3cret-value"),
            ("AMC_COLLECTOR__ALERTS__QUOTA_WAITING_AFTER_SECONDS", "600"),
        ])
        .unwrap();
        let alerts = &settings.alerts;
        assert_eq!(alerts.format, AlertFormat::Slack);
        assert_eq!(alerts.quota_waiting_after_seconds, 600);
        assert_eq!(
            alerts.secret.as_ref().unwrap().expose_secret(),
            "s3cret-value"
        );
        assert!(!format!("{settings:?}").contains("s3cret-value"));
    }

    #[test]
    fn alerts_are_off_and_wait_an_hour_for_the_daily_limit_by_default() {
        let settings = load(&[]).unwrap();
        assert!(settings.alerts.webhook_url.is_none());
        assert_eq!(settings.alerts.format, AlertFormat::Json);
        assert_eq!(settings.alerts.quota_waiting_after_seconds, 3600);
    }

    #[test]
    fn bad_alert_values_name_their_key_and_never_the_secret() {
        let cases: [(&str, &str, &str); 6] = [
            (
                "AMC_COLLECTOR__ALERTS__WEBHOOK_URL",
                "http://hooks.example.com/x",
                "alerts.webhook_url",
            ),
            (
                "AMC_COLLECTOR__ALERTS__WEBHOOK_URL",
                "not a url",
                "alerts.webhook_url",
            ),
            ("AMC_COLLECTOR__ALERTS__FORMAT", "xml", "alerts.format"),
            ("AMC_COLLECTOR__ALERTS__SECRET", "  ", "alerts.secret"),
            (
                "AMC_COLLECTOR__ALERTS__QUOTA_WAITING_AFTER_SECONDS",
                "0",
                "alerts.quota_waiting_after_seconds",
            ),
            (
                "AMC_COLLECTOR__ALERTS__BACKOFF_MAX_MS",
                "0",
                "alerts.backoff_max_ms",
            ),
        ];
        for (name, value, key) in cases {
            let error = load(&[(name, value), ("AMC_COLLECTOR__ALERTS__SECRET", "hidden-1")])
                .err()
                .map(|e| e.to_string());
            let error = match name {
                "AMC_COLLECTOR__ALERTS__SECRET" => {
                    load(&[(name, value)]).err().map(|e| e.to_string())
                }
                _ => error,
            }
            .unwrap_or_else(|| panic!("{name}={value} accepted"));
            assert!(error.contains(key), "{error}");
            assert!(!error.contains("hidden-1"), "{error}");
        }
    }
}
