//! One week's lifecycle as a future (DESIGN §3): read the week from the database, then submit,
//! adopt, poll and download as its persisted state requires. Every step is stored through the
//! DbWriter before the next one starts, so a restarted actor continues from the database.
//!
//! Infrastructure trouble (AMC 5xx/429 after the client's retries, an unreachable database) never
//! fails a week: the step is retried with backoff. Only AMC's verdict or a bad result does.

use std::rc::Rc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::follow;
use super::request::{build_request, idempotency_key};
use super::steps::{self, Slot, WeekContext, MAX_INFRA_BACKOFF};
use crate::actors::gateway::{FindExecution, GatewayError, SubmitExecution};
use crate::amc::{AmcError, CreateExecution, ExecutionInfo};
use crate::ids::{ExecutionId, WeekId};
use crate::status::WeekStatus;
use crate::store::model::{Execution, Week};
use crate::store::{StoreError, SubmissionIntent, Transition};

/// Creates tried for one attempt before it counts as failed (each may be adopted instead).
const MAX_CREATES_PER_ATTEMPT: u32 = 3;
/// Listings tried to adopt an execution whose create reply had no id (AMC lists lag a little).
const ADOPTION_LOOKUPS: u32 = 3;

/// How a week's future ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeekOutcome {
    Completed,
    FailedForGood,
    /// Failed; to be tried again at that time.
    RetryAt(DateTime<Utc>),
    /// Nothing to do: the week is terminal or changed under us (e.g. cancelled).
    Idle,
}

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
                let slot = Slot::acquire(&cx, week.id, true).await;
                Box::pin(follow::track(&cx, &week, execution_id, amc_id, slot, false)).await
            }
            _ => corrupt(&cx, &week, "running week without execution ids").await,
        },
        WeekStatus::Downloading => match (week.execution_id, week.amc_execution_id.clone()) {
            (Some(execution_id), Some(amc_id)) => {
                Box::pin(follow::download(&cx, &week, execution_id, amc_id)).await
            }
            _ => corrupt(&cx, &week, "downloading week without execution ids").await,
        },
    }
}

/// A new attempt: re-download if the last execution already succeeded (a window that succeeded
/// is never submitted again), otherwise take a slot, store the intent, then create.
async fn start_attempt(cx: &WeekContext, week: Week, last: Option<Execution>) -> WeekOutcome {
    if let (Some(last), Some(amc_id)) = (&last, &week.amc_execution_id) {
        if last.status == "succeeded" && week.execution_id == Some(last.id) {
            let execution_id = last.id;
            let stored = steps::persist(cx, || Transition::Downloading {
                collection_id: cx.collection_id,
                execution_id,
                fence: cx.fence.clone(),
            })
            .await;
            // A download tried again after a failed one is an attempt (the database counted it).
            let week = Week {
                attempts: week.attempts + i32::from(week.status == WeekStatus::Failed),
                ..week.clone()
            };
            return match stored {
                Ok(()) => Box::pin(follow::download(cx, &week, execution_id, amc_id.clone())).await,
                Err(error) => stale(error),
            };
        }
    }
    let request = match week_request(cx, &week) {
        Ok(request) => request,
        Err(error) => return steps::fail_attempt(cx, &week, None, None, &error, false).await,
    };
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
        parameters: None,
        max_in_flight: cx.max_in_flight,
        quota: cx.quota,
        collection_may_be_pending: cx.may_be_pending.get(),
        fence: cx.fence.clone(),
    };
    let mut full_wait = cx.policy.adoption_delay();
    let (slot, created_at) = loop {
        let slot = Slot::acquire(cx, week.id, false).await;
        let created_at = Utc::now();
        // Read when sent: weeks wait for a slot long after their intent was built.
        match steps::persist(cx, || {
            Transition::Intent(SubmissionIntent {
                collection_may_be_pending: cx.may_be_pending.get(),
                ..intent.clone()
            })
        })
        .await
        {
            Ok(()) => {
                cx.may_be_pending.set(false);
                cx.daily_limit_wait.set(None);
                break (slot, created_at);
            }
            // Other processes fill the instance's slots: wait for one to free up.
            Err(StoreError::SlotsFull(reason)) => {
                drop(slot);
                tracing::debug!(reason, "Instance slots are full across processes; waiting.");
                actix_rt::time::sleep(full_wait).await;
                full_wait = (full_wait * 2).min(cx.policy.poll_interval.max(full_wait));
            }
            // The daily limit is a wait, never a failure: nothing was sent to AMC.
            Err(StoreError::QuotaFull { limit, until }) => {
                drop(slot);
                tracing::info!(limit, %until, "Waiting for the instance's daily limit of executions.");
                cx.daily_limit_wait.set(Some(until));
                actix_rt::time::sleep(wait_until(until)).await;
            }
            Err(error) => return stale(error),
        }
    };
    let week = Week {
        attempts: week.attempts + 1,
        execution_id: Some(execution_id),
        ..week
    };
    // Boxed: a week waits for its slot above, and the waiting future should not be as large as
    // everything that follows (5 KB a week, 100 MB at 10,000 collections).
    Box::pin(submit(cx, &week, execution_id, &request, created_at, slot)).await
}

