//! The "credentials failing" state of the AMC client: when Login-with-Amazon refuses or fails a
//! token refresh, nothing is failed; every call needing a bearer waits while the refresh is
//! retried with capped exponential backoff. This module owns that state (since when, why, when
//! the next attempt is due, how many failures) and its backoff curve; `token` drives it.
//!
//! The state sits behind a std `Mutex` so that status queries read it synchronously (the gateway
//! answers `GetGatewayStatus` without awaiting anything).

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::backoff::{Backoff, Jitter};

/// Longest pause between two token attempts while credentials fail.
pub const CREDENTIALS_BACKOFF_CAP: Duration = Duration::from_secs(300);

/// What status queries see of the credentials (`/status`, `/readyz`, metrics, `status`).
/// Never carries a secret: `last_error` is a status line and LwA's error code only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsSnapshot {
    /// True from a failed token refresh until the next granted one.
    pub failing: bool,
    /// The last failure was a secret that could not be read (variable unset, file missing),
    /// not Login-with-Amazon's answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unavailable: bool,
    /// When the current outage began (its first failed refresh).
    pub failing_since: Option<DateTime<Utc>>,
    /// Why the last refresh failed, e.g. `token endpoint answered http 400 (invalid_grant)`.
    pub last_error: Option<String>,
    /// When the token endpoint is asked again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Failed refreshes in the current outage.
    pub consecutive_failures: u32,
    /// Failed refreshes since the client started.
    pub failures_total: u64,
    /// Outages that ended with a granted token.
    pub recoveries_total: u64,
    /// Length of the last outage that ended, in milliseconds.
    pub last_outage_ms: Option<u64>,
}

impl CredentialsSnapshot {
    /// One line for people: `credentials failing since T: reason`, or `None` when healthy.
    pub fn describe(&self) -> Option<String> {
        if !self.failing {
            return None;
        }
        let since = self
            .failing_since
            .map_or_else(|| "?".to_string(), |t| t.to_rfc3339());
        let reason = self.last_error.as_deref().unwrap_or("unknown reason");
        Some(format!("credentials failing since {since}: {reason}"))
    }
}

/// The mutable state; `next_attempt` is the monotonic twin of `next_attempt_at` used to sleep.
#[derive(Default)]
pub(crate) struct Credentials {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    snapshot: CredentialsSnapshot,
    next_attempt: Option<Instant>,
}

impl Credentials {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update; the fields stay usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn snapshot(&self) -> CredentialsSnapshot {
        self.lock().snapshot.clone()
    }

    /// How long until the token endpoint may be asked again; `None` when it may be asked now.
    pub(crate) fn wait_remaining(&self) -> Option<Duration> {
        let next = self.lock().next_attempt?;
        let now = Instant::now();
        (next > now).then(|| next - now)
    }

    /// Records a failed refresh and schedules the next one after `delay`. Returns the count of
    /// failures in this outage.
    pub(crate) fn record_failure(&self, reason: String, delay: Duration, unavailable: bool) -> u32 {
        let now = Utc::now();
        let mut state = self.lock();
        state.next_attempt = Instant::now().checked_add(delay);
        let snapshot = &mut state.snapshot;
        if !snapshot.failing {
            snapshot.failing = true;
            snapshot.failing_since = Some(now);
            snapshot.consecutive_failures = 0;
        }
        snapshot.consecutive_failures = snapshot.consecutive_failures.saturating_add(1);
        snapshot.failures_total = snapshot.failures_total.saturating_add(1);
        snapshot.last_error = Some(reason);
        snapshot.unavailable = unavailable;
        snapshot.next_attempt_at = TimeDelta::from_std(delay)
            .ok()
            .and_then(|d| now.checked_add_signed(d));
        snapshot.consecutive_failures
    }

