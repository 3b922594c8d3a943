//! Following a submitted execution to its end: polling (adaptively) until AMC's verdict, then
//! downloading, parsing and storing the result in one transaction.

use super::steps::{fail_attempt, persist, Slot, WeekContext, MAX_INFRA_BACKOFF};
use super::week_flow::WeekOutcome;
use crate::actors::db_writer::{RecordCompleted, RecordDownloading, RecordExecutionStatus};
use crate::actors::gateway::{DownloadResults, GatewayError, PollExecution};
use crate::amc::AmcError;
use crate::ids::ExecutionId;
use crate::results::parse_results;
use crate::store::model::Week;
use crate::store::CompletedWeek;

/// Download failures (after the client's own retries) tolerated before the attempt fails.
const DOWNLOAD_TRIES: u32 = 5;

/// Stored status of an execution that SUCCEEDED but whose results AMC will never deliver. Not
/// "succeeded": the next attempt would download the same execution again instead of creating one.
const UNDELIVERABLE_STATUS: &str = "failed";

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
                let reason = format!("AMC execution {amc_execution_id} cannot be read: {error}");
                let outcome = fail_attempt(cx, week, Some(execution_id), None, &reason, true).await;
                drop(slot);
                return outcome;
            }
        };
        delay = cx.next_poll(started.map(|s| s.elapsed()));
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
        let status = info.status.as_str().to_ascii_lowercase();
        if status != last_status {
            tracing::info!(amc_status = %info.status.as_str(), "AMC execution status changed.");
            // A terminal status is stored with the week's own transition (downloading or failed).
            if !info.status.is_terminal() {
                let (amc_status, status_reason) = (status.clone(), info.status_reason.clone());
                let _ = persist(cx, || RecordExecutionStatus {
                    execution_id,
                    amc_status: amc_status.clone(),
                    status_reason: status_reason.clone(),
                })
                .await;
            }
            last_status = status.clone();
        }
        if info.status.is_success() {
            if let Some(failure) = info.download_channel_failure() {
                // AMC ran the query but will never serve its results: a new execution may.
                let reason = undeliverable(&amc_execution_id, &failure);
                let outcome = fail_attempt(
                    cx,
                    week,
                    Some(execution_id),
                    Some(UNDELIVERABLE_STATUS),
                    &reason,
                    true,
                )
                .await;
                drop(slot);
                return outcome;
            }
            if let Some(started) = started {
                cx.observe_run(started.elapsed());
            }
            let (collection_id, fence) = (cx.collection_id, cx.fence.clone());
            let downloading = persist(cx, || RecordDownloading {
                collection_id,
                execution_id,
                fence: fence.clone(),
            })
            .await;
            // The slot frees once the database no longer counts the week as running: freed
            // earlier, the next intent on the instance was refused as over the limit.
            drop(slot);
            if let Err(error) = downloading {
                tracing::warn!(%error, "Week left running state under us.");
                return WeekOutcome::Idle;
            }
            return download(cx, week, execution_id, amc_execution_id).await;
        }
        if info.status.is_terminal() {
            let reason = info
                .status_reason
                .clone()
                .unwrap_or_else(|| format!("AMC execution ended {}", info.status.as_str()));
            let outcome =
                fail_attempt(cx, week, Some(execution_id), Some(&status), &reason, true).await;
            drop(slot);
            return outcome;
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
            Err(error) => {
                // "Unavailable for download" may mean "not yet" or "never": AMC's execution says
                // which, through its DOWNLOAD output channel.
                let failure = match error {
                    GatewayError::Amc(AmcError::NotReady) => {
                        download_channel_failure(cx, execution_id, &amc_execution_id).await
                    }
                    _ => None,
                };
                if let Some(failure) = failure {
                    let reason = undeliverable(&amc_execution_id, &failure);
                    let status = Some(UNDELIVERABLE_STATUS);
                    return fail_attempt(cx, week, Some(execution_id), status, &reason, true).await;
                }
                let status = Some("succeeded");
                if error.is_transient() && tries < DOWNLOAD_TRIES {
                    tracing::warn!(%error, tries, "Download failed; retrying.");
                    actix_rt::time::sleep(cx.policy.poll_interval * tries).await;
                    continue;
                }
                let reason = format!(
                    "results of AMC execution {amc_execution_id} could not be downloaded: {error}"
                );
                let retryable = error.is_transient();
                return fail_attempt(cx, week, Some(execution_id), status, &reason, retryable)
                    .await;
            }
        }
    };
    if files.is_empty() {
        // AMC answered with an empty list: a valid "no result files", but rare enough for a
        // query that normally returns rows that it must be visible.
        tracing::warn!(
            %execution_id,
            amc_execution_id = %amc_execution_id,
            "AMC listed no result files (empty downloadUrls); the week is stored with 0 rows."
        );
    }
    let max_rows = cx.policy.max_result_rows;
    // Parsing is CPU work: it runs off the actor thread. A bad result fails the week for good
    // (the same bytes would be refused again).
    let parsed = match actix_rt::task::spawn_blocking(move || parse_results(&files, max_rows)).await
    {
        Ok(result) => result.map_err(|error| {
            format!("result of AMC execution {amc_execution_id} refused: {error}")
        }),
        Err(error) => Err(format!("result parsing crashed: {error}")),
    };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(reason) => {
            let status = Some("succeeded");
            return fail_attempt(cx, week, Some(execution_id), status, &reason, false).await;
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

/// The reason a week fails when AMC reports its results cannot be downloaded.
fn undeliverable(amc_execution_id: &str, failure: &str) -> String {
    format!("AMC cannot deliver the results of execution {amc_execution_id}: {failure}")
}

/// Reads the execution again and returns why its DOWNLOAD channel failed, if it did. A read that
/// fails is no verdict: the caller keeps its own bounded retries.
async fn download_channel_failure(
    cx: &WeekContext,
    execution_id: ExecutionId,
    amc_execution_id: &str,
) -> Option<String> {
    let poll = PollExecution {
        instance: cx.amc_instance.clone(),
        execution_id,
        amc_execution_id: amc_execution_id.to_string(),
    };
    match cx.gateway.send(poll).await {
        Ok(Ok(info)) => info.download_channel_failure(),
        Ok(Err(error)) => {
            tracing::warn!(%error, "Execution could not be read after a not-ready download.");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "Gateway unavailable after a not-ready download.");
            None
        }
    }
}
