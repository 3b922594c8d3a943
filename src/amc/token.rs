//! Login-with-Amazon access tokens: cached per credential set, refreshed single-flight, never
//! exposed outside.
//!
//! A refresh that fails, whatever the cause (`invalid_grant`, `invalid_client`, 4xx, 5xx, 429,
//! timeout, transport error, garbled reply), is an outage of the credentials, not an error of the
//! call that needed the token: the caller waits while the refresh is retried with capped backoff
//! (`credentials`), and carries on once a token is granted. No AMC request is sent without a
//! token, so waiting is safe even for a create; a caller that is dropped simply stops waiting.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::bearer::{Bearer, CachedToken};
use super::credential_sets::TokenSource;
use super::credentials::outage_delay;
use super::error::AmcError;
use super::retry::parse_retry_after;
use super::stats::Endpoint;
use super::Inner;

/// Refresh this long before expiry (or at half the lifetime, if sooner) so a token never dies
/// in flight.
const REFRESH_MARGIN: TimeDelta = TimeDelta::seconds(60);
/// LwA documents 3600 s; used when a reply omits `expires_in` or gives something unreadable.
const DEFAULT_EXPIRES_IN_SECS: i64 = 3600;
/// `expires_in` is clamped to this range: a shorter lifetime would refresh on every call, a
/// longer one is not what LwA issues and would keep a revoked token cached.
pub(crate) const MIN_EXPIRES_IN_SECS: i64 = 60;
pub(crate) const MAX_EXPIRES_IN_SECS: i64 = 86_400;
/// Why one refresh attempt failed, and the pause the server asked for.
struct Failure {
    reason: String,
    retry_after: Option<Duration>,
    /// LwA refused the credentials themselves (4xx other than 429): an operator must look.
    refused: bool,
    /// A secret of the set could not be read: LwA was not asked.
    unavailable: bool,
}

impl Failure {
    fn other(reason: String) -> Self {
        Self {
            reason,
            retry_after: None,
            refused: false,
            unavailable: false,
        }
    }
}

/// What a granted refresh gives: the bearer header, the client id header, `expires_in`.
type Granted = (HeaderValue, HeaderValue, i64);

/// Largest LwA reply read.
const TOKEN_BODY_LIMIT: usize = 64 * 1024;

impl Inner {
    /// A valid bearer header of `source`'s set; waits through its outage for as long as it
    /// lasts. Never returns an error (the `Result` keeps callers' error paths uniform).
    pub(crate) async fn bearer(&self, source: &TokenSource) -> Result<Bearer, AmcError> {
        Ok(self.bearer_unless(source, None).await)
    }

    /// Called after AMC answered 401 to `rejected`: refresh unless another caller already did.
    pub(crate) async fn bearer_after_rejection(
        &self,
        source: &TokenSource,
        rejected: u64,
    ) -> Result<Bearer, AmcError> {
        Ok(self.bearer_unless(source, Some(rejected)).await)
    }

    async fn bearer_unless(&self, source: &TokenSource, rejected: Option<u64>) -> Bearer {
        loop {
            // Holding the async mutex across one refresh attempt makes callers share it; it is
            // released during an outage's pause so that status queries and new callers proceed.
            let mut cached = source.token.lock().await;
            let now = Utc::now();
            if let Some(token) = cached.as_mut() {
                if rejected == Some(token.generation) {
                    token.rejected = true;
                }
                if !token.rejected && now < token.refresh_at {
                    return token.bearer();
                }
            }
            if let Some(wait) = source.credentials.wait_remaining() {
                // While LwA fails, a token that has not expired yet keeps serving.
                if let Some(token) = cached.as_ref() {
                    if !token.rejected && now < token.expires_at {
                        return token.bearer();
                    }
                }
                drop(cached);
                tokio::time::sleep(wait).await;
                continue;
            }
            let generation = cached.as_ref().map_or(1, |t| t.generation + 1);
            match self.token_attempt(source).await {
                Ok(granted) => {
                    let token = cached.insert(self.granted(source, granted, generation));
                    return token.bearer();
                }
                Err(failure) => self.record_token_failure(source, failure),
            }
        }
    }

