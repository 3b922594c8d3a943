//! Retry policy (exponential backoff with full jitter, `Retry-After`) and the global rate limiter.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use tokio::time::Instant;

use super::error::AmcError;
use super::stats::Endpoint;
use super::Inner;
use crate::backoff::{Backoff, Jitter};

/// Result of one attempt of a retried operation.
pub(crate) enum Outcome<T> {
    Done(T),
    /// Worth another attempt; `retry_after` is the server's requested pause, if it gave one.
    Retryable {
        error: AmcError,
        retry_after: Option<Duration>,
    },
    Fatal(AmcError),
}

impl<T> Outcome<T> {
    pub(crate) fn retry(error: AmcError) -> Self {
        Outcome::Retryable {
            error,
            retry_after: None,
        }
    }
}

impl Inner {
    /// Runs `attempt_fn(attempt)` until it is done, fatal, or `max_retries` retries are spent.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        endpoint: Endpoint,
        mut attempt_fn: F,
    ) -> Result<T, AmcError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let mut attempt = 0;
        loop {
            match attempt_fn(attempt).await {
                Outcome::Done(value) => return Ok(value),
                Outcome::Retryable { error, retry_after } if attempt < self.max_retries => {
                    let delay = self.retry_delay(attempt, retry_after);
                    tracing::debug!(
                        %endpoint,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %error,
                        "retrying amc call"
                    );
                    self.counters.retry();
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Outcome::Retryable { error, .. } | Outcome::Fatal(error) => return Err(error),
            }
        }
    }

    /// The server's `Retry-After` when given (capped at 4 x `backoff_max`), else the backoff curve.
    fn retry_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.backoff_max.saturating_mul(4)),
            None => full_jitter(self.backoff_base, self.backoff_max, attempt),
        }
    }
}

/// A uniformly random delay in `[0, min(max, base * 2^attempt)]`, so concurrent clients spread out.
pub(crate) fn full_jitter(base: Duration, max: Duration, attempt: u32) -> Duration {
    Backoff::new(base, max)
        .with_jitter(Jitter::Full)
        .delay(attempt)
}

/// `Retry-After` as delta-seconds or an HTTP-date; a date in the past means "now".
pub(crate) fn parse_retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let raw = value?.to_str().ok()?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

/// A token bucket refilled at `per_second` with a burst of one second's worth.
pub(crate) struct RateLimiter {
    per_second: u32,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            per_second,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(per_second),
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Waits until a request may be sent; returns at once when unlimited.
    pub(crate) async fn acquire(&self) {
        if self.per_second == 0 {
            return;
        }
        loop {
            let wait = self.try_take();
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    fn try_take(&self) -> Option<Duration> {
        let rate = f64::from(self.per_second);
        // A poisoned lock only means another task panicked mid-update; the counts stay usable.
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_never_exceeds_the_cap() {
        let base = Duration::from_millis(10);
        let max = Duration::from_millis(50);
        for attempt in 0..40 {
            assert!(full_jitter(base, max, attempt) <= max);
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let secs = HeaderValue::from_static("7");
        assert_eq!(parse_retry_after(Some(&secs)), Some(Duration::from_secs(7)));
        let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(Some(&past)), Some(Duration::ZERO));
        let junk = HeaderValue::from_static("soon");
        assert_eq!(parse_retry_after(Some(&junk)), None);
        assert_eq!(parse_retry_after(None), None);
    }

    #[tokio::test]
    async fn limiter_spaces_requests_beyond_the_burst() {
        let limiter = RateLimiter::new(50);
        let started = Instant::now();
        for _ in 0..55 {
            limiter.acquire().await;
        }
        // Fifty from the initial burst, then one every 20 ms; only a lower bound cannot flake.
        assert!(started.elapsed() >= Duration::from_millis(60));
    }
}