/// After a crash in `submitting`: adopt what AMC has for this window before ever resubmitting.
async fn resume_submitting(cx: &WeekContext, week: Week, last: Option<Execution>) -> WeekOutcome {
    let (Some(execution_id), Some(last)) = (
        week.execution_id,
        last.filter(|e| Some(e.id) == week.execution_id),
    ) else {
        return corrupt(cx, &week, "submitting week without its execution row").await;
    };
    let request = match week_request(cx, &week) {
        Ok(request) => request,
        Err(error) => {
            return steps::fail_attempt(cx, &week, Some(execution_id), None, &error, false).await
        }
    };
    let slot = Slot::acquire(cx, week.id, true).await;
    match find(cx, week.id, execution_id, &request, last.created_at).await {
        Some(info) => Box::pin(adopt(cx, &week, execution_id, info, slot)).await,
        None => {
            Box::pin(submit(
                cx,
                &week,
                execution_id,
                &request,
                last.created_at,
                slot,
            ))
            .await
        }
    }
}

/// Creates the execution; a reply without an id, or one lost to a timeout, is adopted by listing.
async fn submit(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    request: &CreateExecution,
    created_after: DateTime<Utc>,
    slot: Slot,
) -> WeekOutcome {
    let mut last_error = String::new();
    for create in 1..=MAX_CREATES_PER_ATTEMPT {
        // Dropped with this future (actor stopped): the gateway then abandons the create.
        let (_caller_alive, caller) = tokio::sync::oneshot::channel::<()>();
        let reply = cx
            .gateway
            .send(SubmitExecution {
                instance: cx.amc_instance.clone(),
                execution_id,
                request: request.clone(),
                caller,
            })
            .await
            .map_err(GatewayError::from)
            .and_then(|r| r);
        match reply {
            Ok(info) if info.workflow_execution_id.is_some() => {
                return adopt(cx, week, execution_id, info, slot).await;
            }
            Ok(_) => {
                // AMC acknowledged the create, so the execution exists: never create it again.
                tracing::warn!(create, "AMC create reply has no workflowExecutionId; adopting the execution by listing.");
                return adopt_acknowledged(cx, week, execution_id, request, created_after, slot)
                    .await;
            }
            Err(GatewayError::Amc(AmcError::LimitReached {
                retry_after,
                message,
            })) => {
                return withdraw(cx, week, execution_id, retry_after, &message, slot).await;
            }
            Err(GatewayError::Amc(error)) if !error.is_transient() => {
                let reason = format!("AMC refused the execution: {error}");
                return steps::fail_attempt(cx, week, Some(execution_id), None, &reason, false)
                    .await;
            }
            Err(error) => {
                tracing::warn!(create, %error, "AMC create did not answer clearly; looking for the execution before retrying.");
                last_error = error.to_string();
                if matches!(error, GatewayError::Amc(AmcError::RateLimited { .. })) {
                    actix_rt::time::sleep(cx.policy.poll_interval).await;
                }
            }
        }
        // "Maybe created": AMC must say it has nothing for the window (allowing for its list
        // lagging behind creates) before anything is sent again. A listing that fails says
        // nothing, so it is asked again rather than counted.
        for lookup in 1..=ADOPTION_LOOKUPS {
            if let Some(info) = find(cx, week.id, execution_id, request, created_after).await {
                return adopt(cx, week, execution_id, info, slot).await;
            }
            if lookup < ADOPTION_LOOKUPS {
                actix_rt::time::sleep(cx.policy.adoption_delay() * lookup).await;
            }
        }
    }
    let reason = format!("no AMC execution after {MAX_CREATES_PER_ATTEMPT} creates: {last_error}");
    let outcome = steps::fail_attempt(cx, week, Some(execution_id), None, &reason, true).await;
    drop(slot);
    outcome
}

/// Adopts an execution AMC acknowledged without an id. AMC's list may lag, so it is listed with
/// growing delays until found; only after a long deadline does the attempt fail (and a later
/// attempt submit anew).
async fn adopt_acknowledged(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    request: &CreateExecution,
    created_after: DateTime<Utc>,
    slot: Slot,
) -> WeekOutcome {
    let deadline = std::time::Instant::now() + cx.policy.acknowledged_adoption_deadline();
    let mut delay = cx.policy.adoption_delay();
    loop {
        if let Some(info) = find(cx, week.id, execution_id, request, created_after).await {
            return adopt(cx, week, execution_id, info, slot).await;
        }
        if std::time::Instant::now() >= deadline {
            break;
        }
        actix_rt::time::sleep(delay).await;
        delay = (delay * 2).min(cx.policy.poll_interval.max(cx.policy.adoption_delay()));
    }
    let reason = "AMC acknowledged the create without an id and never listed the execution";
    let outcome = steps::fail_attempt(cx, week, Some(execution_id), None, reason, true).await;
    drop(slot);
    outcome
}

