//! The Supervisor's children: loading a claimed collection's state (a bounded number at once),
//! starting its actor, restarting one that stopped without finishing (fresh, with exponential
//! backoff and an intensity limit) and giving up on one that keeps failing. Each child holds the
//! task tracker's guard "collection <id>" for its whole life, and each load one of its own.

use std::collections::VecDeque;
use std::time::Instant;

use actix::prelude::*;

use super::{adoption, Supervisor, SupervisorEvent};
use crate::actors::collection::{CollectionActor, CollectionStopped, WeekContext};
use crate::actors::db_writer::{FailCollection, ReleaseLeases};
use crate::actors::gateway::{instance_ref, ReleaseCollection};
use crate::backoff::Backoff;
use crate::ids::CollectionId;
use crate::store::model::CollectionSnapshot;
use crate::store::{Fence, StoreError};

/// Doublings of a child's restart delay before it stops growing.
const RESTART_DOUBLINGS: u32 = 10;

/// Snapshot loads running at once: thousands of new claims must not exhaust the pool at once.
const MAX_CONCURRENT_LOADS: usize = 8;

/// Children waiting for their state to be loaded, and how many loads are running.
#[derive(Default)]
pub(super) struct Loads {
    waiting: VecDeque<CollectionId>,
    running: usize,
}

/// A claimed collection's state, read for its child (`SupervisorEvent::SnapshotLoaded`).
pub struct Loaded {
    id: CollectionId,
    result: Result<CollectionSnapshot, StoreError>,
}

impl Supervisor {
    /// Queues the collection's state to be loaded and a fresh actor started for it.
    pub(super) fn start_child(&mut self, id: CollectionId, ctx: &mut Context<Self>) {
        self.loads.waiting.push_back(id);
        self.load_next(ctx);
    }

    fn load_next(&mut self, ctx: &mut Context<Self>) {
        while self.loads.running < MAX_CONCURRENT_LOADS && !self.shutting_down {
            let Some(id) = self.loads.waiting.pop_front() else {
                return;
            };
            self.loads.running += 1;
            let store = self.wiring.store.clone();
            let running = self
                .wiring
                .tracker
                .guard(format!("loading collection {id}"));
            self.spawn_then(ctx, async move {
                let _running = running;
                let result = store.snapshot(id).await;
                SupervisorEvent::SnapshotLoaded(Box::new(Loaded { id, result }))
            });
        }
    }

    pub(super) fn on_loaded(&mut self, loaded: Loaded, ctx: &mut Context<Self>) {
        self.loads.running -= 1;
        self.on_snapshot(loaded.id, loaded.result, ctx);
        self.load_next(ctx);
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
                ctx.notify_later(
                    SupervisorEvent::RestartDue { collection_id: id },
                    self.settings.scan_interval,
                );
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
            store: self.wiring.store.clone(),
            gateway: self.wiring.gateway.clone(),
            db: self.wiring.db.clone(),
            policy: self.wiring.policy.clone(),
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
        adoption::adopt_in_flight(&self.wiring.gateway, adoption::in_flight_of(&snapshot));
        let supervisor = ctx.address();
        let on_stop = Box::new(move |stopped| {
            supervisor.do_send(SupervisorEvent::ChildStopped(stopped));
        });
        let running = self.wiring.tracker.guard(format!("collection {id}"));
        let actor = CollectionActor::new(&snapshot, cx, child.generation, on_stop, running);
        child.addr = Some(actor.start());
    }

    /// Marks the collection failed with the reason and frees its slots and lease; the process goes on.
    pub(super) fn give_up(&mut self, id: CollectionId, reason: String) {
        tracing::error!(collection_id = %id, reason = %reason, "Giving up on collection.");
        self.record.gave_up_total += 1;
        self.record.given_up.insert(id);
        self.children.remove(&id);
        self.wiring
            .gateway
            .do_send(ReleaseCollection { collection_id: id });
        self.wiring.db.do_send(FailCollection {
            collection_id: id,
            reason,
        });
    }
}

impl Supervisor {
    /// A child stopped: released when finished, restarted fresh after a backoff when not, or
    /// given up on past the intensity limit. Stale reports (an older generation) are ignored.
    pub(super) fn on_child_stopped(&mut self, msg: CollectionStopped, ctx: &mut Context<Self>) {
        let Some(child) = self.children.get_mut(&msg.collection_id) else {
            return;
        };
        if child.generation != msg.generation || self.shutting_down {
            return;
        }
        child.addr = None;
        if msg.finished {
            self.children.remove(&msg.collection_id);
            self.wiring.db.do_send(ReleaseLeases {
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
        self.record.restarts_total += 1;
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
        ctx.notify_later(SupervisorEvent::RestartDue { collection_id: id }, backoff);
    }
}
