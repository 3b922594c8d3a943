//! The building blocks of a week's future: its shared context, adaptive polling, reading and
//! persisting with retry, and failing an attempt.

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::outcome::{WeekOutcome, WeekPolicy};
use crate::actors::db_writer::{DbWriter, RecordTransition};
use crate::actors::gateway::AmcGateway;
use crate::amc::InstanceRef;
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::store::model::{Execution, Instance, Week, Workflow};
use crate::store::{Fence, Store, StoreError, Transition};

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
    /// Probing, holding and create refusals (`guard`).
    pub guard: super::guard::CollectionGuard,
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
    let backoff = cx.policy.infra_backoff();
    let mut failures = 0;
    loop {
        match cx.store.week_with_execution(week_id).await {
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, "Database unavailable while reading a week; retrying.");
                actix_rt::time::sleep(backoff.delay(failures)).await;
                failures = failures.saturating_add(1);
            }
            other => return other,
        }
    }
}

/// Sends a week transition to the DbWriter until it is stored or refused for good.
pub async fn persist<F>(cx: &WeekContext, make: F) -> Result<(), StoreError>
where
    F: Fn() -> Transition,
{
    let backoff = cx.policy.infra_backoff();
    let mut failures = 0;
    loop {
        match cx.db.send(RecordTransition { transition: make() }).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) if !error.is_transient() => return Err(error),
            Ok(Err(error)) => tracing::warn!(%error, "Database write failed; retrying."),
            Err(error) => tracing::warn!(%error, "Database writer unavailable; retrying."),
        }
        actix_rt::time::sleep(backoff.delay(failures)).await;
        failures = failures.saturating_add(1);
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
    let retry_at = cx.policy.retry_at(attempts, retryable);
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

/// A week row that contradicts itself fails the week for good.
pub async fn corrupt(cx: &WeekContext, week: &Week, reason: &str) -> WeekOutcome {
    tracing::error!(reason, "Inconsistent week row.");
    let collection_id = cx.collection_id;
    let week_id = week.id;
    let execution_id = week.execution_id;
    let _ = persist(cx, || Transition::Failed {
        collection_id,
        week_id,
        execution_id,
        amc_status: None,
        reason: reason.to_string(),
        retry_at: None,
        fence: cx.fence.clone(),
    })
    .await;
    WeekOutcome::FailedForGood
}

#[cfg(test)]
mod tests {
    use super::next_poll_delay;
    use std::time::Duration;

    const POLL: Duration = Duration::from_secs(60);

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
