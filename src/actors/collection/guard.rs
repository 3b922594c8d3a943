//! What keeps a collection from spending the instance's daily executions on a query AMC will
//! never run: probing (a workflow that has never completed a week on the instance has one
//! execution in flight at a time until one completes), holding (the same failure twice, or the
//! same create refusal three times, before anything was accepted or completed), and the count of
//! create refusals AMC gives without saying why.
//!
//! AMC may accept a query at create and fail it in validation moments later (observed behaviour,
//! reported by AMC users: `FAILED` with a validation `statusReason` shortly after create), and its
//! daily limit counts those runs too (AMC documentation: ad-hoc executions per instance per day).

use tokio::sync::OwnedSemaphorePermit;

use super::outcome::WeekOutcome;
use super::steps::WeekContext;
use crate::actors::db_writer::HoldCollection;

pub(super) use super::guard_state::{refusal_reason, REFUSALS_TO_HOLD};

/// Waits for the week's turn to create: at once once the workflow is proven on the instance,
/// else for the one probe permit, held (by the caller) until the attempt ends.
pub(super) async fn probe_turn(cx: &WeekContext) -> Option<OwnedSemaphorePermit> {
    if proven(cx).await {
        return None;
    }
    let permit = cx.guard.probe.clone().acquire_owned().await.ok()?;
    // Proven while this week waited: no need to hold the others back.
    (cx.guard.proven.get() != Some(true)).then_some(permit)
}

/// Whether the workflow completed a week on the instance, read once; a read that fails is
/// asked again at the next week and probes meanwhile (the cautious answer).
async fn proven(cx: &WeekContext) -> bool {
    if let Some(proven) = cx.guard.proven.get() {
        return proven;
    }
    match cx
        .store
        .workflow_proven_on(cx.workflow.id, cx.instance.id)
        .await
    {
        Ok(proven) => {
            if cx.guard.proven.get().is_none() {
                cx.guard.proven.set(Some(proven));
            }
            proven || cx.guard.proven.get() == Some(true)
        }
        Err(error) => {
            tracing::warn!(%error, "Whether the workflow ran on the instance cannot be read; probing.");
            false
        }
    }
}

/// After an attempt failed: holds the collection when its executions keep failing with one
/// reason and none of its weeks completed. Returns `Held` then, else `outcome`.
pub(super) async fn after_failure(cx: &WeekContext, outcome: WeekOutcome) -> WeekOutcome {
    if !matches!(
        outcome,
        WeekOutcome::RetryAt(_) | WeekOutcome::FailedForGood
    ) {
        return outcome;
    }
    match cx.store.repeated_failure(cx.collection_id).await {
        Ok(Some(reason)) => hold(cx, &reason).await.unwrap_or(outcome),
        Ok(None) => outcome,
        Err(error) => {
            tracing::warn!(%error, "Failures of the collection cannot be read; not holding it.");
            outcome
        }
    }
}

/// Holds the collection with AMC's `reason` (`Some(Held)` once stored; `None` when the database
/// refused: the operator paused or cancelled it meanwhile, or the lease moved).
pub(super) async fn hold(cx: &WeekContext, reason: &str) -> Option<WeekOutcome> {
    let message = HoldCollection {
        collection_id: cx.collection_id,
        reason: reason.to_owned(),
        fence: cx.fence.clone(),
    };
    match cx.db.send(message).await {
        Ok(Ok(true)) => {
            tracing::warn!(reason, "Collection held: AMC will not run its query; no more creates until `collection resume`.");
            cx.guard.held.set(true);
            Some(WeekOutcome::Held)
        }
        Ok(Ok(false)) => None,
        Ok(Err(error)) => {
            tracing::warn!(%error, "Holding the collection failed.");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "Database writer unavailable while holding the collection.");
            None
        }
    }
}
