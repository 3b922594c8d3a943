//! The building blocks of a week's future: its shared context, learned poll timing, reading and
//! persisting with retry, and failing an attempt.

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::outcome::{WeekOutcome, WeekPolicy};
use super::poll_plan::next_poll_delay;
use crate::actors::db_writer::{DbWriter, RecordTransition};
use crate::actors::gateway::AmcGateway;
use crate::amc::InstanceRef;
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::status::ExecutionStatus;
use crate::store::model::{Execution, Instance, Week, Workflow};
use crate::store::{Failed, Fence, Store, StoreError, Transition, Verdict};

/// What every week future of one collection shares (read-only).
pub struct WeekContext {
    pub collection_id: CollectionId,
    pub instance: Instance,
    pub amc_instance: InstanceRef,
    pub workflow: Workflow,
    /// The collection's query parameters: part of every request and of its idempotency key.
    pub parameters: crate::query_params::QueryParams,
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
    /// Until when the latest week that asked to be submitted waits for the daily limit
    /// (status display); cleared when a submission goes through.
    pub daily_limit_wait: std::cell::Cell<Option<chrono::DateTime<Utc>>>,
    /// Whether the collection may still be `pending` in the database: until this actor's first
    /// intent is stored (which makes it `running`), intents also mark it running.
    pub may_be_pending: std::cell::Cell<bool>,
    /// Probing, holding and create refusals (`guard`).
    pub guard: super::guard_state::CollectionGuard,
}

impl WeekContext {
    /// Delay before the next poll of an execution running for `running_for` (`poll_plan`).
    pub(super) fn next_poll(&self, running_for: Option<Duration>) -> Duration {
        next_poll_delay(self.policy.poll_interval, self.expected_run(), running_for)
    }

    /// What recent runs of the week's workflow on its instance took (`poll_plan::RunTimes`).
    pub(super) fn expected_run(&self) -> Option<super::poll_plan::Expected> {
        (self.policy.run_times).expected(self.instance.id, self.workflow.id)
    }

    /// Records how long a run that just succeeded took, for the next runs' poll timing.
    pub(super) fn observe_run(&self, took: Duration) {
        (self.policy.run_times).record(self.instance.id, self.workflow.id, took);
    }

    /// Seeds the poll timing with the workflow's recent runs on the instance from the database,
    /// once per process (a read that fails is tried again by the next week).
    pub(super) async fn learn_run_times(&self) {
        let (instance, workflow) = (self.instance.id, self.workflow.id);
        if !self.policy.run_times.needs_seed(instance, workflow) {
            return;
        }
        match self.store.recent_run_times(instance, workflow, 50).await {
            Ok(runs) => self.policy.run_times.seed(instance, workflow, runs),
            Err(error) => tracing::warn!(%error, "Recent run times could not be read."),
        }
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

/// Sends a week transition to the DbWriter until the state machine answers (applied, or
/// `Refused`) or the database fails it for good; a transient failure is tried again.
pub async fn persist<F>(cx: &WeekContext, make: F) -> Result<Verdict, StoreError>
where
    F: Fn() -> Transition,
{
    let backoff = cx.policy.infra_backoff();
    let mut failures = 0;
    loop {
        match cx.db.send(RecordTransition { transition: make() }).await {
            Ok(Ok(verdict)) => return Ok(verdict),
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
    amc_status: Option<ExecutionStatus>,
    reason: &str,
    retryable: bool,
) -> WeekOutcome {
    let attempts = u32::try_from(week.attempts).unwrap_or(0);
    let retry_at = cx.policy.retry_at(attempts, retryable);
    tracing::warn!(reason, attempts, retry_at = ?retry_at, "Week attempt failed.");
    let (collection_id, week_id) = (cx.collection_id, week.id);
    let stored = persist(cx, || {
        Transition::Failed(Failed {
            collection_id,
            week_id,
            execution_id,
            amc_status: amc_status.clone(),
            reason: reason.to_string(),
            retry_at,
            fence: cx.fence.clone(),
        })
    })
    .await;
    match (stored, retry_at) {
        (Ok(Ok(())), Some(at)) => WeekOutcome::RetryAt(at),
        (Ok(Ok(())), None) => WeekOutcome::FailedForGood,
        (Ok(Err(_)) | Err(_), _) => WeekOutcome::Idle,
    }
}

/// A week row that contradicts itself fails the week for good.
pub async fn corrupt(cx: &WeekContext, week: &Week, reason: &str) -> WeekOutcome {
    tracing::error!(reason, "Inconsistent week row.");
    let collection_id = cx.collection_id;
    let week_id = week.id;
    let execution_id = week.execution_id;
    let _ = persist(cx, || {
        Transition::Failed(Failed {
            collection_id,
            week_id,
            execution_id,
            amc_status: None,
            reason: reason.to_string(),
            retry_at: None,
            fence: cx.fence.clone(),
        })
    })
    .await;
    WeekOutcome::FailedForGood
}
