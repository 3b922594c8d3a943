//! The building blocks of a week's future: its shared context, slot handling, persistence with
//! retry, polling, downloading and failing an attempt.

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::week_flow::{retry_delay, WeekOutcome};
use crate::actors::db_writer::{DbWriter, RecordTransition};
use crate::actors::gateway::{AcquireSlot, AmcGateway, ReleaseSlot};
use crate::amc::InstanceRef;
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::store::model::{Execution, Instance, Week, Workflow};
use crate::store::{Fence, Store, StoreError, Transition};

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

    /// First wait after a transient infrastructure error; doubled up to `MAX_INFRA_BACKOFF`.
    fn infra_backoff(&self) -> Duration {
        self.poll_interval
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

pub(super) const MAX_INFRA_BACKOFF: Duration = Duration::from_secs(60);

/// What every week future of one collection shares (read-only).
pub struct WeekContext {
    pub collection_id: CollectionId,
    pub instance: Instance,
    pub amc_instance: InstanceRef,
    pub workflow: Workflow,
    pub time_zone: String,
    /// For reads, and for the staged rows of a result being ingested (`ingest`); every week
    /// transition goes through `db`.
    pub store: Store,
    pub gateway: Addr<AmcGateway>,
    pub db: Addr<DbWriter>,
    pub policy: WeekPolicy,
    /// The collection's lease as claimed by the Supervisor; every write carries it.
    pub fence: Fence,
    /// The instance's execution limit, checked in the database over every process.
    pub max_in_flight: i64,
    /// AMC's daily limit per instance, checked in the database over every process.
    pub quota: crate::store::CreateQuota,
    /// Recent run time of this collection's executions (moving average), for adaptive polling.
    pub typical_run: std::cell::Cell<Option<Duration>>,
    /// Until when the latest week that asked to be submitted waits for the daily limit
    /// (status display); cleared when a submission goes through.
    pub daily_limit_wait: std::cell::Cell<Option<chrono::DateTime<Utc>>>,
    /// Whether the collection may still be `pending` in the database: until this actor's first
    /// intent is stored (which makes it `running`), intents also mark it running.
    pub may_be_pending: std::cell::Cell<bool>,
}

impl WeekContext {
    /// Delay before the next poll: up to the moment a run like the recent ones would end (capped
    /// by the poll interval), then twice as often while it is overdue.
    pub(super) fn next_poll(&self, running_for: Option<Duration>) -> Duration {
        next_poll_delay(
            self.policy.poll_interval,
            self.typical_run.get(),
            running_for,
        )
    }

    pub(super) fn observe_run(&self, took: Duration) {
        let average = match self.typical_run.get() {
            Some(previous) => previous.mul_f64(0.8) + took.mul_f64(0.2),
            None => took,
        };
        self.typical_run.set(Some(average));
    }
}

/// Adaptive polling: wait until a run like the recent ones would end (at least a tenth, at most
/// one poll interval), then poll twice as often while it is overdue.
pub fn next_poll_delay(
    poll: Duration,
    typical: Option<Duration>,
    running_for: Option<Duration>,
) -> Duration {
    match (typical, running_for) {
        (Some(typical), Some(elapsed)) if elapsed < typical => {
            (typical - elapsed).clamp(poll / 10, poll)
        }
        (Some(_), Some(_)) => poll / 2,
        _ => poll,
    }
}

/// Reads the week and its latest execution, retrying while the database is unreachable.
pub async fn load_week(
    cx: &WeekContext,
    week_id: WeekId,
) -> Result<(Week, Option<Execution>), StoreError> {
    let mut delay = cx.policy.infra_backoff();
    loop {
        match cx.store.week_with_execution(week_id).await {
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, "Database unavailable while reading a week; retrying.");
                actix_rt::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_INFRA_BACKOFF);
            }
            other => return other,
        }
    }
}

/// Sends a write to the DbWriter until it is stored or refused for good.
pub async fn persist<F>(cx: &WeekContext, make: F) -> Result<(), StoreError>
where
    F: Fn() -> Transition,
{
    let mut delay = cx.policy.infra_backoff();
    loop {
        match cx.db.send(RecordTransition { transition: make() }).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) if !error.is_transient() => return Err(error),
            Ok(Err(error)) => tracing::warn!(%error, "Database write failed; retrying."),
            Err(error) => tracing::warn!(%error, "Database writer unavailable; retrying."),
        }
        actix_rt::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_INFRA_BACKOFF);
    }
}

