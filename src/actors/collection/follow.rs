//! Following a submitted execution to its end: polling (around its expected end, `poll_plan`)
//! until AMC's verdict, then failing the attempt or handing the week to `download`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::download::{download, undeliverable};
use super::lost::UNDELIVERABLE_STATUS;
use super::outcome::{stored, WeekOutcome};
use super::poll_plan::{likely_end, next_poll_delay};
use super::slot::Slot;
use super::steps::{fail_attempt, persist, WeekContext};
use super::unknown_status::UnknownStatus;
use crate::actors::gateway::{AwaitExecution, GatewayError, Watch};
use crate::amc::ExecutionInfo;
use crate::ids::ExecutionId;
use crate::status::ExecutionStatus;
use crate::store::model::Week;
use crate::store::{Downloading, StatusReport, Transition};

/// Polls until AMC reaches a terminal status, then downloads or fails the attempt. The slot is
/// held until the database no longer counts the week as running.
pub async fn track(
    cx: &WeekContext,
    week: &Week,
    execution: Submitted,
    slot: Slot,
    wait_first: bool,
) -> WeekOutcome {
    let Submitted {
        execution_id,
        amc_execution_id,
        mut created,
    } = execution;
    let mut last_status = None;
    let mut wait = wait_first;
    cx.learn_run_times().await;
    // Only a run submitted just now has a known start; a resumed one polls at the plain interval.
    let started = wait_first.then(Instant::now);
    let mut backoff = cx
        .policy
        .poll_backoff(cx.next_poll(started.map(|s| s.elapsed())));
    let mut failures = 0;
    let mut unknown = UnknownStatus::default();
    let info = loop {
        let now = Instant::now();
        let due = now
            + if wait {
                backoff.delay(failures)
            } else {
                Duration::ZERO
            };
        wait = true;
        let watch = watch(cx, started, now, due);
        let info = match await_status(cx, &amc_execution_id, created, due, watch).await {
            Ok(info) => info,
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, "Polling failed; will poll again.");
                failures = failures.saturating_add(1);
                continue;
            }
            Err(error) => {
                let reason = format!("AMC execution {amc_execution_id} cannot be read: {error}");
                let failed = fail_attempt(cx, week, Some(execution_id), None, &reason, true);
                return slot.release_after(failed).await;
            }
        };
        created = created.or(info.create_time);
        backoff = cx
            .policy
            .poll_backoff(cx.next_poll(started.map(|s| s.elapsed())));
        failures = 0;
        // A terminal status needs no look: the week's next transition is refused if it was
        // cancelled meanwhile.
        let cancelled = !info.status.is_terminal()
            && matches!(
                cx.store.week_status(week.id).await,
                Ok(crate::status::WeekStatus::Cancelled)
            );
        if cancelled {
            // The operator cancelled the collection; the Supervisor cancels the execution on AMC.
            tracing::info!("Week cancelled by the operator; no longer following its execution.");
            return WeekOutcome::Idle;
        }
        note_status(cx, execution_id, &info, &mut last_status).await;
        if info.status.is_terminal() {
            break info;
        }
        let max = cx.policy.unknown_status_max;
        if let Some(reason) = unknown.check(&info.status, &amc_execution_id, max) {
            let failed = fail_attempt(cx, week, Some(execution_id), None, &reason, true);
            return slot.release_after(failed).await;
        }
    };
    if let (true, Some(started)) = (info.status.is_success(), started) {
        if info.download_channel_failure().is_none() {
            cx.observe_run(started.elapsed());
        }
    }
    finish(cx, week, execution_id, amc_execution_id, info, slot).await
}

/// An execution AMC made for a week, as its follower needs it.
pub struct Submitted {
    pub execution_id: ExecutionId,
    pub amc_execution_id: String,
    /// AMC's `createTime`, when known: the instance's listings then carry its status.
    pub created: Option<DateTime<Utc>>,
}

/// The execution's status at `due`, or sooner if a listing of its instance shows it ended
/// (the gateway's status board).
async fn await_status(
    cx: &WeekContext,
    amc_execution_id: &str,
    created: Option<DateTime<Utc>>,
    due: Instant,
    watch: Option<Watch>,
) -> Result<ExecutionInfo, GatewayError> {
    let request = AwaitExecution {
        instance: cx.amc_instance.clone(),
        amc_execution_id: amc_execution_id.to_owned(),
        created,
        due,
        watch,
    };
    cx.gateway.send(request).await?
}

/// From when the run is likely to be ending (now, if it is already, or `due`, if it will be by
/// then), with the gap its own polls would have there: the gateway then lists its instance
/// often until it is answered.
fn watch(cx: &WeekContext, started: Option<Instant>, now: Instant, due: Instant) -> Option<Watch> {
    let started = started?;
    // One read of the learned run times serves both the spread and the poll gap in it.
    let (poll, expected) = (cx.policy.poll_interval, cx.expected_run());
    let likely = likely_end(poll, expected)?;
    let from = [now, due]
        .into_iter()
        .find(|at| likely.contains(&at.saturating_duration_since(started)))?;
    let every = next_poll_delay(
        poll,
        expected,
        Some(from.saturating_duration_since(started)),
    );
    Some(Watch { from, every })
}

/// Logs a changed status and stores it unless terminal: a terminal status is stored with the
/// week's own transition (downloading or failed).
async fn note_status(
    cx: &WeekContext,
    execution_id: ExecutionId,
    info: &ExecutionInfo,
    last_status: &mut Option<ExecutionStatus>,
) {
    let status = ExecutionStatus::from_amc(&info.status);
    if last_status.as_ref() == Some(&status) {
        return;
    }
    tracing::info!(amc_status = %info.status.as_str(), "AMC execution status changed.");
    if !info.status.is_terminal() {
        let status_reason = info.status_reason.clone();
        let _ = persist(cx, || {
            Transition::ExecutionStatus(StatusReport {
                execution_id,
                status: status.clone(),
                status_reason: status_reason.clone(),
            })
        })
        .await;
    }
    *last_status = Some(status);
}

/// AMC's verdict on the execution: fail the attempt, or move the week to `downloading` and
/// download. Either way the slot is freed once that transition is stored.
async fn finish(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    amc_execution_id: String,
    info: ExecutionInfo,
    slot: Slot,
) -> WeekOutcome {
    if !info.status.is_success() {
        let status = ExecutionStatus::from_amc(&info.status);
        let reason = info
            .status_reason
            .clone()
            .unwrap_or_else(|| format!("AMC execution ended {}", info.status.as_str()));
        let failed = fail_attempt(cx, week, Some(execution_id), Some(status), &reason, true);
        return slot.release_after(failed).await;
    }
    if let Some(failure) = info.download_channel_failure() {
        // AMC ran the query but will never serve its results: a new execution may.
        let reason = undeliverable(&amc_execution_id, &failure);
        let status = Some(UNDELIVERABLE_STATUS);
        let failed = fail_attempt(cx, week, Some(execution_id), status, &reason, true);
        return slot.release_after(failed).await;
    }
    let (collection_id, fence) = (cx.collection_id, cx.fence.clone());
    let downloading = slot
        .release_after(persist(cx, || {
            Transition::Downloading(Downloading {
                collection_id,
                execution_id,
                fence: fence.clone(),
            })
        }))
        .await;
    if let Err(why) = stored(downloading) {
        tracing::warn!(%why, "Week left running state under us.");
        return WeekOutcome::Idle;
    }
    download(cx, week, execution_id, amc_execution_id).await
}
