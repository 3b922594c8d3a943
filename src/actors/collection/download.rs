//! Downloading a succeeded execution's results: asking AMC for its files (waiting while they
//! are not published yet, `publish`), streaming them into the database (`ingest`) and completing
//! the week in one commit; a download that cannot go on fails the attempt.

use super::lost;
use super::lost::UNDELIVERABLE_STATUS;
use super::outcome::{stored, WeekOutcome};
use super::publish::{unpublished_reason, PublishWait};
use super::steps::{fail_attempt, persist, WeekContext};
use crate::actors::gateway::{GatewayError, PollExecution, StreamResults};
use crate::amc::{AmcError, ExecutionInfo};
use crate::ids::ExecutionId;
use crate::ingest::{ingest, IngestError, Ingested};
use crate::status::ExecutionStatus;
use crate::store::model::Week;
use crate::store::Transition;
use crate::store::{CompletedWeek, StagingTarget, StoreError};

/// Download failures (after the client's own retries) tolerated before the attempt fails.
const DOWNLOAD_TRIES: u32 = 5;

/// One poll of the execution through the gateway.
pub(super) async fn poll(
    cx: &WeekContext,
    amc_execution_id: &str,
) -> Result<ExecutionInfo, GatewayError> {
    let poll = PollExecution {
        instance: cx.amc_instance.clone(),

        amc_execution_id: amc_execution_id.to_string(),
    };
    cx.gateway
        .send(poll)
        .await
        .map_err(GatewayError::from)
        .and_then(|r| r)
}

/// Streams every file through the parser into the database (staged), then completes the week
/// with its row count and checksum through the DbWriter. At most `results.max_concurrent_downloads`
/// weeks of the whole process are in here at once (the policy's download budget); a week whose
/// results are not published yet waits outside that budget (`publish`).
pub async fn download(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    amc_execution_id: String,
) -> WeekOutcome {
    let mut publication = PublishWait::new(cx.policy.poll_interval, cx.policy.publish_grace);
    let (ingested, permit) = loop {
        let Ok(permit) = cx.policy.download_budget.clone().acquire_owned().await else {
            return WeekOutcome::Idle;
        };
        match fetch(cx, week, execution_id, &amc_execution_id).await {
            Ok(ingested) => break (ingested, permit),
            Err(Fetched::Ended(outcome)) => return outcome,
            Err(Fetched::Unpublished) => drop(permit),
        }
        let Some(pause) = publication.next_pause() else {
            let reason = unpublished_reason(&amc_execution_id, &publication);
            let status = Some(ExecutionStatus::Succeeded);
            return fail_attempt(cx, week, Some(execution_id), status, &reason, true).await;
        };
        tracing::info!(
            waits = publication.waits(),
            pause_ms = pause.as_millis() as u64,
            "AMC has not published the results yet; asking again."
        );
        actix_rt::time::sleep(pause).await;
        if matches!(
            cx.store.week_status(week.id).await,
            Ok(crate::status::WeekStatus::Cancelled)
        ) {
            return WeekOutcome::Idle;
        }
    };
    if ingested.bytes == 0 && ingested.row_count == 0 && ingested.columns.is_empty() {
        // AMC affirmed there are no files (DOWNLOAD channel AVAILABLE, empty list): a valid "no
        // result", but rare enough for a query that normally returns rows to be worth a line.
        tracing::warn!(
            %execution_id,
            amc_execution_id = %amc_execution_id,
            "AMC affirmed the result has no files (DOWNLOAD channel AVAILABLE, empty downloadUrls); the week is stored with 0 rows."
        );
    }
    if ingested.replaced > 0 {
        tracing::warn!(
            replaced = ingested.replaced,
            "The result held NUL characters, which the database cannot store; each was replaced with U+FFFD."
        );
    }
    // The rows are stored: the budget bounds memory, and completing holds none, so the next
    // week may download while this one waits for the DbWriter's group commit.
    drop(permit);
    complete(cx, week, execution_id, amc_execution_id, ingested).await
}

/// How a fetch that stored nothing ended.
enum Fetched {
    /// The attempt ended (failed, or the week moved on) with this outcome.
    Ended(WeekOutcome),
    /// AMC has not published the results yet: ask again later, within the grace.
    Unpublished,
}

