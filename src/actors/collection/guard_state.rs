//! A collection's guard state, shared by its weeks (one actor, one thread): whether its workflow
//! is proven on the instance, the one probe permit, whether it is held, and the run of create
//! refusals AMC gives without saying why. What the weeks do with it is `guard.rs`'s.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use crate::store::CREATE_REFUSED;

/// Refusals of creates with the same message that hold a collection AMC never accepted.
pub(super) const REFUSALS_TO_HOLD: u32 = 3;

/// The collection's guard state, shared by its weeks (one actor, one thread).
pub struct CollectionGuard {
    /// Whether the workflow completed a week on the instance (`None`: not read yet).
    pub(super) proven: Cell<Option<bool>>,
    /// One permit: the probe in flight while the workflow is not proven.
    pub(super) probe: Arc<Semaphore>,
    /// Set once the collection is held: no week creates anything any more.
    pub(super) held: Cell<bool>,
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
