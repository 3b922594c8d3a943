//! What keeps a collection from spending the instance's daily executions on a query AMC will
//! never run: probing (a workflow that has never completed a week on the instance has one
//! execution in flight at a time until one completes), holding (the same failure twice, or the
//! same create refusal three times, before anything was accepted or completed), and the count of
//! create refusals AMC gives without saying why.
//!
//! AMC may accept a query at create and fail it in validation moments later (observed behaviour,
//! reported by AMC users: `FAILED` with a validation `statusReason` shortly after create), and its
//! daily limit counts those runs too (AMC documentation: ad-hoc executions per instance per day).

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::outcome::WeekOutcome;
use super::steps::WeekContext;
use crate::actors::db_writer::HoldCollection;
use crate::store::CREATE_REFUSED;

/// Refusals of creates with the same message that hold a collection AMC never accepted.
pub(super) const REFUSALS_TO_HOLD: u32 = 3;

/// The collection's guard state, shared by its weeks (one actor, one thread).
pub struct CollectionGuard {
    /// Whether the workflow completed a week on the instance (`None`: not read yet).
    proven: Cell<Option<bool>>,
    /// One permit: the probe in flight while the workflow is not proven.
    probe: Arc<Semaphore>,
    /// Set once the collection is held: no week creates anything any more.
    held: Cell<bool>,
    /// The latest unclassified create refusal: its message, how many in a row, since when.
    refusal: RefCell<Option<Refusal>>,
}

/// A run of create refusals with one message.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    pub(super) message: String,
    pub(super) count: u32,
    pub(super) since: DateTime<Utc>,
}

impl Default for CollectionGuard {
    fn default() -> Self {
        Self {
            proven: Cell::new(None),
            probe: Arc::new(Semaphore::new(1)),
            held: Cell::new(false),
            refusal: RefCell::new(None),
        }
    }
}

impl CollectionGuard {
    pub(super) fn is_held(&self) -> bool {
        self.held.get()
    }

    /// A week completed: the workflow runs on this instance, so every week may go at once.
    pub(super) fn note_completed(&self) {
        self.proven.set(Some(true));
    }

    /// Counts a refusal with `message` (a different message starts a new run).
    pub(super) fn note_refusal(&self, message: &str) -> Refusal {
        let mut refusal = self.refusal.borrow_mut();
        let next = match refusal.take() {
            Some(run) if run.message == message => Refusal {
                count: run.count.saturating_add(1),
                ..run
            },
            _ => Refusal {
                message: message.to_owned(),
                count: 1,
                since: Utc::now(),
            },
        };
        *refusal = Some(next.clone());
        next
    }

    /// AMC accepted a create: the refusals are over.
    pub(super) fn note_accepted(&self) {
        self.refusal.borrow_mut().take();
    }

    /// The refusal AMC keeps giving, if any (status display).
    pub fn refusal_text(&self) -> Option<String> {
        let refusal = self.refusal.borrow();
        refusal.as_ref().map(refusal_reason)
    }
}

/// `AMC refuses creates: <message> (since T)`.
pub(super) fn refusal_reason(refusal: &Refusal) -> String {
    format!(
        "{CREATE_REFUSED}{} (since {})",
        refusal.message,
        refusal.since.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_with_one_message_count_up_and_another_message_starts_again() {
        let guard = CollectionGuard::default();
        assert_eq!(guard.note_refusal("no").count, 1);
        assert_eq!(guard.note_refusal("no").count, 2);
        assert_eq!(guard.note_refusal("other").count, 1);
        guard.note_accepted();
        assert_eq!(guard.refusal_text(), None);
    }
}
