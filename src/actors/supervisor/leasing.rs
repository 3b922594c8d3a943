//! Keeping this process's leases: renewed every third of the lease; a child whose lease was lost
//! (another process took the collection over after it expired) is stopped and not restarted. On
//! SQLite the renewal also extends the process lock; losing that stops the whole process.

use actix::prelude::*;

use super::{Supervisor, SupervisorEvent};
use crate::actors::collection::StopCollection;
use crate::actors::db_writer::RenewLeases;
use crate::actors::gateway::ReleaseCollection;
use crate::ids::CollectionId;
use crate::store::StoreError;

/// A lease renewal's answer (`SupervisorEvent::LeasesRenewed`): what this process still holds.
pub struct Renewed(Result<Result<Vec<CollectionId>, StoreError>, MailboxError>);

impl Supervisor {
    /// Renews this process's leases; the answer comes back as `SupervisorEvent::LeasesRenewed`.
    pub(super) fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let renew = RenewLeases {
            owner: self.settings.owner.clone(),
            lease: self.settings.lease,
            process_lock: self.settings.holds_process_lock,
        };
        let db = self.wiring.db.clone();
        self.spawn_then(ctx, async move {
            SupervisorEvent::LeasesRenewed(Renewed(db.send(renew).await))
        });
    }

    /// Children whose lease was lost are stopped for good; a lost process lock stops everything.
    pub(super) fn on_renewed(&mut self, Renewed(result): Renewed) {
        match result {
            Ok(Ok(held)) => self.drop_lost_children(&held),
            Ok(Err(StoreError::ProcessLockLost(reason))) => self.lose_process_lock(reason),
            Ok(Err(error)) => tracing::warn!(%error, "Renewing leases failed; will retry."),
            Err(error) => {
                tracing::warn!(%error, "Database writer unavailable while renewing leases.")
            }
        }
    }

    /// Another process holds the SQLite process lock now: this one stops every collection at
    /// once, claims nothing more, and tells the daemon, which shuts down and exits non-zero.
    fn lose_process_lock(&mut self, reason: String) {
        if self.shutting_down {
            return;
        }
        tracing::error!(%reason, "Process lock lost; stopping all work.");
        self.shutting_down = true;
        for child in self.children.values() {
            if let Some(addr) = &child.addr {
                addr.do_send(StopCollection);
            }
        }
        if let Some(lock_lost) = self.lock_lost.take() {
            let _ = lock_lost.send(reason);
        }
    }

    pub(super) fn drop_lost_children(&mut self, held: &[CollectionId]) {
        let lost: Vec<CollectionId> = self
            .children
            .keys()
            .filter(|id| !held.contains(id))
            .copied()
            .collect();
        for id in lost {
            tracing::warn!(collection_id = %id, "Lease lost to another process; stopping this collection here.");
            if let Some(child) = self.children.remove(&id) {
                if let Some(addr) = child.addr {
                    addr.do_send(StopCollection);
                }
            }
            self.wiring
                .gateway
                .do_send(ReleaseCollection { collection_id: id });
        }
    }
}
