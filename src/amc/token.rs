//! Login-with-Amazon access tokens: cached, refreshed single-flight, never exposed outside.

use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::error::AmcError;
use super::retry::{parse_retry_after, Outcome};
use super::stats::Endpoint;
use super::Inner;

/// Refresh this long before expiry so a token never dies in flight.
const REFRESH_MARGIN: TimeDelta = TimeDelta::seconds(60);
/// LwA documents 3600 s; used when a reply omits `expires_in`.
const DEFAULT_EXPIRES_IN_SECS: i64 = 3600;
/// Sentinel of `token_expires_at_ms` meaning "no token yet".
pub(crate) const NO_TOKEN: i64 = i64::MIN;

pub(crate) struct CachedToken {
    access: SecretString,
    expires_at: DateTime<Utc>,
    /// Increases with each refresh, so a 401 only forces a refresh if nobody refreshed since.
    generation: u64,
}

/// A ready `Authorization` header and the token generation it came from.
pub(crate) struct Bearer {
    pub(crate) header: HeaderValue,
    pub(crate) generation: u64,
}

impl Inner {
    /// A valid bearer header, refreshing first when under a minute of validity remains.
    pub(crate) async fn bearer(&self) -> Result<Bearer, AmcError> {
        // Holding the async mutex across the refresh makes concurrent callers share one refresh.
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            if token.expires_at - Utc::now() > REFRESH_MARGIN {
                return bearer_of(token);
            }
        }
        self.refresh_into(&mut cached).await
    }

    /// Called after AMC answered 401 to `rejected`: refresh unless another caller already did.
    pub(crate) async fn bearer_after_rejection(&self, rejected: u64) -> Result<Bearer, AmcError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            if token.generation != rejected {
                return bearer_of(token);
            }
        }
        self.refresh_into(&mut cached).await
    }

    async fn refresh_into(&self, cached: &mut Option<CachedToken>) -> Result<Bearer, AmcError> {
        let generation = cached.as_ref().map_or(1, |t| t.generation + 1);
        let (access, expires_in) = self
            .with_retries(Endpoint::Token, |attempt| self.token_attempt(attempt))
            .await?;
        let expires_at = Utc::now() + TimeDelta::seconds(expires_in);
        self.token_expires_at_ms
            .store(expires_at.timestamp_millis(), Ordering::Relaxed);
        self.counters.token_refreshed();
        tracing::debug!(%expires_at, "amc access token refreshed");
        let token = cached.insert(CachedToken {
            access,
            expires_at,
            generation,
        });
        bearer_of(token)
    }

    async fn token_attempt(&self, attempt: u32) -> Outcome<(SecretString, i64)> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", self.refresh_token.expose_secret()),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        let started = Instant::now();
        let sent = self
            .api_http
            .post(self.token_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .timeout(self.request_timeout)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                self.counters.record(Endpoint::Token, None);
                return Outcome::retry(AmcError::from_reqwest(Endpoint::Token, e));
            }
        };
        let status = response.status().as_u16();
        self.counters.record(Endpoint::Token, Some(status));
        let retry_after = parse_retry_after(response.headers().get(reqwest::header::RETRY_AFTER));
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return Outcome::retry(AmcError::from_reqwest(Endpoint::Token, e)),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(
            endpoint = "token",
            status,
            attempt,
            elapsed_ms,
            "lwa token request"
        );
        match status {
            200..=299 => match parse_token(&body) {
                Ok(token) => Outcome::Done(token),
                Err(e) => Outcome::retry(e),
            },
            429 => {
                tracing::warn!(endpoint = "token", retry_after = ?retry_after, "lwa throttled");
                Outcome::Retryable {
                    error: AmcError::RateLimited { retry_after },
                    retry_after,
                }
            }
            500..=599 => {
                tracing::warn!(endpoint = "token", status, "lwa server error");
                Outcome::retry(AmcError::http(Endpoint::Token, status, &body))
            }
            _ => Outcome::Fatal(AmcError::Auth(describe_rejection(status, &body))),
        }
    }

    /// Expiry of the cached access token, if one was obtained.
    pub(crate) fn cached_token_expiry(&self) -> Option<DateTime<Utc>> {
        match self.token_expires_at_ms.load(Ordering::Relaxed) {
            NO_TOKEN => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }
}

fn bearer_of(token: &CachedToken) -> Result<Bearer, AmcError> {
    let mut header = HeaderValue::from_str(&format!("Bearer {}", token.access.expose_secret()))
        .map_err(|_| AmcError::Auth("access token is not a valid header value".into()))?;
    header.set_sensitive(true);
    Ok(Bearer {
        header,
        generation: token.generation,
    })
}

fn parse_token(body: &[u8]) -> Result<(SecretString, i64), AmcError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| AmcError::Decode(format!("token reply is not JSON: {e}")))?;
    let access = match value.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => SecretString::from(s.as_str()),
        _ => return Err(AmcError::Decode("token reply has no access_token".into())),
    };
    let expires_in = value
        .get("expires_in")
        .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        .filter(|secs| *secs > 0)
        .unwrap_or(DEFAULT_EXPIRES_IN_SECS);
    Ok((access, expires_in))
}

/// Describes a refused refresh by status and LwA's `error` code only: the rest of the body is
/// not trusted to be free of credentials.
fn describe_rejection(status: u16, body: &[u8]) -> String {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .filter(|c| c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_'));
    match code {
        Some(code) => format!("token endpoint answered http {status} ({code})"),
        None => format!("token endpoint answered http {status}"),
    }
}
