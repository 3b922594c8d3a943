//! The building blocks of a week's future: its shared context, slot handling, persistence with
//! retry, polling, downloading and failing an attempt.

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::week_flow::{retry_delay, WeekOutcome};
use crate::actors::db_writer::{
    DbWriter, RecordCompleted, RecordDownloading, RecordExecutionStatus, RecordFailed,
};
use crate::actors::gateway::{
    AcquireSlot, AmcGateway, DownloadResults, GatewayError, PollExecution, ReleaseSlot,
};
use crate::amc::InstanceRef;
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::results::parse_results;
use crate::store::model::{Execution, Instance, Week, Workflow};
use crate::store::{CompletedWeek, Fence, Store, StoreError};

/// Timing and limits of the week state machine.
#[derive(Debug, Clone)]
pub struct WeekPolicy {
    pub poll_interval: Duration,
    pub max_attempts: u32,
    pub retry_backoff_base: Duration,
    /// Largest number of rows accepted from one week.
    pub max_result_rows: usize,
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

const MAX_INFRA_BACKOFF: Duration = Duration::from_secs(60);
/// Download failures (after the client's own retries) tolerated before the attempt fails.
const DOWNLOAD_TRIES: u32 = 5;

/// What every week future of one collection shares (read-only).
pub struct WeekContext {
    pub collection_id: CollectionId,
    pub instance: Instance,
    pub amc_instance: InstanceRef,
    pub workflow: Workflow,
    pub time_zone: String,
    /// For reads only; writes go through `db`.
    pub store: Store,
    pub gateway: Addr<AmcGateway>,
    pub db: Addr<DbWriter>,
    pub policy: WeekPolicy,
    /// The collection's lease as claimed by the Supervisor; every write carries it.
    pub fence: Fence,
    /// The instance's execution limit, checked in the database over every process.
    pub max_in_flight: i64,
    /// Recent run time of this collection's executions (moving average), for adaptive polling.
    pub typical_run: std::cell::Cell<Option<Duration>>,
}

impl WeekContext {
    /// Delay before the next poll: up to the moment a run like the recent ones would end (capped
    /// by the poll interval), then twice as often while it is overdue.
    fn next_poll(&self, running_for: Option<Duration>) -> Duration {
        next_poll_delay(
            self.policy.poll_interval,
            self.typical_run.get(),
            running_for,
        )
    }