/// Streams the result into staging, retrying downloads a few times and the database while it
/// is unavailable; `Err` carries the outcome of an attempt that ended here.
async fn fetch(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    amc_execution_id: &str,
) -> Result<Ingested, Fetched> {
    let store_backoff = cx.policy.store_backoff();
    let (mut tries, mut store_failures) = (0, 0);
    let status = Some(ExecutionStatus::Succeeded);
    loop {
        tries += 1;
        let error = match stream(cx, week, execution_id, amc_execution_id).await {
            Ok(ingested) => return Ok(ingested),
            Err(IngestError::Download(error)) => error,
            Err(IngestError::Interrupted(why)) => {
                GatewayError::Amc(AmcError::Transport(why.to_string()))
            }
            Err(IngestError::Result(error)) => {
                // A bad result fails the week for good (the same bytes would be refused again).
                let reason = format!("result of AMC execution {amc_execution_id} refused: {error}");
                let failed = fail_attempt(cx, week, Some(execution_id), status, &reason, false);
                return Err(Fetched::Ended(failed.await));
            }
            Err(IngestError::Store(error)) if error.is_transient() => {
                tracing::warn!(%error, "Database unavailable while storing rows; retrying.");
                actix_rt::time::sleep(store_backoff.delay(store_failures)).await;
                store_failures = store_failures.saturating_add(1);
                tries -= 1;
                continue;
            }
            Err(IngestError::Store(error)) => {
                // Refused by the database itself: tried again on a later attempt, and the week's
                // attempts bound how often.
                let reason = format!(
                    "result of AMC execution {amc_execution_id} could not be stored: {error}"
                );
                let failed = fail_attempt(cx, week, Some(execution_id), status, &reason, true);
                return Err(Fetched::Ended(failed.await));
            }
        };
        if lost::is_lost(&error) {
            let resubmitted = lost::resubmit(cx, week, execution_id, amc_execution_id, &error);
            return Err(Fetched::Ended(resubmitted.await));
        }
        // "Unavailable for download" or an empty list AMC does not affirm may mean "not yet"
        // or "never": AMC's execution says which, through its DOWNLOAD output channel.
        if matches!(error, GatewayError::Amc(AmcError::NotReady)) {
            let Some(failure) = download_channel_failure(cx, amc_execution_id).await else {
                return Err(Fetched::Unpublished);
            };
            let reason = undeliverable(amc_execution_id, &failure);
            let status = Some(UNDELIVERABLE_STATUS);
            let failed = fail_attempt(cx, week, Some(execution_id), status, &reason, true);
            return Err(Fetched::Ended(failed.await));
        }
        if error.is_transient() && tries < DOWNLOAD_TRIES {
            tracing::warn!(%error, tries, "Download failed; retrying.");
            actix_rt::time::sleep(cx.policy.poll_interval * tries).await;
            continue;
        }
        let reason =
            format!("results of AMC execution {amc_execution_id} could not be downloaded: {error}");
        // A file that outlived its deadline may come through on a later attempt.
        let retryable = error.is_transient()
            || matches!(error, GatewayError::Amc(AmcError::FileDeadline { .. }));
        let failed = fail_attempt(cx, week, Some(execution_id), status, &reason, retryable);
        return Err(Fetched::Ended(failed.await));
    }
}

/// One download of the result, streamed through the parser into the week's staging rows.
async fn stream(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    amc_execution_id: &str,
) -> Result<Ingested, IngestError<GatewayError>> {
    let target = StagingTarget {
        week_id: week.id,
        collection_id: cx.collection_id,
        execution_id,
    };
    let (gateway, instance, amc_id) = (
        cx.gateway.clone(),
        cx.amc_instance.clone(),
        amc_execution_id.to_string(),
    );
    ingest(
        &cx.store,
        target,
        cx.policy.max_result_rows,
        |sink| async move {
            let request = StreamResults {
                instance,

                amc_execution_id: amc_id,
                sink,
            };
            gateway
                .send(request)
                .await
                .map_err(GatewayError::from)
                .and_then(|r| r)
        },
    )
    .await
}

/// Completes the week through the DbWriter (state, `row_count`, `data_checksum` in one commit).
async fn complete(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    amc_execution_id: String,
    ingested: Ingested,
) -> WeekOutcome {
    let (row_count, checksum) = (ingested.row_count, ingested.data_checksum.clone());
    let completed = CompletedWeek {
        week_id: week.id,
        collection_id: cx.collection_id,
        execution_id,
        amc_execution_id: amc_execution_id.clone(),
        row_count: ingested.row_count,
        data_checksum: ingested.data_checksum,
        columns: ingested.columns,
        column_types: ingested.column_types,
        fence: cx.fence.clone(),
    };
    match persist(cx, || Transition::Completed(completed.clone())).await {
        Ok(Ok(())) => {
            tracing::info!(row_count, data_checksum = %checksum, "Week completed.");
            WeekOutcome::Completed
        }
        Err(StoreError::Database(error)) => {
            // Not a refusal but the database rejecting the write: bounded by the attempts.
            clear_staged(cx, week).await;
            let reason = format!(
                "completed result of AMC execution {amc_execution_id} could not be stored: {error}"
            );
            let status = Some(ExecutionStatus::Succeeded);
            fail_attempt(cx, week, Some(execution_id), status, &reason, true).await
        }
        refused_or_failed => {
            if let Err(why) = stored(refused_or_failed) {
                tracing::warn!(%why, "Completed week could not be stored.");
            }
            // The week moved on without us: what this download staged is nobody's.
            clear_staged(cx, week).await;
            WeekOutcome::Idle
        }
    }
}

/// Removes what this week's download staged (never the rows of a completed week). Best effort:
/// the next download of the week removes them anyway.
async fn clear_staged(cx: &WeekContext, week: &Week) {
    if let Err(error) = cx.store.clear_staged_rows(week.id).await {
        tracing::warn!(%error, "Staged rows could not be removed.");
    }
}

/// The reason a week fails when AMC reports its results cannot be downloaded.
pub(super) fn undeliverable(amc_execution_id: &str, failure: &str) -> String {
    format!("AMC cannot deliver the results of execution {amc_execution_id}: {failure}")
}

/// Reads the execution again and returns why its DOWNLOAD channel failed, if it did. A read that
/// fails is no verdict: the caller keeps its own bounded retries.
async fn download_channel_failure(cx: &WeekContext, amc_execution_id: &str) -> Option<String> {
    match poll(cx, amc_execution_id).await {
        Ok(info) => info.download_channel_failure(),
        Err(error) => {
            tracing::warn!(%error, "Execution could not be read after a not-ready download.");
            None
        }
    }
}
