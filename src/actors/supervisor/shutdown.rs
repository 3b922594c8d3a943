//! Graceful shutdown (`SupervisorEvent::ShutdownRequested`): children stop, and everything the
//! daemon's task tracker counts ends (children, the Supervisor's and Housekeeping's reads, writes
//! already sent), all within one deadline; then leases go back. What is still running when the
//! deadline passes is logged by name. AMC executions keep running and are resumed later.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::Supervisor;
use crate::actors::collection::StopCollection;
use crate::actors::db_writer::{GetWritesInFlight, ReleaseLeases};

impl Supervisor {
    /// Stops the children and claims nothing more; the returned future ends once the tracker is
    /// empty (or the deadline passed) and the leases were given back.
    pub(super) fn shut_down(&mut self, deadline: Duration) -> ResponseActFuture<Self, ()> {
        self.shutting_down = true;
        tracing::info!(
            children = self.children.len(),
            "Shutting down: stopping collection actors."
        );
        for child in self.children.values() {
            if let Some(addr) = &child.addr {
                addr.do_send(StopCollection);
            }
        }
        let tracker = self.wiring.tracker.clone();
        let db = self.wiring.db.clone();
        let owner = self.settings.owner.clone();
        let started = Instant::now();
        let left = move || deadline.saturating_sub(started.elapsed());
        Box::pin(
            async move {
                // Children end (their reads with them), reads end, writes under way land...
                let mut waited = tracker.wait(left()).await;
                if waited.is_ok() {
                    // ...and writes a stopped child sent are in the writer's mailbox: one round
                    // trip through it, and each of them holds a guard; then wait for those too.
                    let _ = db.send(GetWritesInFlight).await;
                    waited = tracker.wait(left()).await;
                }
                if let Err(running) = waited {
                    for task in running {
                        tracing::warn!(task = %task, "{task} still running at the shutdown deadline.");
                    }
                }
                // Leases go back so another process can continue at once.
                let release = ReleaseLeases {
                    owner,
                    collection_ids: None,
                };
                if let Ok(Err(error)) = db.send(release).await {
                    tracing::warn!(%error, "Leases could not be released; they expire on their own.");
                }
            }
            .into_actor(self),
        )
    }
}
