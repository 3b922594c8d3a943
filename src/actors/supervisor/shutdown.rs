//! Graceful shutdown: children stop, writes already sent land, leases go back, and the
//! supervisor's own reads end, all within a deadline.

use std::time::{Duration, Instant};

use actix::prelude::*;

use super::Supervisor;
use crate::actors::collection::StopCollection;
use crate::actors::db_writer::{GetWritesInFlight, ReleaseLeases};

/// Stops everything gracefully: children stop, then writes in flight land (bounded by
/// `deadline`). Replies when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub deadline: Duration,
}

/// Counts futures holding a `ReadGuard`; the count drops when the future ends or is dropped.
#[derive(Clone, Default)]
pub(super) struct ReadsInFlight(std::rc::Rc<std::cell::Cell<usize>>);

impl ReadsInFlight {
    pub(super) fn guard(&self) -> ReadGuard {
        self.0.set(self.0.get() + 1);
        ReadGuard(self.0.clone())
    }

    fn count(&self) -> usize {
        self.0.get()
    }
}

pub(super) struct ReadGuard(std::rc::Rc<std::cell::Cell<usize>>);

impl Drop for ReadGuard {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        self.shutting_down = true;
        let children: Vec<_> = self
            .children
            .values()
            .filter_map(|child| child.addr.clone())
            .collect();
        tracing::info!(
            children = self.children.len(),
            "Shutting down: stopping collection actors."
        );
        for child in self.children.values() {
            if let Some(addr) = &child.addr {
                addr.do_send(StopCollection);
            }
        }
        let db = self.db.clone();
        let owner = self.settings.owner.clone();
        let deadline = Instant::now()
            .checked_add(msg.deadline)
            .unwrap_or_else(Instant::now);
        let reads = self.reads.clone();
        Box::pin(
            async move {
                // Collection actors stop first (their reads and writes end with them)...
                while Instant::now() < deadline && children.iter().any(Addr::connected) {
                    actix_rt::time::sleep(Duration::from_millis(20)).await;
                }
                // ...then writes already sent finish; AMC executions keep running and are
                // resumed later.
                while Instant::now() < deadline {
                    match db.send(GetWritesInFlight).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => actix_rt::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                // Leases go back so another process can continue at once.
                let release = ReleaseLeases { owner, collection_ids: None };
                if let Ok(Err(error)) = db.send(release).await {
                    tracing::warn!(%error, "Leases could not be released; they expire on their own.");
                }
                // The supervisor's own reads (a scan or sweep under way) end too: one still
                // pending when the runtime is torn down makes sqlx panic.
                while Instant::now() < deadline && reads.count() > 0 {
                    actix_rt::time::sleep(Duration::from_millis(10)).await;
                }
            }
            .into_actor(self),
        )
    }
}