    fn granted(&self, source: &TokenSource, granted: Granted, generation: u64) -> CachedToken {
        let (header, client_id, expires_in) = granted;
        let now = Utc::now();
        let (refresh_at, expires_at) = token_times(now, expires_in);
        source.expires_at_ms.store(
            expires_at.timestamp_millis(),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.counters.token_refreshed();
        tracing::debug!(set = %source.name, %expires_at, "amc access token refreshed");
        if let Some((outage, failures)) = source.credentials.record_success() {
            tracing::info!(
                set = %source.name,
                outage_ms = u64::try_from(outage.as_millis()).unwrap_or(u64::MAX),
                failures,
                "Login-with-Amazon granted a token again; credentials recovered and AMC calls resume."
            );
        }
        CachedToken {
            header,
            client_id,
            refresh_at,
            expires_at,
            generation,
            rejected: false,
        }
    }

    /// One log line per backoff step, naming the set and the cause (status and LwA code, or
    /// the variable or file that cannot be read; never a body or a secret).
    fn record_token_failure(&self, source: &TokenSource, failure: Failure) {
        let failures_so_far = source.credentials.snapshot().consecutive_failures;
        let delay = outage_delay(self.backoff_base, failures_so_far + 1, failure.retry_after);
        let failures =
            source
                .credentials
                .record_failure(failure.reason.clone(), delay, failure.unavailable);
        let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        if failure.unavailable {
            tracing::error!(
                set = %source.name,
                cause = %failure.reason,
                failures,
                retry_in_ms,
                "Credentials unavailable: a secret of the set cannot be read; its instances' AMC calls wait."
            );
        } else if failure.refused {
            tracing::error!(
                set = %source.name,
                cause = %failure.reason,
                failures,
                retry_in_ms,
                "Credentials failing: Login-with-Amazon refused the token refresh; AMC calls wait until a token is granted."
            );
        } else {
            tracing::warn!(
                set = %source.name,
                cause = %failure.reason,
                failures,
                retry_in_ms,
                "Credentials failing: the token refresh failed; AMC calls wait until a token is granted."
            );
        }
    }

    async fn token_attempt(&self, source: &TokenSource) -> Result<Granted, Failure> {
        let secrets = source
            .resolve(&self.client_id, &self.client_secret)
            .map_err(|reason| Failure {
                reason,
                retry_after: None,
                refused: true,
                unavailable: true,
            })?;
        let mut client_id = HeaderValue::from_str(&secrets.client_id).map_err(|_| Failure {
            reason: "the client id is not a valid header value".into(),
            retry_after: None,
            refused: true,
            unavailable: true,
        })?;
        client_id.set_sensitive(true);
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", secrets.refresh_token.expose_secret()),
            ("client_id", secrets.client_id.as_str()),
            ("client_secret", secrets.client_secret.expose_secret()),
        ];
        let started = Instant::now();
        let transport = |e: reqwest::Error| {
            Failure::other(AmcError::from_reqwest(Endpoint::Token, e).to_string())
        };
        let sent = self
            .api_http
            .post(self.token_url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .timeout(self.request_timeout)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                self.counters.record(Endpoint::Token, None);
                return Err(transport(e));
            }
        };
        let status = response.status().as_u16();
        self.counters.record(Endpoint::Token, Some(status));
        let retry_after = parse_retry_after(response.headers().get(reqwest::header::RETRY_AFTER));
        // A token reply is a few hundred bytes; anything beyond the cap is not read (an
        // oversized success then fails to parse like any other malformed reply).
        let (body, _cut) = super::http::read_limited(&mut response, TOKEN_BODY_LIMIT)
            .await
            .map_err(transport)?;
        tracing::debug!(
            endpoint = "token",
            set = %source.name,
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "lwa token request"
        );
        match status {
            200..=299 => parse_token(&body)
                .map(|(header, expires_in)| (header, client_id, expires_in))
                .map_err(|e| Failure::other(e.to_string())),
            _ => Err(Failure {
                reason: describe_rejection(status, &body),
                retry_after,
                refused: (400..500).contains(&status) && status != 429,
                unavailable: false,
            }),
        }
    }
}

/// When to refresh and when the token expires, from `now` and a lifetime in seconds. Checked:
/// whatever the lifetime, nothing here can overflow or panic.
pub(crate) fn token_times(now: DateTime<Utc>, expires_in: i64) -> (DateTime<Utc>, DateTime<Utc>) {
    let secs = expires_in.clamp(MIN_EXPIRES_IN_SECS, MAX_EXPIRES_IN_SECS);
    let lifetime = TimeDelta::try_seconds(secs).unwrap_or(REFRESH_MARGIN);
    let expires_at = now.checked_add_signed(lifetime).unwrap_or(now);
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    let refresh_at = expires_at.checked_sub_signed(margin).unwrap_or(now);
    (refresh_at, expires_at)
}

/// The access token as a ready header, and `expires_in` clamped to
/// `[MIN_EXPIRES_IN_SECS, MAX_EXPIRES_IN_SECS]` (a number, a numeric string, or absent).
fn parse_token(body: &[u8]) -> Result<(HeaderValue, i64), AmcError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| AmcError::Decode(format!("token reply is not JSON: {e}")))?;
    let mut header = match value.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => HeaderValue::from_str(&format!("Bearer {s}"))
            .map_err(|_| AmcError::Decode("access token is not a valid header value".into()))?,
        _ => return Err(AmcError::Decode("token reply has no access_token".into())),
    };
    header.set_sensitive(true);
    Ok((header, expires_in(value.get("expires_in"))))
}

pub(crate) fn expires_in(value: Option<&Value>) -> i64 {
    let secs = match value {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|_| i64::MAX))
            .or_else(|| n.as_f64().map(saturating_secs)),
        Some(Value::String(s)) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().map(saturating_secs))
        }
        _ => None,
    };
    secs.unwrap_or(DEFAULT_EXPIRES_IN_SECS)
        .clamp(MIN_EXPIRES_IN_SECS, MAX_EXPIRES_IN_SECS)
}

/// A float number of seconds as i64; `as` saturates and maps NaN to 0, which the clamp lifts.
fn saturating_secs(secs: f64) -> i64 {
    secs as i64
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

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