/// One AMC slot held by a week; released when dropped (also when the future is cancelled).
pub struct Slot {
    gateway: Addr<AmcGateway>,
    instance_id: String,
    week_id: WeekId,
}

impl Slot {
    /// Waits for a slot. `resume` marks an execution that already exists on AMC.
    pub async fn acquire(cx: &WeekContext, week_id: WeekId, resume: bool) -> Slot {
        let mut delay = cx.policy.infra_backoff();
        loop {
            let request = AcquireSlot {
                instance_id: cx.instance.instance_id.clone(),
                collection_id: cx.collection_id,
                week_id,
                resume,
            };
            match cx.gateway.send(request).await {
                Ok(Ok(())) => break,
                Ok(Err(error)) => tracing::warn!(%error, "Slot request failed; asking again."),
                Err(error) => {
                    tracing::warn!(%error, "Gateway unavailable; asking for a slot again.")
                }
            }
            actix_rt::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_INFRA_BACKOFF);
        }
        Slot {
            gateway: cx.gateway.clone(),
            instance_id: cx.instance.instance_id.clone(),
            week_id,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gateway.do_send(ReleaseSlot {
            instance_id: std::mem::take(&mut self.instance_id),
            week_id: self.week_id,
        });
    }
}

/// Fails the current attempt; retried later while attempts remain and `retryable`.
pub async fn fail_attempt(
    cx: &WeekContext,
    week: &Week,
    execution_id: Option<ExecutionId>,
    amc_status: Option<&str>,
    reason: &str,
    retryable: bool,
) -> WeekOutcome {
    let attempts = u32::try_from(week.attempts).unwrap_or(0);
    let retry_at = (retryable && attempts < cx.policy.max_attempts).then(|| {
        let delay = retry_delay(cx.policy.retry_backoff_base, attempts.max(1));
        // Checked: a configured base can make the delay absurd; a year is the most it waits.
        let delay = delay.min(Duration::from_secs(365 * 86_400));
        chrono::Duration::from_std(delay)
            .ok()
            .and_then(|delay| Utc::now().checked_add_signed(delay))
            .unwrap_or_else(Utc::now)
    });
    tracing::warn!(reason, attempts, retry_at = ?retry_at, "Week attempt failed.");
    let (collection_id, week_id) = (cx.collection_id, week.id);
    let stored = persist(cx, || Transition::Failed {
        collection_id,
        week_id,
        execution_id,
        amc_status: amc_status.map(str::to_string),
        reason: reason.to_string(),
        retry_at,
        fence: cx.fence.clone(),
    })
    .await;
    match (stored, retry_at) {
        (Err(_), _) => WeekOutcome::Idle,
        (Ok(()), Some(at)) => WeekOutcome::RetryAt(at),
        (Ok(()), None) => WeekOutcome::FailedForGood,
    }
}

#[cfg(test)]
mod tests {
    use super::next_poll_delay;
    use std::time::Duration;

    const POLL: Duration = Duration::from_secs(60);

    #[test]
    fn a_retry_delay_from_an_absurd_base_saturates_instead_of_panicking() {
        let delay = crate::actors::collection::week_flow::retry_delay(Duration::MAX, 40);
        assert!(delay >= Duration::from_secs(1));
    }

    #[test]
    fn without_history_polls_at_the_interval() {
        assert_eq!(next_poll_delay(POLL, None, Some(Duration::ZERO)), POLL);
    }

    #[test]
    fn a_run_due_soon_is_polled_when_it_should_end() {
        let typical = Some(Duration::from_secs(15 * 60));
        let elapsed = Some(Duration::from_secs(15 * 60 - 20));
        assert_eq!(
            next_poll_delay(POLL, typical, elapsed),
            Duration::from_secs(20)
        );
    }

    #[test]
    fn an_overdue_run_is_polled_twice_as_often_and_never_faster_than_a_tenth() {
        let typical = Some(Duration::from_secs(100));
        assert_eq!(
            next_poll_delay(POLL, typical, Some(Duration::from_secs(200))),
            POLL / 2
        );
        assert_eq!(
            next_poll_delay(POLL, typical, Some(Duration::from_millis(99_999))),
            POLL / 10
        );
    }
}
