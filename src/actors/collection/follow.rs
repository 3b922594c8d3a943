//! Following a submitted execution to its end: polling (around its expected end, `poll_plan`)
//! until AMC's verdict, then failing the attempt or handing the week to `download`.

use super::download::{download, poll, undeliverable};
use super::lost::UNDELIVERABLE_STATUS;
use super::outcome::{stored, WeekOutcome};
use super::slot::Slot;
use super::steps::{fail_attempt, persist, WeekContext};
use super::unknown_status::UnknownStatus;
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
    execution_id: ExecutionId,
    amc_execution_id: String,
    slot: Slot,
    wait_first: bool,
) -> WeekOutcome {
    let mut last_status = None;
    let mut wait = wait_first;
    cx.learn_run_times().await;
    // Only a run submitted just now has a known start; a resumed one polls at the plain interval.
    let started = wait_first.then(std::time::Instant::now);
    let mut backoff = cx
        .policy
        .poll_backoff(cx.next_poll(started.map(|s| s.elapsed())));
    let mut failures = 0;
    let mut unknown = UnknownStatus::default();
    let info = loop {
        if wait {
            actix_rt::time::sleep(backoff.delay(failures)).await;
        }
        wait = true;
        let info = match poll(cx, &amc_execution_id).await {
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