/// What AMC lists for the window, asked again (with backoff) until a listing is read: a listing
/// that fails says nothing, and taking it for "none" could create the execution twice.
async fn find(
    cx: &WeekContext,
    week_id: WeekId,
    execution_id: ExecutionId,
    request: &CreateExecution,
    created_after: DateTime<Utc>,
) -> Option<ExecutionInfo> {
    let mut backoff = cx.policy.adoption_delay();
    loop {
        if let Ok(found) = list_once(cx, week_id, execution_id, request, created_after).await {
            return found;
        }
        actix_rt::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_INFRA_BACKOFF);
    }
}

/// Lists AMC's executions for the window once (`Err` when the listing could not be read).
/// Executions of the week's earlier attempts are excluded; anything else matching was created by
/// this attempt.
async fn list_once(
    cx: &WeekContext,
    week_id: WeekId,
    execution_id: ExecutionId,
    request: &CreateExecution,
    created_after: DateTime<Utc>,
) -> Result<Option<ExecutionInfo>, ()> {
    let exclude = match cx.store.other_amc_ids(week_id, execution_id).await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(%error, "Earlier attempts cannot be read; not adopting yet.");
            return Err(());
        }
    };
    let message = FindExecution {
        instance: cx.amc_instance.clone(),
        request: request.clone(),
        created_after,
        exclude,
    };
    match cx.gateway.send(message).await {
        Ok(Ok(found)) => Ok(found.filter(|info| info.workflow_execution_id.is_some())),
        Ok(Err(error)) => {
            tracing::warn!(%error, "Listing AMC executions failed.");
            Err(())
        }
        Err(error) => {
            tracing::warn!(%error, "Gateway unavailable while listing executions.");
            Err(())
        }
    }
}

/// AMC refused the create for a limit (its daily limit, maybe reached by other clients of the
/// instance): the attempt never happened, so the week goes back to `pending` until the refusal's
/// `Retry-After`, else a twenty-fourth of the quota window, without spending an attempt.
async fn withdraw(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    retry_after: Option<Duration>,
    message: &str,
    slot: Slot,
) -> WeekOutcome {
    let wait = retry_after.unwrap_or_else(|| {
        let window = cx
            .quota
            .window
            .to_std()
            .unwrap_or(Duration::from_secs(86_400));
        (window / 24).clamp(Duration::from_secs(1), Duration::from_secs(3600))
    });
    let until = chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| Utc::now().checked_add_signed(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let reason = format!("waiting for AMC's daily limit until {until}: {message}");
    cx.daily_limit_wait.set(Some(until));
    tracing::warn!(%until, "AMC refused the create for a limit; the week waits without spending an attempt.");
    let (collection_id, week_id) = (cx.collection_id, week.id);
    let stored = steps::persist(cx, || Transition::Withdrawn {
        collection_id,
        week_id,
        execution_id,
        reason: reason.clone(),
        until,
        fence: cx.fence.clone(),
    })
    .await;
    drop(slot);
    match stored {
        Ok(()) => WeekOutcome::RetryAt(until),
        Err(error) => stale(error),
    }
}

/// How long to sleep until `at` (zero when it passed), plus a little so the window has moved.
fn wait_until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(10)
}

/// Stores the AMC id at once, then follows the execution.
async fn adopt(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    info: ExecutionInfo,
    slot: Slot,
) -> WeekOutcome {
    let Some(amc_id) = info.workflow_execution_id.clone() else {
        return WeekOutcome::Idle;
    };
    tracing::Span::current().record("amc_execution_id", amc_id.as_str());
    let collection_id = cx.collection_id;
    let stored = steps::persist(cx, || Transition::Submitted {
        collection_id,
        execution_id,
        amc_execution_id: amc_id.clone(),
        fence: cx.fence.clone(),
    })
    .await;
    if let Err(error) = stored {
        return stale(error);
    }
    follow::track(cx, week, execution_id, amc_id, slot, true).await
}

/// The AMC request for this week; a workflow that cannot be sent fails the week for good.
fn week_request(cx: &WeekContext, week: &Week) -> Result<CreateExecution, String> {
    build_request(
        &cx.workflow,
        week.week_start_date,
        week.week_end_date,
        &cx.time_zone,
    )
    .map_err(|error| error.to_string())
}

/// A write the state machine refused: the week moved on without us (cancelled, or another
/// process); stop working on it.
fn stale(error: StoreError) -> WeekOutcome {
    tracing::warn!(%error, "Week changed under this actor; leaving it.");
    WeekOutcome::Idle
}

async fn corrupt(cx: &WeekContext, week: &Week, reason: &str) -> WeekOutcome {
    tracing::error!(reason, "Inconsistent week row.");
    let collection_id = cx.collection_id;
    let week_id = week.id;
    let execution_id = week.execution_id;
    let _ = steps::persist(cx, || Transition::Failed {
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

/// Delay before failed attempt `attempt` (1-based) is retried: base × 2^(attempt-1), ±50 % jitter.
pub fn retry_delay(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
    let jitter = rand::thread_rng().gen_range(0.5..1.5);
    // Checked: `mul_f64` panics on overflow, and the base is configured.
    Duration::try_from_secs_f64(base.saturating_mul(factor).as_secs_f64() * jitter)
        .unwrap_or(Duration::MAX)
}