    /// Records a granted token. Returns the outage it ended (length, failures), if any.
    pub(crate) fn record_success(&self) -> Option<(Duration, u32)> {
        let now = Utc::now();
        let mut state = self.lock();
        state.next_attempt = None;
        let snapshot = &mut state.snapshot;
        if !snapshot.failing {
            return None;
        }
        let outage = snapshot
            .failing_since
            .and_then(|since| (now - since).to_std().ok())
            .unwrap_or_default();
        let failures = snapshot.consecutive_failures;
        snapshot.failing = false;
        snapshot.unavailable = false;
        snapshot.failing_since = None;
        snapshot.next_attempt_at = None;
        snapshot.consecutive_failures = 0;
        snapshot.recoveries_total = snapshot.recoveries_total.saturating_add(1);
        snapshot.last_outage_ms = Some(u64::try_from(outage.as_millis()).unwrap_or(u64::MAX));
        Some((outage, failures))
    }
}

/// Pause after the `failures`-th consecutive failure: `base * 2^(failures-1)` capped at
/// `CREDENTIALS_BACKOFF_CAP`, with "equal jitter" (half fixed, half random) so the pause grows
/// for sure yet concurrent daemons spread out. A server's `Retry-After` wins when longer.
pub(crate) fn outage_delay(
    base: Duration,
    failures: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let backoff = Backoff::new(base.max(Duration::from_millis(1)), CREDENTIALS_BACKOFF_CAP)
        .with_jitter(Jitter::Equal)
        .delay(failures.saturating_sub(1));
    match retry_after {
        Some(wait) => backoff.max(wait.min(CREDENTIALS_BACKOFF_CAP)),
        None => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_delay_grows_from_half_the_base_and_never_passes_the_cap() {
        let base = Duration::from_secs(2);
        let first = outage_delay(base, 1, None);
        assert!(
            first >= Duration::from_secs(1) && first <= base,
            "{first:?}"
        );
        for failures in [10, 31, 32, 1000, u32::MAX] {
            let delay = outage_delay(base, failures, None);
            assert!(
                delay >= CREDENTIALS_BACKOFF_CAP / 2,
                "{failures}: {delay:?}"
            );
            assert!(delay <= CREDENTIALS_BACKOFF_CAP, "{failures}: {delay:?}");
        }
        let huge = outage_delay(Duration::MAX, u32::MAX, Some(Duration::MAX));
        assert_eq!(huge, CREDENTIALS_BACKOFF_CAP);
    }

    #[test]
    fn a_longer_retry_after_is_honoured_up_to_the_cap() {
        let delay = outage_delay(Duration::from_millis(10), 1, Some(Duration::from_secs(30)));
        assert_eq!(delay, Duration::from_secs(30));
    }

    #[test]
    fn failures_open_an_outage_and_a_grant_closes_it() {
        let credentials = Credentials::default();
        assert_eq!(credentials.snapshot().describe(), None);
        assert_eq!(credentials.record_success(), None);

        assert_eq!(
            credentials.record_failure("first".into(), Duration::ZERO, false),
            1
        );
        assert_eq!(
            credentials.record_failure(
                "http 400 (invalid_grant)".into(),
                Duration::from_secs(60),
                false
            ),
            2
        );
        let failing = credentials.snapshot();
        assert!(failing.failing);
        assert_eq!(failing.failures_total, 2);
        assert!(failing.next_attempt_at.is_some());
        assert!(credentials.wait_remaining().is_some());
        let line = failing.describe().unwrap();
        assert!(line.starts_with("credentials failing since "), "{line}");
        assert!(line.ends_with(": http 400 (invalid_grant)"), "{line}");

        let (_, failures) = credentials.record_success().unwrap();
        assert_eq!(failures, 2);
        let healthy = credentials.snapshot();
        assert!(!healthy.failing);
        assert_eq!(healthy.recoveries_total, 1);
        assert_eq!(healthy.failures_total, 2);
        assert_eq!(credentials.wait_remaining(), None);
    }
}
