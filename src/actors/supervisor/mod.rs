//! `Supervisor`: finds runnable collections, starts one `CollectionActor` each, restarts a child
//! that stopped without finishing (fresh, rebuilt from the database) with exponential backoff and
//! an intensity limit, and owns graceful shutdown.
//!
//! actix's own `Supervisor` cannot do this: it never restarts after a panic and keeps the old
//! state (actix-and-leasing.md §0), so restarts are done here by starting a new actor.
//!
//! Collections are *claimed* (a lease with an epoch, `store::leases`), renewed every third of the
//! lease, and given back when finished or at shutdown; a child whose lease was lost (another
//! process took over) is stopped and not restarted. Submodules: `status` (the tree report),
//! `sweep` (cancelling AMC executions of cancelled weeks).

mod adoption;
mod keep_fresh;
mod leasing;
mod status;
mod sweep;

pub use status::{ChildStatus, GetSupervisorStatus, SupervisorStatus};

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::collection::{
    CollectionActor, CollectionStopped, StopCollection, WeekContext, WeekPolicy,
};
use super::db_writer::{
    ClaimCollections, DbWriter, FailCollection, GetWritesInFlight, ReleaseLeases,
};
use super::gateway::{instance_ref, AmcGateway, ReleaseCollection};
use crate::backoff::Backoff;
use crate::ids::CollectionId;
use crate::store::model::CollectionSnapshot;
use crate::store::{Fence, Store, StoreError};

/// Doublings of a child's restart delay before it stops growing.
const RESTART_DOUBLINGS: u32 = 10;

/// The Supervisor's own settings.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    pub scan_interval: Duration,
    pub restart_intensity: u32,
    pub restart_window: Duration,
    pub restart_backoff_base: Duration,
    pub exit_when_idle: bool,
    /// This process's name in leases (unique per process).
    pub owner: String,
    /// Whether `owner` took the SQLite process lock: it is then renewed with the leases.
    pub holds_process_lock: bool,
    pub lease: Duration,
    /// Most collections this process runs at once.
    pub max_collections: usize,
    /// Collections claimed per scan.
    pub claim_batch: usize,
    /// The instance execution limit, also checked in the database across processes.
    pub max_in_flight: i64,
    /// AMC's daily limit per instance, also counted in the database across processes.
    pub quota: crate::store::CreateQuota,
    /// Data lag and retention: when a keep-fresh collection's next week is due.
    pub week_rules: crate::weeks::WeekRules,
}

/// Stops everything gracefully: children stop, then writes in flight land (bounded by
/// `deadline`). Replies when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub deadline: Duration,
}

/// Number of running collection actors (tests, progress).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct GetChildCount;

/// Looks for runnable collections now (instead of waiting for the next scan).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ScanNow;

struct Child {
    addr: Option<Addr<CollectionActor>>,
    generation: u32,
    /// Lease epoch from the claim: the fencing token of every write of this child.
    epoch: i64,
    /// Times of recent unexpected stops, for the intensity limit.
    crashes: VecDeque<Instant>,
}

pub struct Supervisor {
    store: Store,
    gateway: Addr<AmcGateway>,
    db: Addr<DbWriter>,
    settings: SupervisorSettings,
    policy: WeekPolicy,
    children: HashMap<CollectionId, Child>,
    /// Fired once when `exit_when_idle` and nothing is left to do.
    idle: Option<oneshot::Sender<()>>,
    /// Fired once (with the reason) when the SQLite process lock was lost: the process must end.
    lock_lost: Option<oneshot::Sender<String>>,
    scanning: bool,
    sweeping: bool,
    shutting_down: bool,
    restarts_total: u64,
    gave_up_total: u64,
    /// Collections given up on in this process: a claim that raced the give-up is ignored.
    given_up: std::collections::HashSet<CollectionId>,
    /// Children waiting for their state to be loaded, and how many loads are running: loads are
    /// capped so that thousands of new claims do not exhaust the connection pool at once.
    to_load: VecDeque<CollectionId>,
    loading: usize,
    /// The supervisor's own database reads in flight (scans, sweeps, loads): shutdown waits for
    /// them, since a read dropped while the runtime is torn down makes sqlx panic.
    reads: ReadsInFlight,
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

/// Snapshot loads running at once.
const MAX_CONCURRENT_LOADS: usize = 8;

impl Supervisor {
    pub fn new(
        store: Store,
        gateway: Addr<AmcGateway>,
        db: Addr<DbWriter>,
        settings: SupervisorSettings,
        policy: WeekPolicy,
        idle: oneshot::Sender<()>,
        lock_lost: oneshot::Sender<String>,
    ) -> Self {
        Self {
            store,
            gateway,
            db,
            settings,
            policy,
            children: HashMap::new(),
            idle: Some(idle),
            lock_lost: Some(lock_lost),
            scanning: false,
            sweeping: false,
            shutting_down: false,
            restarts_total: 0,
            gave_up_total: 0,
            given_up: std::collections::HashSet::new(),
            to_load: VecDeque::new(),
            loading: 0,
            reads: ReadsInFlight::default(),
        }
    }

