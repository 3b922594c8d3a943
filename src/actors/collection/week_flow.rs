//! One week's lifecycle as a future (docs/design.md, the week state machine): read the week from the database, then submit,
//! adopt, poll and download as its persisted state requires. Every step is stored through the
//! DbWriter before the next one starts, so a restarted actor continues from the database.
//!
//! Infrastructure trouble (AMC 5xx/429 after the client's retries, an unreachable database) never
//! fails a week: the step is retried with backoff. Only AMC's verdict or a bad result does.

use std::rc::Rc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::guard;
use super::outcome::{stale, stored, NotStored, WeekOutcome};
use super::request::{build_request, idempotency_key};
use super::slot::Slot;
use super::steps::{self, WeekContext};
use super::submit;
use super::{download, follow};
use crate::amc::CreateExecution;
use crate::ids::{ExecutionId, WeekId};
use crate::status::{ExecutionStatus, WeekStatus};
use crate::store::model::{Execution, Week};
use crate::store::{Downloading, Refused, SubmissionIntent, Transition};

/// Runs the week from whatever state the database holds.
pub async fn run_week(cx: Rc<WeekContext>, week_id: WeekId) -> WeekOutcome {
    let (week, execution) = match steps::load_week(&cx, week_id).await {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(%error, "Week cannot be read; leaving it for a later run.");
            return WeekOutcome::Idle;
        }
    };
    let span = tracing::Span::current();
    if let Some(execution_id) = week.execution_id {
        span.record("execution_id", tracing::field::display(execution_id));
    }
    if let Some(amc_id) = &week.amc_execution_id {
        span.record("amc_execution_id", amc_id.as_str());
    }
    match week.status {
        WeekStatus::Completed | WeekStatus::Cancelled => WeekOutcome::Idle,
        WeekStatus::Failed => match week.next_attempt_at {
            None => WeekOutcome::FailedForGood,
            Some(at) if at > Utc::now() => WeekOutcome::RetryAt(at),
            Some(_) => start_attempt(&cx, week, execution).await,
        },
        // A pending week may wait for AMC's daily limit (its create was refused for it).
        WeekStatus::Pending => match week.next_attempt_at {
            Some(at) if at > Utc::now() => WeekOutcome::RetryAt(at),
            _ => start_attempt(&cx, week, execution).await,
        },
        WeekStatus::Submitting => resume_submitting(&cx, week, execution).await,
        WeekStatus::Running => match (week.execution_id, week.amc_execution_id.clone()) {
            (Some(execution_id), Some(amc_id)) => {
                let slot = Slot::acquire(&cx, week.id).await;
                let submitted = follow::Submitted {
                    execution_id,
                    amc_execution_id: amc_id,
                    created: None,
                };
                Box::pin(follow::track(&cx, &week, submitted, slot, false)).await
            }
            _ => steps::corrupt(&cx, &week, "running week without execution ids").await,
        },
        WeekStatus::Downloading => match (week.execution_id, week.amc_execution_id.clone()) {
            (Some(execution_id), Some(amc_id)) => {
                Box::pin(download::download(&cx, &week, execution_id, amc_id)).await
            }
            _ => steps::corrupt(&cx, &week, "downloading week without execution ids").await,
        },
    }
}

/// A new attempt: re-download if the last execution already succeeded (a window that succeeded
/// is never submitted again), otherwise take a slot, store the intent, then create.
async fn start_attempt(cx: &WeekContext, week: Week, last: Option<Execution>) -> WeekOutcome {
    if let Some(outcome) = download_again(cx, &week, last.as_ref()).await {
        return outcome;
    }
    let request = match week_request(cx, &week) {
        Ok(request) => request,
        Err(error) => return steps::fail_attempt(cx, &week, None, None, &error, false).await,
    };
    // Until the workflow has completed a week on the instance, one week at a time (`guard`).
    let probe = guard::probe_turn(cx).await;
    if cx.guard.is_held() {
        return WeekOutcome::Idle;
    }
    let outcome = create_and_follow(cx, week, request).await;
    match outcome {
        WeekOutcome::Completed => cx.guard.note_completed(),
        // Decided before the probe permit is given back, so no other week creates meanwhile.
        _ => return guard::after_failure(cx, outcome).await,
    }
    drop(probe);
    outcome
}

/// Stores the intent while holding a slot, then creates the execution and follows it.
async fn create_and_follow(cx: &WeekContext, week: Week, request: CreateExecution) -> WeekOutcome {
    let execution_id = ExecutionId::new();
    tracing::Span::current().record("execution_id", tracing::field::display(execution_id));
    let intent = SubmissionIntent {
        week_id: week.id,
        collection_id: cx.collection_id,
        instance_id: cx.instance.id,
        execution_id,
        idempotency_key: idempotency_key(&cx.instance, &request),
        window_start: request.window.start.format("%Y-%m-%dT%H:%M:%S").to_string(),
        window_end: request.window.end.format("%Y-%m-%dT%H:%M:%S").to_string(),
        time_zone: cx.time_zone.clone(),
        // What the collection was created with, recorded with each execution it makes (`None`
        // without parameters, as before they existed).
        parameters: (!cx.parameters.is_empty()).then(|| cx.parameters.to_json()),
        max_in_flight: cx.max_in_flight,
        quota: cx.quota,
        collection_may_be_pending: cx.may_be_pending.get(),
        fence: cx.fence.clone(),
    };
    let (slot, created_at) = match reserve(cx, &intent).await {
        Ok(reserved) => reserved,
        Err(error) => return stale(error),
    };
    let week = Week {
        attempts: week.attempts + 1,
        execution_id: Some(execution_id),
        ..week
    };
    // Boxed: a week waits for its slot above, and the waiting future should not be as large as
    // everything that follows (5 KB a week, 100 MB at 10,000 collections).
    Box::pin(submit::submit(
        cx,
        &week,
        execution_id,
        &request,
        created_at,
        slot,
    ))
    .await
}

