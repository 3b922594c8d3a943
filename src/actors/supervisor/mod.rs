//! `Supervisor`: finds runnable collections, starts one `CollectionActor` each, restarts a child
//! that stopped without finishing (fresh, rebuilt from the database) with exponential backoff and
//! an intensity limit, and owns graceful shutdown.
//!
//! actix's own `Supervisor` cannot do this: it never restarts after a panic and keeps the old
//! state (verified on actix 0.13), so restarts are done here by starting a new actor.
//!
//! Collections are *claimed* (a lease with an epoch, `store::leases`), renewed every third of the
//! lease, and given back when finished or at shutdown; a child whose lease was lost (another
//! process took over) is stopped and not restarted. Submodules: `children` (loading, starting,
//! restarting and giving up on children), `shutdown`, `leasing` (heartbeats), `adoption` (slots
//! of executions in flight), `keep_fresh` (due weeks), `status` (the tree report), `sweep`
//! (cancelling AMC executions of cancelled weeks), `reopened` (telling running children of weeks
//! given back to them).

mod adoption;
mod children;
mod keep_fresh;
mod leasing;
mod reopened;
mod shutdown;
mod status;
mod sweep;

use shutdown::ReadsInFlight;
pub use shutdown::Shutdown;
pub use status::{ChildStatus, GetSupervisorStatus, SupervisorStatus};

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::collection::{CollectionActor, WeekPolicy};
use super::db_writer::{ClaimAbandonedInFlight, ClaimCollections, DbWriter};
use super::gateway::AmcGateway;
use crate::ids::CollectionId;
use crate::store::{Store, StoreError};

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
    /// The last "work given back" stamp this child was told of (`reopened`).
    work_seen: Option<i64>,
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
        let (owner, lease) = (self.settings.owner.clone(), self.settings.lease);
        let batch = self.settings.claim_batch;
        let (db, store, gateway) = (self.db.clone(), self.store.clone(), self.gateway.clone());
        let read = self.reads.guard();
        let rules = self.settings.week_rules;
        let work = async move {
            let _read = read;
            // Weeks that became due are added first, so this very claim may pick them up.
            keep_fresh::add_due_weeks(&store, &db, rules, chrono::Utc::now()).await;
            let claimed = claim_work(&db, owner.clone(), lease, room, batch).await;
            if !claimed.is_empty() {
                // Executions already on AMC in what we now own hold their slots before anything new.
                if let Ok(weeks) = store.in_flight_weeks_of(&owner).await {
                    adoption::adopt_in_flight(&gateway, weeks);
                }
            }
            let runnable = store.runnable_collections().await.map(|ids| ids.len());
            let given_work = reopened::given_work(&store, &owner).await;
            (claimed, runnable, given_work)
        };
        ctx.spawn(
            work.into_actor(self)
                .map(|(claimed, runnable, given_work), act, ctx| {
                    act.scanning = false;
                    act.sweep_cancellations(ctx);
                    act.on_claimed(claimed, runnable, ctx);
                    act.tell_given_work(given_work);
                }),
        );
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
                work_seen: None,
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
