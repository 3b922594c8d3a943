//! Keeping this process's leases: renewed every third of the lease; a child whose lease was lost
//! (another process took the collection over after it expired) is stopped and not restarted.

use actix::prelude::*;

use super::Supervisor;
use crate::actors::collection::StopCollection;
use crate::actors::db_writer::RenewLeases;
use crate::actors::gateway::ReleaseCollection;
use crate::ids::CollectionId;

impl Supervisor {
    /// Renews this process's leases; children whose lease was lost are stopped for good.
    pub(super) fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let renew = RenewLeases {
            owner: self.settings.owner.clone(),
            lease: self.settings.lease,
        };
        let db = self.db.clone();
        ctx.spawn(
            async move { db.send(renew).await }
                .into_actor(self)
                .map(|result, act, _ctx| match result {
                    Ok(Ok(held)) => act.drop_lost_children(&held),
                    Ok(Err(error)) => tracing::warn!(%error, "Renewing leases failed; will retry."),
                    Err(error) => {
                        tracing::warn!(%error, "Database writer unavailable while renewing leases.")
                    }
                }),
        );
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
            self.gateway
                .do_send(ReleaseCollection { collection_id: id });
        }
    }
}
