//! `Supervisor`: finds runnable collections, starts one `CollectionActor` each, restarts a child
//! that stopped without finishing (fresh, rebuilt from the database) with exponential backoff and
//! an intensity limit, and owns graceful shutdown. Periodic work that is not supervision (adding
//! keep-fresh weeks, sweeping cancellations) is `Housekeeping`'s, in its own actor.
//!
//! actix's own `Supervisor` cannot do this: it never restarts after a panic and keeps the old
//! state (verified on actix 0.13), so restarts are done here by starting a new actor.
//!
//! Everything that makes it act is one `SupervisorEvent`, handled in one `match` below: its two
//! intervals, the results of the work it spawned, its children's stops, Housekeeping and the
//! daemon. Collections are *claimed* (a lease with an epoch, `store::leases`), renewed every third
//! of the lease, and given back when finished or at shutdown; a child whose lease was lost
//! (another process took over) is stopped and not restarted. Submodules: `scan` (claiming),
//! `children` (loading, starting, restarting and giving up on children), `shutdown`, `leasing`
//! (heartbeats), `adoption` (slots of executions in flight), `status` (the tree report),
//! `reopened` (telling running children of weeks given back to them).

mod adoption;
mod children;
mod leasing;
mod reopened;
mod scan;
mod shutdown;
mod status;

pub use children::Loaded;
pub use leasing::Renewed;
pub use scan::Scanned;
pub use status::{ChildStatus, GetSupervisorStatus, SupervisorStatus};

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::collection::{CollectionActor, CollectionStopped, WeekPolicy};
use super::db_writer::DbWriter;
use super::gateway::AmcGateway;
use super::tracker::Tracker;
use crate::ids::CollectionId;
use crate::store::Store;

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
}

/// What the Supervisor works with and hands to its children. `tracker` is the daemon's one task
/// tracker: children and reads hold its guards, and shutdown waits on it.
pub struct SupervisorWiring {
    pub store: Store,
    pub gateway: Addr<AmcGateway>,
    pub db: Addr<DbWriter>,
    pub policy: WeekPolicy,
    pub tracker: Tracker,
}

/// Where the Supervisor tells the daemon it should end: once when `exit_when_idle` and nothing is
/// left to do, and once (with the reason) when the SQLite process lock was lost.
pub struct SupervisorExits {
    pub idle: oneshot::Sender<()>,
    pub lock_lost: oneshot::Sender<String>,
}

/// Everything that makes the Supervisor act, as one closed set handled by one `match`
/// (`Handler<SupervisorEvent>`). The two questions it answers (`GetSupervisorStatus`,
/// `GetChildCount`) change nothing and are messages of their own.
#[derive(Message)]
#[rtype(result = "()")]
pub enum SupervisorEvent {
    /// Look for runnable collections now: the scan interval ticked, a child finished, more may be
    /// waiting, or someone asks (tests).
    ScanDue,
    /// A third of the lease has passed: renew this process's leases.
    HeartbeatDue,
    /// Housekeeping ended a round of adding keep-fresh weeks (`weeks` added, maybe none).
    DueWeeksAdded { weeks: u64 },
    /// A scan's claims and reads ended.
    Scanned(Scanned),
    /// A lease renewal ended.
    LeasesRenewed(Renewed),
    /// A claimed collection's state was read, or could not be.
    SnapshotLoaded(Box<Loaded>),
    /// A child's restart backoff (or a load's retry delay) has passed.
    RestartDue { collection_id: CollectionId },
    /// A child stopped (reported from its `stopped()`, so also after a panic).
    ChildStopped(CollectionStopped),
    /// Stop everything gracefully within `deadline`; the reply comes once it is done.
    ShutdownRequested { deadline: Duration },
}

/// Number of running collection actors (tests, progress).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct GetChildCount;

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

/// Where scanning stands: at most one scan runs, and one asked for meanwhile runs right after.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ScanState {
    Idle,
    Running,
    RunningThenAgain,
}

/// Restarts and give-ups since the process started (status, metrics); collections given up on
/// here are not started again (a claim that raced the give-up is ignored).
#[derive(Default)]
struct Record {
    restarts_total: u64,
    gave_up_total: u64,
    given_up: std::collections::HashSet<CollectionId>,
}

pub struct Supervisor {
    wiring: SupervisorWiring,
    settings: SupervisorSettings,
    children: HashMap<CollectionId, Child>,
    /// Children waiting for their state to be loaded, and the loads running (`children`).
    loads: children::Loads,
    record: Record,
    scan: ScanState,
    /// Whether Housekeeping ended a round: until then "nothing runnable" may only mean that due
    /// keep-fresh weeks are not added yet, so the Supervisor does not go idle.
    housekept: bool,
    shutting_down: bool,
    idle: Option<oneshot::Sender<()>>,
    lock_lost: Option<oneshot::Sender<String>>,
}

impl Supervisor {
    pub fn new(
        wiring: SupervisorWiring,
        settings: SupervisorSettings,
        exits: SupervisorExits,
    ) -> Self {
        Self {
            wiring,
            settings,
            children: HashMap::new(),
            loads: children::Loads::default(),
            record: Record::default(),
            scan: ScanState::Idle,
            housekept: false,
            shutting_down: false,
            idle: Some(exits.idle),
            lock_lost: Some(exits.lock_lost),
        }
    }

    /// Runs `work` beside the actor and hands its result back as an event (through the mailbox,
    /// to the one `match`).
    fn spawn_then<F>(&self, ctx: &mut Context<Self>, work: F)
    where
        F: std::future::Future<Output = SupervisorEvent> + 'static,
    {
        ctx.spawn(
            work.into_actor(self)
                .map(|event, _act, ctx| ctx.notify(event)),
        );
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16_384);
        tracing::info!(actor = "supervisor", owner = %self.settings.owner, "Supervisor started.");
        ctx.notify(SupervisorEvent::ScanDue);
        ctx.run_interval(self.settings.scan_interval, |_act, ctx| {
            ctx.notify(SupervisorEvent::ScanDue)
        });
        ctx.run_interval(self.settings.lease / 3, |_act, ctx| {
            ctx.notify(SupervisorEvent::HeartbeatDue)
        });
    }
}

impl Handler<SupervisorEvent> for Supervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, event: SupervisorEvent, ctx: &mut Self::Context) -> Self::Result {
        match event {
            SupervisorEvent::ScanDue => self.scan(ctx),
            SupervisorEvent::HeartbeatDue => self.heartbeat(ctx),
            SupervisorEvent::DueWeeksAdded { weeks } => {
                let first = !self.housekept;
                self.housekept = true;
                if weeks > 0 || first {
                    self.scan(ctx);
                }
            }
            SupervisorEvent::Scanned(scanned) => self.on_scanned(scanned, ctx),
            SupervisorEvent::LeasesRenewed(renewed) => self.on_renewed(renewed),
            SupervisorEvent::SnapshotLoaded(loaded) => self.on_loaded(*loaded, ctx),
            SupervisorEvent::RestartDue { collection_id } => self.start_child(collection_id, ctx),
            SupervisorEvent::ChildStopped(stopped) => self.on_child_stopped(stopped, ctx),
            SupervisorEvent::ShutdownRequested { deadline } => return self.shut_down(deadline),
        }
        Box::pin(actix::fut::ready(()))
    }
}

impl Handler<GetChildCount> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _msg: GetChildCount, _ctx: &mut Self::Context) -> usize {
        self.children.len()
    }
}