    /// Claims what this process may run, starts children for new claims, and checks for idleness.
    fn scan(&mut self, ctx: &mut Context<Self>) {
        if self.scanning || self.shutting_down {
            return;
        }
        self.scanning = true;
        let room = self
            .settings
            .max_collections
            .saturating_sub(self.children.len());
        let claim = ClaimCollections {
            owner: self.settings.owner.clone(),
            lease: self.settings.lease,
            limit: room.min(self.settings.claim_batch) as i64,
        };
        let (db, store, gateway) = (self.db.clone(), self.store.clone(), self.gateway.clone());
        let owner = self.settings.owner.clone();
        let read = self.reads.guard();
        let rules = self.settings.week_rules;
        let work = async move {
            let _read = read;
            // Weeks that became due are added first, so this very claim may pick them up.
            keep_fresh::freshen(&store, &db, rules, chrono::Utc::now()).await;
            let claimed = if claim.limit > 0 {
                match db.send(claim).await {
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
            } else {
                Vec::new()
            };
            if !claimed.is_empty() {
                // Executions already on AMC in what we now own hold their slots before anything new.
                if let Ok(weeks) = store.in_flight_weeks_of(&owner).await {
                    adoption::adopt_in_flight(&gateway, weeks);
                }
            }
            let runnable = store.runnable_collections().await.map(|ids| ids.len());
            (claimed, runnable)
        };
        ctx.spawn(work.into_actor(self).map(|(claimed, runnable), act, ctx| {
            act.scanning = false;
            act.sweep_cancellations(ctx);
            act.on_claimed(claimed, runnable, ctx);
        }));
    }

    fn on_claimed(
        &mut self,
        claimed: Vec<(CollectionId, i64)>,
        runnable: Result<usize, StoreError>,
        ctx: &mut Context<Self>,
    ) {
        let full_batch = claimed.len() >= self.settings.claim_batch;
        for (id, epoch) in claimed {
            if self.given_up.contains(&id) {
                continue;
            }
            let child = self.children.entry(id).or_insert(Child {
                addr: None,
                generation: 0,
                epoch,
                crashes: VecDeque::new(),
            });
            child.epoch = epoch;
            if child.addr.is_none() {
                self.start_child(id, ctx);
            }
        }
        if full_batch {
            // More may be waiting: claim the next batch now rather than at the next interval.
            ctx.notify(ScanNow);
        }
        let nothing_runnable = matches!(runnable, Ok(0));
        if nothing_runnable && self.children.is_empty() && self.settings.exit_when_idle {
            if let Some(idle) = self.idle.take() {
                tracing::info!("No collection has work left; going idle.");
                let _ = idle.send(());
            }
        }
    }

    /// Queues the collection's state to be loaded and a fresh actor started for it.
    fn start_child(&mut self, id: CollectionId, ctx: &mut Context<Self>) {
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
            time_zone: snapshot.collection.time_zone.clone(),
            store: self.store.clone(),
            gateway: self.gateway.clone(),
            db: self.db.clone(),
            policy: self.policy.clone(),
            fence: Fence::lease(self.settings.owner.clone(), 0),
            max_in_flight: self.settings.max_in_flight,
            quota: self.settings.quota,
            typical_run: std::cell::Cell::new(None),
            daily_limit_wait: std::cell::Cell::new(None),
            may_be_pending: std::cell::Cell::new(
                snapshot.collection.status != crate::status::CollectionStatus::Running,
            ),
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
    fn give_up(&mut self, id: CollectionId, reason: String) {
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

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16_384);
        tracing::info!(actor = "supervisor", owner = %self.settings.owner, "Supervisor started.");
        self.scan(ctx);
        ctx.run_interval(self.settings.scan_interval, |act, ctx| act.scan(ctx));
        ctx.run_interval(self.settings.lease / 3, |act, ctx| act.heartbeat(ctx));
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

impl Handler<GetChildCount> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _msg: GetChildCount, _ctx: &mut Self::Context) -> usize {
        self.children.len()
    }
}

impl Handler<ScanNow> for Supervisor {
    type Result = ();

    fn handle(&mut self, _msg: ScanNow, ctx: &mut Self::Context) {
        self.scan(ctx);
    }
}
