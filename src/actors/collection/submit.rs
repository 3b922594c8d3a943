//! Creating a week's execution on AMC and adopting it: a create whose reply has no id, or is
//! lost, is never sent again before AMC's list says the execution does not exist. The week's
//! slot travels with it into `follow::track`, or is freed once the attempt's end is stored.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::follow;
use super::outcome::{stale, stored, NotStored, WeekOutcome};
use super::refusals;
use super::slot::Slot;
use super::steps::{self, WeekContext};
use crate::actors::gateway::{FindExecution, GatewayError};
use crate::amc::{AmcError, CreateExecution, ExecutionInfo};
use crate::ids::ExecutionId;
use crate::store::model::Week;
use crate::store::{Submitted, Transition};

/// Creates tried for one attempt before it counts as failed (each may be adopted instead).
const MAX_CREATES_PER_ATTEMPT: u32 = 3;
/// Listings tried to adopt an execution whose create reply had no id (AMC lists lag a little).
const ADOPTION_LOOKUPS: u32 = 3;
/// Listings in a row that could not be read before the attempt fails: a listing that fails says
/// nothing, but asking forever would hold the week (and its slot) without end.
const MAX_FAILED_LISTINGS: u32 = 20;

/// Creates the execution; a reply without an id, or one lost to a timeout, is adopted by listing.
pub(super) async fn submit(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    request: &CreateExecution,
    created_after: DateTime<Utc>,
    mut slot: Slot,
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
        // An execution another week stored first is not this attempt's: it counts as a
        // listing that found nothing (the next one no longer lists it).
        for lookup in 1..=ADOPTION_LOOKUPS {
            match find(cx, execution_id, request, created_after).await {
                Ok(Some(info)) => match adopt_found(cx, week, execution_id, info, slot).await {
                    Found::Adopted(outcome) => return outcome,
                    Found::Taken(back) => slot = back,
                },
                Ok(None) => {}
                Err(reason) => return give_up(cx, week, execution_id, &reason, slot).await,
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
    mut slot: Slot,
) -> WeekOutcome {
    let deadline = std::time::Instant::now() + cx.policy.acknowledged_adoption_deadline();
    let backoff = cx.policy.slot_wait_backoff();
    let mut listings = 0;
    loop {
        match find(cx, execution_id, request, created_after).await {
            Ok(Some(info)) => match adopt_found(cx, week, execution_id, info, slot).await {
                Found::Adopted(outcome) => return outcome,
                Found::Taken(back) => slot = back,
            },
            Ok(None) => {}
            Err(reason) => return give_up(cx, week, execution_id, &reason, slot).await,
        }
        if std::time::Instant::now() >= deadline {
            break;
        }
        actix_rt::time::sleep(backoff.delay(listings)).await;
        listings = listings.saturating_add(1);
    }
    let reason = "AMC acknowledged the create without an id and never listed the execution";
    give_up(cx, week, execution_id, reason, slot).await
}

/// After a crash in `submitting`: adopts what AMC has for this window (and no other week holds),
/// else creates as a fresh attempt would.
pub(super) async fn resume(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    request: &CreateExecution,
    created_after: DateTime<Utc>,
    slot: Slot,
) -> WeekOutcome {
    let slot = match find(cx, execution_id, request, created_after).await {
        Ok(Some(info)) => match adopt_found(cx, week, execution_id, info, slot).await {
            Found::Adopted(outcome) => return outcome,
            Found::Taken(back) => back,
        },
        Ok(None) => slot,
        Err(reason) => return give_up(cx, week, execution_id, &reason, slot).await,
    };
    submit(cx, week, execution_id, request, created_after, slot).await
}

/// Fails the attempt (retryable) and frees its slot once that is stored.
async fn give_up(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    reason: &str,
    slot: Slot,
) -> WeekOutcome {
    let failed = steps::fail_attempt(cx, week, Some(execution_id), None, reason, true);
    slot.release_after(failed).await
}

/// What AMC lists for the window that no other week holds, asked again (with backoff) until a
/// listing is read: a listing that fails says nothing, and taking it for "none" could create the
/// execution twice. `Err` (the reason) after `MAX_FAILED_LISTINGS` failures in a row.
async fn find(
    cx: &WeekContext,
    execution_id: ExecutionId,
    request: &CreateExecution,
    created_after: DateTime<Utc>,
) -> Result<Option<ExecutionInfo>, String> {
    let backoff = cx.policy.listing_backoff();
    let mut failures = 0;
    loop {
        match list_once(cx, execution_id, request, created_after).await {
            Ok(found) => return Ok(found),
            Err(why) if failures + 1 >= MAX_FAILED_LISTINGS => {
                return Err(format!(
                    "AMC's executions could not be listed to find this attempt's execution \
                     ({MAX_FAILED_LISTINGS} tries): {why}"
                ))
            }
            Err(_) => {}
        }
        actix_rt::time::sleep(backoff.delay(failures)).await;
        failures = failures.saturating_add(1);
    }
}

/// Lists AMC's executions for the window once (`Err` when the listing could not be read).
/// Executions recorded for any execution of the same request (the week's earlier attempts, other
/// collections' weeks over the same window) are excluded; anything else matching may be this
/// attempt's.
async fn list_once(
    cx: &WeekContext,
    execution_id: ExecutionId,
    request: &CreateExecution,
    created_after: DateTime<Utc>,
) -> Result<Option<ExecutionInfo>, String> {
    let exclude = match cx.store.recorded_amc_ids(execution_id).await {
        Ok(ids) => ids,
        Err(error) => {
            tracing::warn!(%error, "Recorded executions cannot be read; not adopting yet.");
            return Err(error.to_string());
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
            Err(error.to_string())
        }
        Err(error) => {
            tracing::warn!(%error, "Gateway unavailable while listing executions.");
            Err(error.to_string())
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
    if let Err(error) = store_amc_id(cx, execution_id, &amc_id).await {
        return stale(error);
    }
    let submitted = follow::Submitted {
        execution_id,
        amc_execution_id: amc_id,
        created: info.create_time,
    };
    follow::track(cx, week, submitted, slot, true).await
}

/// What became of an execution a listing found.
enum Found {
    /// Stored for this week and followed to this outcome.
    Adopted(WeekOutcome),
    /// Another week stored it first (it listed the execution before that week recorded it): not
    /// this attempt's. The slot comes back for the search to go on.
    Taken(Slot),
}

/// Adopts an execution a listing found, unless another week holds it by the time it is stored
/// (`workflow_executions.amc_execution_id` is unique: one execution serves one week).
async fn adopt_found(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    info: ExecutionInfo,
    slot: Slot,
) -> Found {
    let Some(amc_id) = info.workflow_execution_id.clone() else {
        return Found::Taken(slot);
    };
    match store_amc_id(cx, execution_id, &amc_id).await {
        Ok(()) => {
            tracing::Span::current().record("amc_execution_id", amc_id.as_str());
            let submitted = follow::Submitted {
                execution_id,
                amc_execution_id: amc_id,
                created: info.create_time,
            };
            let tracked = follow::track(cx, week, submitted, slot, true);
            Found::Adopted(Box::pin(tracked).await)
        }
        Err(error) => match cx.store.amc_id_held_elsewhere(&amc_id, execution_id).await {
            Ok(true) => {
                tracing::info!(amc_execution_id = %amc_id, "Listed execution belongs to another week; looking on.");
                Found::Taken(slot)
            }
            _ => Found::Adopted(stale(error)),
        },
    }
}

/// Stores the execution's AMC id (week → `running`).
async fn store_amc_id(
    cx: &WeekContext,
    execution_id: ExecutionId,
    amc_id: &str,
) -> Result<(), NotStored> {
    let collection_id = cx.collection_id;
    stored(
        steps::persist(cx, || {
            Transition::Submitted(Submitted {
                collection_id,
                execution_id,
                amc_execution_id: amc_id.to_string(),
                fence: cx.fence.clone(),
            })
        })
        .await,
    )
}
