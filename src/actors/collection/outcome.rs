//! What a week's attempt ended with (`WeekOutcome`) and the policy it is retried by
//! (`WeekPolicy`: timing, attempts, and the backoff of every retry loop of a week). The other
//! files of a week's lifecycle use this module; it uses none of them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::backoff::{Backoff, Jitter};
use crate::store::{Refused, StoreError, Verdict};

/// Longest wait between two tries of a step that failed for infrastructure reasons.
pub(super) const MAX_INFRA_BACKOFF: Duration = Duration::from_secs(60);

/// The longest pause between two creates AMC throttled.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(5 * 60);

/// Doublings of a failed attempt's retry delay before it stops growing.
const ATTEMPT_DOUBLINGS: u32 = 16;

/// The longest a failed attempt waits: a configured base can make the curve absurd.
const MAX_ATTEMPT_WAIT: Duration = Duration::from_secs(365 * 86_400);

/// How a week's future ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeekOutcome {
    Completed,
    FailedForGood,
    /// Failed; to be tried again at that time.
    RetryAt(DateTime<Utc>),
    /// Nothing to do: the week is terminal or changed under us (e.g. cancelled).
    Idle,
    /// The collection was held (`guard`): AMC will not run its query; the actor stops.
    Held,
}

/// A write the state machine refused (the week moved on without us: cancelled, or another
/// process), or the database failed for good; stop working on the week.
pub(super) fn stale(why: impl std::fmt::Display) -> WeekOutcome {
    tracing::warn!(error = %why, "Week changed under this actor; leaving it.");
    WeekOutcome::Idle
}

/// Why a transition a week's actor sent was not stored: the state machine refused it, or the
/// database failed it for good. Either way the week is left alone.
#[derive(Debug, thiserror::Error)]
pub(super) enum NotStored {
    #[error("refused: {0}")]
    Refused(Refused),
    #[error(transparent)]
    Store(StoreError),
}

/// `Ok` once the transition was applied.
pub(super) fn stored(outcome: Result<Verdict, StoreError>) -> Result<(), NotStored> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(refused)) => Err(NotStored::Refused(refused)),
        Err(error) => Err(NotStored::Store(error)),
    }
}

/// Timing and limits of the week state machine.
#[derive(Debug, Clone)]
pub struct WeekPolicy {
    pub poll_interval: Duration,
    pub max_attempts: u32,
    pub retry_backoff_base: Duration,
    /// Largest number of rows accepted from one week.
    pub max_result_rows: usize,
    /// Weeks downloading/parsing/storing at once over the whole process
    /// (`results.max_concurrent_downloads`): each holds a few MB of buffers, so this bounds the
    /// memory of results whatever their size and however many weeks finish together.
    pub download_budget: std::sync::Arc<tokio::sync::Semaphore>,
    /// How long an execution in a status the client does not know is polled before its attempt
    /// fails naming the status (`amc.unknown_status_max_seconds`).
    pub unknown_status_max: Duration,
    /// How long a SUCCEEDED execution's unpublished results are waited for
    /// (`results.publish_grace_seconds`).
    pub publish_grace: Duration,
    /// Recent run times per workflow and instance, shared by the process's collections: when
    /// to poll an execution (`poll_plan`).
    pub run_times: super::poll_plan::RunTimes,
}

impl WeekPolicy {
    /// Wait between listings when adopting an execution.
    pub fn adoption_delay(&self) -> Duration {
        self.poll_interval.min(Duration::from_secs(5))
    }

    /// How long an execution AMC acknowledged without an id is looked for before giving up on it.
    pub fn acknowledged_adoption_deadline(&self) -> Duration {
        (self.poll_interval * 30).max(Duration::from_secs(30 * 60))
    }

    /// Retries of a step after a transient infrastructure error (database, gateway mailbox).
    pub(super) fn infra_backoff(&self) -> Backoff {
        let first = self
            .poll_interval
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        Backoff::new(first, MAX_INFRA_BACKOFF)
    }