    fn observe_run(&self, took: Duration) {
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
pub async fn persist<M, F>(cx: &WeekContext, make: F) -> Result<(), StoreError>
where
    F: Fn() -> M,
    M: Message<Result = Result<(), StoreError>> + Send + 'static,
    DbWriter: Handler<M>,
{
    let mut delay = cx.policy.infra_backoff();
    loop {
        match cx.db.send(make()).await {
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

/// Polls until AMC reaches a terminal status, then downloads or fails the attempt.
pub async fn track(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    amc_execution_id: String,
    slot: Slot,
    wait_first: bool,
) -> WeekOutcome {
    let mut last_status = String::new();
    let mut wait = wait_first;
    // Only a run submitted just now has a known start; a resumed one polls at the plain interval.
    let started = wait_first.then(std::time::Instant::now);
    let mut delay = cx.next_poll(started.map(|s| s.elapsed()));
    loop {
        if wait {
            actix_rt::time::sleep(delay).await;
        }
        wait = true;
        let poll = PollExecution {
            instance: cx.amc_instance.clone(),
            execution_id,
            amc_execution_id: amc_execution_id.clone(),
        };
        let info = match cx
            .gateway
            .send(poll)
            .await
            .map_err(GatewayError::from)
            .and_then(|r| r)
        {
            Ok(info) => info,
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, "Polling failed; will poll again.");
                delay = (delay * 2).min(MAX_INFRA_BACKOFF.max(cx.policy.poll_interval));
                continue;
            }
            Err(error) => {
                drop(slot);
                let reason = format!("AMC execution {amc_execution_id} cannot be read: {error}");
                return fail_attempt(cx, week, Some(execution_id), None, &reason, true).await;
            }
        };
        delay = cx.next_poll(started.map(|s| s.elapsed()));
        if let Ok(crate::status::WeekStatus::Cancelled) = cx.store.week_status(week.id).await {
            // The operator cancelled the collection; the Supervisor cancels the execution on AMC.
            tracing::info!("Week cancelled by the operator; no longer following its execution.");
            return WeekOutcome::Idle;
        }
        let status = info.status.as_str().to_ascii_lowercase();
        if status != last_status {
            tracing::info!(amc_status = %info.status.as_str(), "AMC execution status changed.");
            let (amc_status, status_reason) = (status.clone(), info.status_reason.clone());
            let _ = persist(cx, || RecordExecutionStatus {
                execution_id,
                amc_status: amc_status.clone(),
                status_reason: status_reason.clone(),
            })
            .await;
            last_status = status.clone();
        }
        if info.status.is_success() {
            if let Some(started) = started {
                cx.observe_run(started.elapsed());
            }
            drop(slot);
            let (collection_id, fence) = (cx.collection_id, cx.fence.clone());
            let downloading = persist(cx, || RecordDownloading {
                collection_id,
                execution_id,
                fence: fence.clone(),
            });
            if let Err(error) = downloading.await {
                tracing::warn!(%error, "Week left running state under us.");
                return WeekOutcome::Idle;
            }
            return download(cx, week, execution_id, amc_execution_id).await;
        }
        if info.status.is_terminal() {
            drop(slot);
            let reason = info
                .status_reason
                .clone()
                .unwrap_or_else(|| format!("AMC execution ended {}", info.status.as_str()));
            return fail_attempt(cx, week, Some(execution_id), Some(&status), &reason, true).await;
        }
    }
}

/// Downloads every file, parses them and stores the week as completed in one transaction.
pub async fn download(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    amc_execution_id: String,
) -> WeekOutcome {
    let mut tries = 0;
    let files = loop {
        tries += 1;
        let request = DownloadResults {
            instance: cx.amc_instance.clone(),
            execution_id,
            amc_execution_id: amc_execution_id.clone(),
        };
        match cx
            .gateway
            .send(request)
            .await
            .map_err(GatewayError::from)
            .and_then(|r| r)
        {
            Ok(files) => break files,
            Err(error) if error.is_transient() && tries < DOWNLOAD_TRIES => {
                tracing::warn!(%error, tries, "Download failed; retrying.");
                actix_rt::time::sleep(cx.policy.poll_interval * tries).await;
            }
            Err(error) => {
                let reason = format!(
                    "results of AMC execution {amc_execution_id} could not be downloaded: {error}"
                );
                return fail_attempt(
                    cx,
                    week,
                    Some(execution_id),
                    Some("succeeded"),
                    &reason,
                    error.is_transient(),
                )
                .await;
            }
        }
    };
    let max_rows = cx.policy.max_result_rows;
    let parsed = match actix_rt::task::spawn_blocking(move || parse_results(&files, max_rows)).await
    {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(error)) => {
            let reason = format!("result of AMC execution {amc_execution_id} refused: {error}");
            return fail_attempt(
                cx,
                week,
                Some(execution_id),
                Some("succeeded"),
                &reason,
                false,
            )
            .await;
        }
        Err(error) => {
            let reason = format!("result parsing crashed: {error}");
            return fail_attempt(
                cx,
                week,
                Some(execution_id),
                Some("succeeded"),
                &reason,
                false,
            )
            .await;
        }
    };
    let (row_count, checksum) = (parsed.row_count, parsed.data_checksum.clone());
    let completed = CompletedWeek {
        week_id: week.id,
        collection_id: cx.collection_id,
        execution_id,
        amc_execution_id: amc_execution_id.clone(),
        row_count: parsed.row_count,
        data_checksum: parsed.data_checksum,
        columns: parsed.columns,
        rows: parsed.rows,
        fence: cx.fence.clone(),
    };
    match persist(cx, || RecordCompleted {
        week: completed.clone(),
    })
    .await
    {
        Ok(()) => {
            tracing::info!(row_count, data_checksum = %checksum, "Week completed.");
            WeekOutcome::Completed
        }
        Err(error) => {
            tracing::warn!(%error, "Completed week could not be stored.");
            WeekOutcome::Idle
        }
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
        Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero())
    });
    tracing::warn!(reason, attempts, retry_at = ?retry_at, "Week attempt failed.");
    let (collection_id, week_id) = (cx.collection_id, week.id);
    let stored = persist(cx, || RecordFailed {
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
