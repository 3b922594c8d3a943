//! The Supervisor's children: loading a claimed collection's state (a bounded number at once),
//! starting its actor, restarting one that stopped without finishing (fresh, with exponential
//! backoff and an intensity limit) and giving up on one that keeps failing.

use std::time::Instant;

use actix::prelude::*;

use super::{adoption, Supervisor};
use crate::actors::collection::{CollectionActor, CollectionStopped, WeekContext};
use crate::actors::db_writer::{FailCollection, ReleaseLeases};
use crate::actors::gateway::{instance_ref, ReleaseCollection};
use crate::backoff::Backoff;
use crate::ids::CollectionId;
use crate::store::model::CollectionSnapshot;
use crate::store::{Fence, StoreError};

/// Doublings of a child's restart delay before it stops growing.
const RESTART_DOUBLINGS: u32 = 10;

/// Snapshot loads running at once.
const MAX_CONCURRENT_LOADS: usize = 8;

impl Supervisor {
    /// Queues the collection's state to be loaded and a fresh actor started for it.
    pub(super) fn start_child(&mut self, id: CollectionId, ctx: &mut Context<Self>) {
        self.to_load.push_back(id);
        self.load_next(ctx);
    }

    fn load_next(&mut self, ctx: &mut Context<Self>) {
        while self.loading < MAX_CONCURRENT_LOADS && !self.shutting_down {
            let Some(id) = self.to_load.pop_front() else {
                return;
            };
            self.loading += 1;
            let store = self.store.clone();
            let read = self.reads.guard();
            ctx.spawn(
                async move {
                    let _read = read;
                    store.snapshot(id).await
                }
                .into_actor(self)
                .map(move |result, act, ctx| {
                    act.loading -= 1;
                    act.on_snapshot(id, result, ctx);
                    act.load_next(ctx);
                }),
            );
        }
    }

    fn on_snapshot(
        &mut self,
        id: CollectionId,
        result: Result<CollectionSnapshot, StoreError>,
        ctx: &mut Context<Self>,
    ) {
        if self.shutting_down {
            return;
        }
        let snapshot = match result {
            Ok(snapshot) => snapshot,
            Err(error) if error.is_transient() => {
                tracing::warn!(collection_id = %id, %error, "Collection cannot be loaded yet; retrying.");
                ctx.run_later(self.settings.scan_interval, move |act, ctx| {
                    act.start_child(id, ctx)
                });
                return;
            }
            Err(error) => {
                self.give_up(id, format!("collection cannot be loaded: {error}"));
                return;
            }
        };
        let amc_instance = match instance_ref(&snapshot.instance) {
            Ok(instance) => instance,
            Err(error) => {
                self.give_up(id, format!("instance cannot be addressed: {error}"));
                return;
            }
        };
        let cx = WeekContext {
            collection_id: id,
            amc_instance,
            instance: snapshot.instance.clone(),
            workflow: snapshot.workflow.clone(),
            parameters: snapshot.collection.parameters.clone(),
            time_zone: snapshot.collection.time_zone.clone(),
            store: self.store.clone(),
            gateway: self.gateway.clone(),
            db: self.db.clone(),
            policy: self.policy.clone(),
            fence: Fence::lease(self.settings.owner.clone(), 0),
            max_in_flight: self.settings.max_in_flight,
            quota: self.settings.quota,
            daily_limit_wait: std::cell::Cell::new(None),
            may_be_pending: std::cell::Cell::new(
                snapshot.collection.status != crate::status::CollectionStatus::Running,
            ),
            guard: Default::default(),
        };
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        let cx = WeekContext {
            fence: Fence::lease(self.settings.owner.clone(), child.epoch),
            ..cx
        };
        // Its executions on AMC hold their slots before any of its weeks asks for one.
        adoption::adopt_in_flight(&self.gateway, adoption::in_flight_of(&snapshot));
        let actor =
            CollectionActor::new(&snapshot, cx, child.generation, ctx.address().recipient());
        child.addr = Some(actor.start());
    }

    /// Marks the collection failed with the reason and frees its slots and lease; the process goes on.
    pub(super) fn give_up(&mut self, id: CollectionId, reason: String) {
        tracing::error!(collection_id = %id, reason = %reason, "Giving up on collection.");
        self.gave_up_total += 1;
        self.given_up.insert(id);
        self.children.remove(&id);
        self.gateway
            .do_send(ReleaseCollection { collection_id: id });
        self.db.do_send(FailCollection {
            collection_id: id,
            reason,
        });
    }
}

impl Handler<CollectionStopped> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: CollectionStopped, ctx: &mut Self::Context) {
        let Some(child) = self.children.get_mut(&msg.collection_id) else {
            return;
        };
        if child.generation != msg.generation || self.shutting_down {
            return;
        }
        child.addr = None;
        if msg.finished {
            self.children.remove(&msg.collection_id);
            self.db.do_send(ReleaseLeases {
                owner: self.settings.owner.clone(),
                collection_ids: Some(vec![msg.collection_id]),
            });
            self.scan(ctx);
            return;
        }
        let now = Instant::now();
        child.crashes.push_back(now);
        while child
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.settings.restart_window)
        {
            child.crashes.pop_front();
        }
        let crashes = child.crashes.len() as u32;
        if crashes > self.settings.restart_intensity {
            let reason = format!(
                "collection actor stopped unexpectedly {crashes} times within {}s; gave up",
                self.settings.restart_window.as_secs()
            );
            tracing::error!(actor = "collection", collection_id = %msg.collection_id, crashes, "Collection actor gave up.");
            self.give_up(msg.collection_id, reason);
            return;
        }
        child.generation += 1;
        self.restarts_total += 1;
        let backoff = Backoff::doubling(self.settings.restart_backoff_base, RESTART_DOUBLINGS)
            .delay(crashes.saturating_sub(1));
        tracing::warn!(
            actor = "collection",
            collection_id = %msg.collection_id,
            attempt = crashes,
            backoff_ms = backoff.as_millis() as u64,
            "Collection actor stopped unexpectedly; restarting it fresh."
        );
        let id = msg.collection_id;
        ctx.run_later(backoff, move |act, ctx| act.start_child(id, ctx));
    }
}