    /// Retries of storing a result's rows while the database is unavailable.
    pub(super) fn store_backoff(&self) -> Backoff {
        Backoff::new(MAX_INFRA_BACKOFF.min(self.poll_interval), MAX_INFRA_BACKOFF)
    }

    /// Retries of a poll that failed, from the delay the poll would have waited anyway.
    pub(super) fn poll_backoff(&self, next_poll: Duration) -> Backoff {
        Backoff::new(next_poll, MAX_INFRA_BACKOFF.max(self.poll_interval))
    }

    /// Retries of an AMC listing that could not be read (adoption must see an answer).
    pub(super) fn listing_backoff(&self) -> Backoff {
        Backoff::new(self.adoption_delay(), MAX_INFRA_BACKOFF)
    }

    /// Waits for an instance whose slots other processes fill, and between listings for an
    /// execution AMC acknowledged without an id: at most one poll interval apart.
    pub(super) fn slot_wait_backoff(&self) -> Backoff {
        Backoff::new(
            self.adoption_delay(),
            self.poll_interval.max(self.adoption_delay()),
        )
    }

    /// Waits between creates AMC throttled (a 429 that does not name the daily limit), after the
    /// client's own retries: seconds growing to minutes, jittered so weeks spread out.
    pub(super) fn throttle_backoff(&self) -> Backoff {
        Backoff::new(
            self.adoption_delay().max(Duration::from_millis(10)),
            MAX_THROTTLE_WAIT,
        )
        .with_jitter(Jitter::Full)
    }

    /// Waits of a week whose create AMC refused without a reason the client can classify:
    /// doubling from a poll interval, at most `cap` (a twenty-fourth of the quota window).
    pub(super) fn refusal_backoff(&self, cap: Duration) -> Backoff {
        let first = self.poll_interval.clamp(Duration::from_millis(10), cap);
        Backoff::new(first, cap.max(first)).with_jitter(Jitter::Around(0.2))
    }

    /// Delays of failed attempts: `base × 2^(attempt-1)` (at most 2^16), ±50 % so that weeks
    /// failed together are not retried together.
    pub fn attempt_backoff(&self) -> Backoff {
        attempt_backoff(self.retry_backoff_base)
    }

    /// When a failed attempt (the `attempts`-th) is tried again: `None` when it is not
    /// `retryable` or no attempts remain.
    pub(super) fn retry_at(&self, attempts: u32, retryable: bool) -> Option<DateTime<Utc>> {
        (retryable && attempts < self.max_attempts).then(|| {
            let delay = self
                .attempt_backoff()
                .delay(attempts.max(1) - 1)
                .min(MAX_ATTEMPT_WAIT);
            chrono::Duration::from_std(delay)
                .ok()
                .and_then(|delay| Utc::now().checked_add_signed(delay))
                .unwrap_or_else(Utc::now)
        })
    }
}

/// The backoff of failed attempts from `base` (see [`WeekPolicy::attempt_backoff`]).
pub fn attempt_backoff(base: Duration) -> Backoff {
    Backoff::doubling(base, ATTEMPT_DOUBLINGS).with_jitter(Jitter::Around(0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_delay_from_an_absurd_base_saturates_instead_of_panicking() {
        let delay = attempt_backoff(Duration::MAX).delay(39);
        assert!(delay >= Duration::from_secs(1));
    }

    #[test]
    fn a_failed_attempt_waits_its_base_doubled_per_attempt_give_or_take_half() {
        let backoff = attempt_backoff(Duration::from_secs(60));
        for attempt in 0..20 {
            let delay = backoff.delay(attempt);
            let curve = Duration::from_secs(60) * (1 << attempt.min(ATTEMPT_DOUBLINGS));
            assert!(
                delay >= curve / 2 && delay <= curve.mul_f64(1.5),
                "{attempt}: {delay:?}"
            );
        }
    }
}
