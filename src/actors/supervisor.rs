//! `Supervisor`: finds runnable collections, starts one `CollectionActor` each, restarts a child
//! that stopped without finishing (fresh, rebuilt from the database) with exponential backoff and
//! an intensity limit, and owns graceful shutdown.
//!
//! actix's own `Supervisor` cannot do this: it never restarts after a panic and keeps the old
//! state (actix-and-leasing.md §0), so restarts are done here by starting a new actor.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::collection::{
    CollectionActor, CollectionStopped, StopCollection, WeekContext, WeekPolicy,
};
use super::db_writer::{DbWriter, FailCollection, GetWritesInFlight, RecordExecutionStatus};
use super::gateway::{
    instance_ref, AdoptSlots, AmcGateway, CancelExecution, GatewayError, ReleaseCollection,
};
use crate::amc::AmcError;
use crate::ids::CollectionId;
use crate::store::model::CollectionSnapshot;
use crate::store::{Store, StoreError};

/// The Supervisor's own settings.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    pub scan_interval: Duration,
    pub restart_intensity: u32,
    pub restart_window: Duration,
    pub restart_backoff_base: Duration,
    pub exit_when_idle: bool,
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

/// Reports the supervision tree (status endpoint, SIGUSR1 dump, metrics).
#[derive(Message)]
#[rtype(result = "SupervisorStatus")]
pub struct GetSupervisorStatus;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ChildStatus {
    pub collection_id: CollectionId,
    pub generation: u32,
    /// False while the child waits for a restart or its state is being loaded.
    pub running: bool,
    /// Unexpected stops inside the restart window.
    pub recent_crashes: usize,
    /// The child's address, to ask it for its own progress.
    #[serde(skip)]
    pub addr: Option<Addr<CollectionActor>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SupervisorStatus {
    pub children: Vec<ChildStatus>,
    /// Restarts of collection actors since the process started.
    pub restarts_total: u64,
    /// Collections given up after too many restarts since the process started.
    pub gave_up_total: u64,
    pub shutting_down: bool,
}

/// Looks for runnable collections now (instead of waiting for the next scan).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ScanNow;

struct Child {
    addr: Option<Addr<CollectionActor>>,
    generation: u32,
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
    scanning: bool,
    sweeping: bool,
    shutting_down: bool,
    restarts_total: u64,
    gave_up_total: u64,
}

impl Supervisor {
    pub fn new(
        store: Store,
        gateway: Addr<AmcGateway>,
        db: Addr<DbWriter>,
        settings: SupervisorSettings,
        policy: WeekPolicy,
        idle: oneshot::Sender<()>,
    ) -> Self {
        Self {
            store,
            gateway,
            db,
            settings,
            policy,
            children: HashMap::new(),
            idle: Some(idle),
            scanning: false,
            sweeping: false,
            shutting_down: false,
            restarts_total: 0,
            gave_up_total: 0,
        }
    }

    fn scan(&mut self, ctx: &mut Context<Self>) {
        if self.scanning || self.shutting_down {
            return;
        }
        self.scanning = true;
        let store = self.store.clone();
        ctx.spawn(
            async move { store.runnable_collections().await }
                .into_actor(self)
                .map(|result, act, ctx| {
                    act.scanning = false;
                    act.sweep_cancellations(ctx);
                    match result {
                        Ok(ids) => act.on_scanned(ids, ctx),
                        Err(error) => tracing::warn!(%error, "Looking for runnable collections failed; will retry."),
                    }
                }),
        );
    }

    fn on_scanned(&mut self, ids: Vec<CollectionId>, ctx: &mut Context<Self>) {
        for id in &ids {
            if !self.children.contains_key(id) {
                self.children.insert(
                    *id,
                    Child {
                        addr: None,
                        generation: 0,
                        crashes: VecDeque::new(),
                    },
                );
                self.start_child(*id, ctx);
            }
        }
        if ids.is_empty() && self.children.is_empty() && self.settings.exit_when_idle {
            if let Some(idle) = self.idle.take() {
                tracing::info!("No collection has work left; going idle.");
                let _ = idle.send(());
            }
        }
    }

