//! Scanning: claiming what this process may run (collections abandoned with weeks in flight
//! first, then runnable ones while there is room), adopting the slots of their executions on AMC,
//! starting children for new claims, telling running children of work given back, and noticing
//! when nothing is left to do (`exit_when_idle`).

use std::collections::VecDeque;
use std::time::Duration;

use actix::prelude::*;

use super::{adoption, reopened, Child, ScanState, Supervisor, SupervisorEvent};
use crate::actors::db_writer::{ClaimAbandonedInFlight, ClaimCollections, DbWriter};
use crate::ids::CollectionId;
use crate::store::StoreError;

/// What a scan found (`SupervisorEvent::Scanned`).
pub struct Scanned {
    claimed: Vec<(CollectionId, i64)>,
    runnable: Result<usize, StoreError>,
    given_work: Vec<(CollectionId, i64)>,
    /// Whether Housekeeping had ended a round when the scan started (see `Supervisor::housekept`).
    housekept: bool,
}

impl Supervisor {
    /// Claims what this process may run; the result comes back as `SupervisorEvent::Scanned`.
    pub(super) fn scan(&mut self, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        if self.scan != ScanState::Idle {
            self.scan = ScanState::RunningThenAgain;
            return;
        }
        self.scan = ScanState::Running;
        let room = self
            .settings
            .max_collections
            .saturating_sub(self.children.len());
        let (owner, lease) = (self.settings.owner.clone(), self.settings.lease);
        let batch = self.settings.claim_batch;
        let wiring = &self.wiring;
        let (db, store, gateway) = (
            wiring.db.clone(),
            wiring.store.clone(),
            wiring.gateway.clone(),
        );
        let running = wiring.tracker.guard("supervisor scan");
        let housekept = self.housekept;
        self.spawn_then(ctx, async move {
            let _running = running;
            let claimed = claim_work(&db, owner.clone(), lease, room, batch).await;
            if !claimed.is_empty() {
                // Executions already on AMC in what we now own hold their slots before anything new.
                if let Ok(weeks) = store.in_flight_weeks_of(&owner).await {
                    adoption::adopt_in_flight(&gateway, weeks);
                }
            }
            let runnable = store.runnable_collections().await.map(|ids| ids.len());
            let given_work = reopened::given_work(&store, &owner).await;
            SupervisorEvent::Scanned(Scanned {
                claimed,
                runnable,
                given_work,
                housekept,
            })
        });
    }

    pub(super) fn on_scanned(&mut self, scanned: Scanned, ctx: &mut Context<Self>) {
        let again = self.scan == ScanState::RunningThenAgain;
        self.scan = ScanState::Idle;
        let full_batch = scanned.claimed.len() >= self.settings.claim_batch;
        for (id, epoch) in scanned.claimed {
            if self.record.given_up.contains(&id) {
                continue;
            }
            let child = self.children.entry(id).or_insert(Child {
                addr: None,
                generation: 0,
                epoch,
                crashes: VecDeque::new(),
                work_seen: None,
            });
            child.epoch = epoch;
            if child.addr.is_none() {
                self.start_child(id, ctx);
            }
        }
        self.tell_given_work(scanned.given_work);
        if full_batch || again {
            // More may be waiting (or was added meanwhile): scan now rather than at the interval.
            ctx.notify(SupervisorEvent::ScanDue);
        }
        let nothing_runnable = matches!(scanned.runnable, Ok(0));
        if nothing_runnable
            && scanned.housekept
            && self.children.is_empty()
            && self.settings.exit_when_idle
        {
            if let Some(idle) = self.idle.take() {
                tracing::info!("No collection has work left; going idle.");
                let _ = idle.send(());
            }
        }
    }
}

/// One scan's claims: collections left with weeks in flight by a process that is gone, whatever
/// this process's cap (their executions hold the instance's AMC slots for every process, and
/// their result links expire), then runnable collections while there is `room`.
async fn claim_work(
    db: &Addr<DbWriter>,
    owner: String,
    lease: Duration,
    room: usize,
    batch: usize,
) -> Vec<(CollectionId, i64)> {
    let abandoned = ClaimAbandonedInFlight {
        owner: owner.clone(),
        lease,
        limit: batch as i64,
    };
    let mut claimed = claimed_or_logged(db.send(abandoned).await);
    let limit = room.saturating_sub(claimed.len()).min(batch);
    if limit > 0 {
        let claim = ClaimCollections {
            owner,
            lease,
            limit: limit as i64,
        };
        claimed.extend(claimed_or_logged(db.send(claim).await));
    }
    claimed
}

/// A claim's collections; a failed claim claims nothing and is tried again at the next scan.
fn claimed_or_logged(
    reply: Result<Result<Vec<(CollectionId, i64)>, StoreError>, MailboxError>,
) -> Vec<(CollectionId, i64)> {
    match reply {
        Ok(Ok(claimed)) => claimed,
        Ok(Err(error)) => {
            tracing::warn!(%error, "Claiming collections failed; will retry.");
            Vec::new()
        }
        Err(error) => {
            tracing::warn!(%error, "Database writer unavailable while claiming.");
            Vec::new()
        }
    }
}
