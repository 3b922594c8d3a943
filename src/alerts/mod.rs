//! Alerts: what is posted to the `[alerts] webhook_url` and how. The alerts are written
//! to the outbox by the state changes they report (`store::alerts`) or by the alerter's own
//! observations (`watch`: credentials, the daily limit); the `Alerter` actor (`alerter`) claims
//! them, posts each one (`Webhook`), and marks it delivered or schedules its retry.
//!
//! This module owns the wire format: the JSON body (or Slack's `{"text": ...}`), the
//! `X-Amc-Collector-Signature: sha256=<hex>` HMAC over the exact body, and the retry curve.
//! Nothing here ever carries or prints the secret or the webhook URL (a Slack URL is itself a
//! credential): errors name the host at most.

mod alerter;
mod watch;

pub use alerter::{Alerter, AlerterSettings, StopAlerter};
pub use watch::Watch;

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::backoff::{Backoff, Jitter};
use crate::config::{AlertFormat, AlertsSettings};
use crate::store::OutboxAlert;

/// Header carrying the body's HMAC-SHA256 (`sha256=<lower-case hex>`), when a secret is set.
pub const SIGNATURE_HEADER: &str = "X-Amc-Collector-Signature";
/// Header naming the event, so a receiver can route without parsing.
pub const EVENT_HEADER: &str = "X-Amc-Collector-Event";
/// Header carrying the alert's outbox id: the same id on a repeated delivery (dedupe by it).
pub const DELIVERY_HEADER: &str = "X-Amc-Collector-Delivery";

/// Errors of one delivery attempt. Messages never hold the URL or the secret.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("webhook answered http {0}")]
    Status(u16),
    #[error("webhook did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the webhook host {0}")]
    Connect(String),
    #[error("webhook request failed")]
    Request,
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("alerts.webhook_url is not usable")]
    Url,
}

/// The webhook and its client.
#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    format: AlertFormat,
    secret: Option<SecretString>,
    timeout: Duration,
}

impl Webhook {
    /// `None` when no webhook is configured.
    pub fn from_settings(settings: &AlertsSettings) -> Result<Option<Self>, AlertError> {
        let Some(raw) = &settings.webhook_url else {
            return Ok(None);
        };
        // Validated at load; checked again so a hand-built `Settings` cannot post in clear text.
        let url = url::Url::parse(raw).map_err(|_| AlertError::Url)?;
        if !crate::amc::url_is_allowed(&url) {
            return Err(AlertError::Url);
        }
        let client = reqwest::Client::builder()
            .timeout(settings.timeout())
            // A redirect could carry the signed body elsewhere; the webhook is the URL given.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("amc-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| AlertError::Client(error.without_url().to_string()))?;
        Ok(Some(Self {
            client,
            url,
            format: settings.format,
            secret: settings.secret.clone(),
            timeout: settings.timeout(),
        }))
    }

    /// The webhook's host, for logs (the full URL may hold a token).
    pub fn host(&self) -> String {
        self.url.host_str().unwrap_or("?").to_string()
    }

    /// Posts one alert; `Ok` once the webhook answered 2xx.
    pub async fn post(&self, alert: &OutboxAlert) -> Result<(), AlertError> {
        let body = render(alert, self.format);
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, alert.event.as_str())
            .header(DELIVERY_HEADER, alert.id.to_string());
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        let reply = request.body(body).send().await.map_err(|error| {
            if error.is_timeout() {
                AlertError::Timeout(self.timeout)
            } else if error.is_connect() {
                AlertError::Connect(self.host())
            } else {
                AlertError::Request
            }
        })?;
        let status = reply.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(AlertError::Status(status.as_u16()))
        }
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body).
pub fn signature(secret: &SecretString, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The alert as the JSON object delivered: `alert_id`, `event`, `collection_id` (null when the
/// event concerns no collection), `week_id`/`execution_id` where they apply, `occurred_at`, then
/// the event's own fields.
pub fn alert_json(alert: &OutboxAlert) -> Value {
    let mut object = Map::new();
    object.insert("alert_id".into(), Value::from(alert.id));
    object.insert("event".into(), Value::from(alert.event.as_str()));
    object.insert(
        "collection_id".into(),
        alert
            .collection_id
            .map_or(Value::Null, |id| Value::from(id.to_string())),
    );
    if let Some(week) = alert.week_id {
        object.insert("week_id".into(), Value::from(week.to_string()));
    }
    if let Some(execution) = alert.execution_id {
        object.insert("execution_id".into(), Value::from(execution.to_string()));
    }
    object.insert(
        "occurred_at".into(),
        Value::from(alert.created_at.to_rfc3339()),
    );
    if let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(&alert.payload) {
        for (key, value) in extra {
            object.entry(key).or_insert(value);
        }
    }
    Value::Object(object)
}

/// The exact body posted (and signed).
pub fn render(alert: &OutboxAlert, format: AlertFormat) -> Vec<u8> {
    let json = alert_json(alert);
    let value = match format {
        AlertFormat::Json => json,
        AlertFormat::Slack => serde_json::json!({ "text": slack_line(&json) }),
    };
    value.to_string().into_bytes()
}

/// One readable line, e.g. `amc-collector: collection 1b2c… completed`.
pub fn slack_line(alert: &Value) -> String {
    let text = |key: &str| alert.get(key).and_then(Value::as_str).unwrap_or("?");
    let collection = text("collection_id");
    let what = match text("event") {
        "week.failed" => format!(
            "week {} of collection {collection} failed for good: {}",
            text("week_start_date"),
            text("reason")
        ),
        "collection.completed" => format!("collection {collection} completed"),
        "collection.failed" => format!("collection {collection} failed: {}", text("detail")),
        "collection.cancelled" => format!("collection {collection} was cancelled"),
        "credentials.failing" => match text("set") {
            "?" | crate::amc::DEFAULT_CREDENTIAL_SET => {
                format!("AMC credentials failing: {}", text("reason"))
            }
            set => format!("AMC credential set {set} failing: {}", text("reason")),
        },
        "credentials.recovered" => match text("set") {
            "?" | crate::amc::DEFAULT_CREDENTIAL_SET => "AMC credentials recovered".to_string(),
            set => format!("AMC credential set {set} recovered"),
        },
        "quota.waiting" => format!(
            "collection {collection} waits for AMC's daily limit until {}",
            text("waiting_until")
        ),
        other => other.to_string(),
    };
    format!("amc-collector: {}", crate::escape::escape_controls(&what))
}

/// Pause before the next delivery attempt after `failures` failed ones: `base * 2^(failures-1)`
/// capped at `max`, with equal jitter (half fixed, half random) so restarted processes spread.
pub fn retry_delay(base: Duration, max: Duration, failures: u32) -> Duration {
    Backoff::new(base, max)
        .with_jitter(Jitter::Equal)
        .delay(failures.saturating_sub(1))
}

#[cfg(test)]
mod tests;
