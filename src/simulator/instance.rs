//! The scheduler's view of one simulated AMC instance: its executions in creation order, its
//! PENDING queue and its slot holders.
//!
//! Kept apart from `scheduler` (which moves executions through it) so that `state`, which holds
//! one per instance, does not import the scheduler that extends it.

use std::collections::VecDeque;
use std::time::Instant;

/// Scheduler view of one AMC instance.
#[derive(Debug, Default)]
pub(crate) struct Instance {
    /// Ids in creation order, for listing.
    pub(crate) ids: Vec<String>,
    /// PENDING executions in FIFO order.
    pub(super) queue: VecDeque<String>,
    /// Slot holders with the instant their slot is released.
    pub(super) holders: Vec<(Instant, String)>,
    /// The scheduler has replayed events up to here; no start may be placed earlier.
    pub(super) cursor: Option<Instant>,
}
