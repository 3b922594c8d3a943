//! Creating a week's execution on AMC and adopting it: a create whose reply has no id, or is
//! lost, is never sent again before AMC's list says the execution does not exist. The week's
//! slot travels with it into `follow::track`, or is freed once the attempt's end is stored.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::follow;
use super::outcome::{stale, WeekOutcome};
use super::refusals;
use super::slot::Slot;
use super::steps::{self, WeekContext};
use crate::actors::gateway::{FindExecution, GatewayError};
use crate::amc::{AmcError, CreateExecution, ExecutionInfo};
use crate::ids::{ExecutionId, WeekId};
use crate::store::model::Week;
use crate::store::Transition;

/// Creates tried for one attempt before it counts as failed (each may be adopted instead).
const MAX_CREATES_PER_ATTEMPT: u32 = 3;
/// Listings tried to adopt an execution whose create reply had no id (AMC lists lag a little).
const ADOPTION_LOOKUPS: u32 = 3;

/// Creates the execution; a reply without an id, or one lost to a timeout, is adopted by listing.
pub(super) async fn submit(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    request: &CreateExecution,
    created_after: DateTime<Utc>,
    slot: Slot,
) -> WeekOutcome {
    let mut last_error = String::new();
    for create in 1..=MAX_CREATES_PER_ATTEMPT {
        let reply = match refusals::send_create(cx, execution_id, request).await {
            refusals::Sent::Answered(reply) => *reply,
            refusals::Sent::LimitSpent(wait) => {
                let message = "AMC throttled the create and the collector's own count has the instance's daily limit spent";
                return withdraw(cx, week, execution_id, Some(wait), message, slot).await;
            }
        };
        if reply.is_ok() {
            cx.guard.note_accepted();
        }
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
            Err(GatewayError::Amc(AmcError::Http {
                status, message, ..
            })) if refusals::is_unclassified(status) => {
                return refusals::refused(cx, week, execution_id, &message, slot).await;
            }
            Err(GatewayError::Amc(error)) if !error.is_transient() => {
                let reason = format!("AMC refused the execution: {error}");
                return steps::fail_attempt(cx, week, Some(execution_id), None, &reason, false)
                    .await;
            }
            Err(error) => {
                tracing::warn!(create, %error, "AMC create did not answer clearly; looking for the execution before retrying.");
                last_error = error.to_string();
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
    let failed = steps::fail_attempt(cx, week, Some(execution_id), None, &reason, true);
    slot.release_after(failed).await
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
    let backoff = cx.policy.slot_wait_backoff();
    let mut listings = 0;
    loop {
        if let Some(info) = find(cx, week.id, execution_id, request, created_after).await {
            return adopt(cx, week, execution_id, info, slot).await;
        }
        if std::time::Instant::now() >= deadline {
            break;
        }
        actix_rt::time::sleep(backoff.delay(listings)).await;
        listings = listings.saturating_add(1);
    }
    let reason = "AMC acknowledged the create without an id and never listed the execution";
    let failed = steps::fail_attempt(cx, week, Some(execution_id), None, reason, true);
    slot.release_after(failed).await
}

/// What AMC lists for the window, asked again (with backoff) until a listing is read: a listing
/// that fails says nothing, and taking it for "none" could create the execution twice.
pub(super) async fn find(
    cx: &WeekContext,
    week_id: WeekId,
    execution_id: ExecutionId,
    request: &CreateExecution,
    created_after: DateTime<Utc>,
) -> Option<ExecutionInfo> {
    let backoff = cx.policy.listing_backoff();
    let mut failures = 0;
    loop {
        if let Ok(found) = list_once(cx, week_id, execution_id, request, created_after).await {
            return found;
        }
        actix_rt::time::sleep(backoff.delay(failures)).await;
        failures = failures.saturating_add(1);
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
    let wait = retry_after.unwrap_or_else(|| refusals::window_share(cx));
    let until = refusals::after(wait);
    let reason = format!("waiting for AMC's daily limit until {until}: {message}");
    cx.daily_limit_wait.set(Some(until));
    tracing::warn!(%until, "AMC refused the create for a limit; the week waits without spending an attempt.");
    refusals::withdraw_until(cx, week, execution_id, reason, until, slot).await
}

/// Stores the AMC id at once, then follows the execution.
pub(super) async fn adopt(
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