    /// Cancels on AMC the executions of weeks the operator cancelled (the CLI cannot: only the
    /// gateway talks to AMC). A 400 means AMC already ended it.
    fn sweep_cancellations(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let (store, gateway, db) = (self.store.clone(), self.gateway.clone(), self.db.clone());
        let sweep = async move {
            let executions = match store.executions_to_cancel().await {
                Ok(executions) => executions,
                Err(error) => {
                    tracing::warn!(%error, "Looking for executions to cancel failed.");
                    return;
                }
            };
            for execution in executions {
                let Ok(instance) = store.instance_by_id(execution.instance_id).await else {
                    continue;
                };
                let Ok(instance) = instance_ref(&instance) else {
                    continue;
                };
                let request = CancelExecution {
                    instance,
                    execution_id: execution.id,
                    amc_execution_id: execution.amc_execution_id.clone(),
                };
                match gateway.send(request).await {
                    Ok(Ok(())) | Ok(Err(GatewayError::Amc(AmcError::Http { status: 400, .. }))) => {
                        tracing::info!(execution_id = %execution.id, amc_execution_id = %execution.amc_execution_id, "AMC execution of a cancelled week cancelled.");
                        let _ = db
                            .send(RecordExecutionStatus {
                                execution_id: execution.id,
                                amc_status: "cancelled".into(),
                                status_reason: Some("cancelled by the operator".into()),
                            })
                            .await;
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, amc_execution_id = %execution.amc_execution_id, "Cancelling an AMC execution failed; will retry.")
                    }
                    Err(error) => tracing::warn!(%error, "Gateway unavailable while cancelling."),
                }
            }
        };
        ctx.spawn(
            sweep
                .into_actor(self)
                .map(|(), act, _ctx| act.sweeping = false),
        );
    }

    /// Loads the collection from the database and starts a fresh actor for it.
    fn start_child(&mut self, id: CollectionId, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        ctx.spawn(
            async move { store.snapshot(id).await }
                .into_actor(self)
                .map(move |result, act, ctx| act.on_snapshot(id, result, ctx)),
        );
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
        };
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        let actor =
            CollectionActor::new(&snapshot, cx, child.generation, ctx.address().recipient());
        child.addr = Some(actor.start());
    }

    /// Marks the collection failed with the reason and frees its slots; the process goes on.
    fn give_up(&mut self, id: CollectionId, reason: String) {
        tracing::error!(collection_id = %id, reason = %reason, "Giving up on collection.");
        self.gave_up_total += 1;
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
        tracing::info!(actor = "supervisor", "Supervisor started.");
        // Count every execution already in flight on AMC before any collection may submit.
        let (store, gateway) = (self.store.clone(), self.gateway.clone());
        let adopt = async move {
            match store.in_flight_weeks().await {
                Ok(weeks) => {
                    for (week_id, collection_id, instance_id) in weeks {
                        let message = AdoptSlots {
                            instance_id,
                            collection_id,
                            week_ids: vec![week_id],
                        };
                        let _ = gateway.send(message).await;
                    }
                }
                Err(error) => tracing::warn!(%error, "In-flight weeks could not be read at start."),
            }
        };
        ctx.wait(adopt.into_actor(self).map(|(), act, ctx| {
            act.scan(ctx);
            ctx.run_interval(act.settings.scan_interval, |act, ctx| act.scan(ctx));
        }));
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
        let backoff = self.settings.restart_backoff_base
            * 2u32.saturating_pow(crashes.saturating_sub(1).min(10));
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
        let deadline = Instant::now() + msg.deadline;
        Box::pin(
            async move {
                // Writes already sent finish; AMC executions keep running and are resumed later.
                while Instant::now() < deadline {
                    match db.send(GetWritesInFlight).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => actix_rt::time::sleep(Duration::from_millis(20)).await,
                    }
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

impl Handler<GetSupervisorStatus> for Supervisor {
    type Result = MessageResult<GetSupervisorStatus>;

    fn handle(&mut self, _msg: GetSupervisorStatus, _ctx: &mut Self::Context) -> Self::Result {
        let mut children: Vec<ChildStatus> = self
            .children
            .iter()
            .map(|(id, child)| ChildStatus {
                collection_id: *id,
                generation: child.generation,
                running: child.addr.as_ref().is_some_and(|a| a.connected()),
                recent_crashes: child.crashes.len(),
                addr: child.addr.clone(),
            })
            .collect();
        children.sort_by_key(|c| c.collection_id);
        MessageResult(SupervisorStatus {
            children,
            restarts_total: self.restarts_total,
            gave_up_total: self.gave_up_total,
            shutting_down: self.shutting_down,
        })
    }
}