/// The last execution succeeded but its result was not stored: download it again (`None` when
/// the week needs a new execution instead).
async fn download_again(
    cx: &WeekContext,
    week: &Week,
    last: Option<&Execution>,
) -> Option<WeekOutcome> {
    let (Some(last), Some(amc_id)) = (last, &week.amc_execution_id) else {
        return None;
    };
    if last.status != ExecutionStatus::Succeeded || week.execution_id != Some(last.id) {
        return None;
    }
    let execution_id = last.id;
    let outcome = steps::persist(cx, || {
        Transition::Downloading(Downloading {
            collection_id: cx.collection_id,
            execution_id,
            fence: cx.fence.clone(),
        })
    })
    .await;
    // A download tried again after a failed one is an attempt (the database counted it).
    let week = Week {
        attempts: week.attempts + i32::from(week.status == WeekStatus::Failed),
        ..week.clone()
    };
    Some(match stored(outcome) {
        Ok(()) => Box::pin(download::download(cx, &week, execution_id, amc_id.clone())).await,
        Err(error) => stale(error),
    })
}

/// Takes a slot and stores the intent while holding it. While other processes fill the
/// instance's slots, or its daily limit is reached, the slot is given back and the week waits.
async fn reserve(
    cx: &WeekContext,
    intent: &SubmissionIntent,
) -> Result<(Slot, DateTime<Utc>), NotStored> {
    let backoff = cx.policy.slot_wait_backoff();
    let mut full = 0;
    loop {
        let wait = match try_reserve(cx, intent).await {
            Ok(reserved) => return Ok(reserved),
            // Other processes fill the instance's slots: wait for one to free up.
            Err(NotStored::Refused(Refused::SlotsFull { in_flight })) => {
                tracing::debug!(
                    in_flight,
                    "Instance slots are full across processes; waiting."
                );
                full += 1;
                backoff.delay(full - 1)
            }
            // The daily limit is a wait, never a failure: nothing was sent to AMC.
            Err(NotStored::Refused(Refused::QuotaFull { limit, until })) => {
                tracing::info!(limit, %until, "Waiting for the instance's daily limit of executions.");
                cx.daily_limit_wait.set(Some(until));
                wait_until(until)
            }
            Err(error) => return Err(error),
        };
        actix_rt::time::sleep(wait).await;
    }
}

/// One try of `reserve`. The slot is held while the intent is stored; when the database refuses
/// the intent, the slot is freed as this returns (nothing counts the week as in flight).
async fn try_reserve(
    cx: &WeekContext,
    intent: &SubmissionIntent,
) -> Result<(Slot, DateTime<Utc>), NotStored> {
    let slot = Slot::acquire(cx, intent.week_id).await;
    let created_at = Utc::now();
    // Read when sent: weeks wait for a slot long after their intent was built.
    let outcome = steps::persist(cx, || {
        Transition::Intent(SubmissionIntent {
            collection_may_be_pending: cx.may_be_pending.get(),
            ..intent.clone()
        })
    })
    .await;
    stored(outcome)?;
    cx.may_be_pending.set(false);
    cx.daily_limit_wait.set(None);
    Ok((slot, created_at))
}

/// After a crash in `submitting`: adopt what AMC has for this window before ever resubmitting.
async fn resume_submitting(cx: &WeekContext, week: Week, last: Option<Execution>) -> WeekOutcome {
    let (Some(execution_id), Some(last)) = (
        week.execution_id,
        last.filter(|e| Some(e.id) == week.execution_id),
    ) else {
        return steps::corrupt(cx, &week, "submitting week without its execution row").await;
    };
    let request = match week_request(cx, &week) {
        Ok(request) => request,
        Err(error) => {
            return steps::fail_attempt(cx, &week, Some(execution_id), None, &error, false).await
        }
    };
    let slot = Slot::acquire(cx, week.id).await;
    Box::pin(submit::resume(
        cx,
        &week,
        execution_id,
        &request,
        last.created_at,
        slot,
    ))
    .await
}

/// How long to sleep until `at` (zero when it passed), plus a little so the window has moved.
fn wait_until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(10)
}

/// The AMC request for this week; a workflow that cannot be sent fails the week for good.
fn week_request(cx: &WeekContext, week: &Week) -> Result<CreateExecution, String> {
    build_request(
        &cx.workflow,
        &cx.parameters,
        week.week_start_date,
        week.week_end_date,
        &cx.time_zone,
    )
    .map_err(|error| error.to_string())
}
