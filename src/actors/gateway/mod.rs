//! `AmcGateway`: the only actor that talks to AMC. It owns the HTTP client (one token per
//! credential set, retries, rate limiter, all inside `amc::AmcClient`) and the per-instance slot
//! accounting.
//!
//! HTTP calls run as `ResponseFuture`s, outside the actor's own state, so they run concurrently
//! and a failure inside one only loses that reply. Slot bookkeeping is synchronous and cheap.
//! Weeks waiting for their executions' statuses are answered per instance by `board`.

mod board;

pub use board::{AwaitExecution, Watch};

use std::collections::HashMap;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::actors::slots::{InstanceSlots, Waiter};
use crate::amc::{
    AmcClient, AmcError, AmcStats, CreateExecution, CredentialSetStatus, CredentialsSnapshot,
    ExecutionInfo, InstanceRef,
};
use crate::ids::{CollectionId, ExecutionId, WeekId};

/// Errors of gateway requests.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Amc(#[from] AmcError),
    #[error("the gateway is gone: {0}")]
    Mailbox(#[from] MailboxError),
    #[error("slot request dropped")]
    SlotDropped,
    #[error("the caller went away before AMC answered")]
    Abandoned,
    #[error("status request dropped")]
    StatusDropped,
}

impl GatewayError {
    pub fn is_transient(&self) -> bool {
        match self {
            GatewayError::Amc(error) => error.is_transient(),
            GatewayError::Mailbox(_)
            | GatewayError::SlotDropped
            | GatewayError::Abandoned
            | GatewayError::StatusDropped => true,
        }
    }
}

/// How the gateway addresses a stored instance (its region picks the API host).
pub fn instance_ref(instance: &crate::store::model::Instance) -> Result<InstanceRef, AmcError> {
    Ok(InstanceRef {
        instance_id: instance.instance_id.clone(),
        advertiser_id: instance.advertiser_id.clone(),
        marketplace_id: instance.marketplace_id.clone(),
        region: instance.region.parse()?,
        credentials: instance.credential_source().map(std::sync::Arc::new),
    })
}

/// Asks for one of the instance's AMC slots for a week; the reply comes when it is granted (at
/// once for a week whose execution exists on AMC: its slot was adopted with `AdoptSlots`).
#[derive(Message)]
#[rtype(result = "Result<(), GatewayError>")]
pub struct AcquireSlot {
    pub instance_id: String,
    pub collection_id: CollectionId,
    pub week_id: WeekId,
}

/// Counts executions that already exist on AMC (found in flight after a restart) before anything
/// new is granted, so a restart never pushes an instance past its limit.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AdoptSlots {
    pub instance_id: String,
    pub collection_id: CollectionId,
    pub week_ids: Vec<WeekId>,
}

/// Frees the week's slot: its execution reached a terminal state (or was never created).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseSlot {
    pub instance_id: String,
    pub week_id: WeekId,
}

/// Frees every slot and request of a collection whose actor is gone for good.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseCollection {
    pub collection_id: CollectionId,
}

/// Creates the AMC execution for a week whose intent (with `execution_id`) is already stored.
#[derive(Message)]
#[rtype(result = "Result<ExecutionInfo, GatewayError>")]
pub struct SubmitExecution {
    pub instance: InstanceRef,
    pub execution_id: ExecutionId,
    pub request: CreateExecution,
    /// Resolves when the caller is gone (its sender dropped): the create, and its retries, stop
    /// then, so a restarted actor that adopts or resubmits never races a create left behind.
    pub caller: oneshot::Receiver<()>,
}

/// Looks for an execution of this window created after `created_after` (adoption after an
/// ambiguous create or a crash).
#[derive(Message)]
#[rtype(result = "Result<Option<ExecutionInfo>, GatewayError>")]
pub struct FindExecution {
    pub instance: InstanceRef,
    pub request: CreateExecution,
    pub created_after: DateTime<Utc>,
    /// AMC ids of the week's earlier attempts: never adopted.
    pub exclude: Vec<String>,
}

/// Reads an execution's current status.
#[derive(Message)]
#[rtype(result = "Result<ExecutionInfo, GatewayError>")]
pub struct PollExecution {
    pub instance: InstanceRef,
    pub amc_execution_id: String,
}

/// Streams every result file of a succeeded execution into `sink` (see
/// `AmcClient::stream_results`); replies with the number of bytes streamed.
#[derive(Message)]
#[rtype(result = "Result<u64, GatewayError>")]
pub struct StreamResults {
    pub instance: InstanceRef,
    pub amc_execution_id: String,
    pub sink: tokio::sync::mpsc::Sender<crate::amc::FileEvent>,
}

/// Asks AMC to cancel an execution (PUT `CANCELLED`).
#[derive(Message)]
#[rtype(result = "Result<(), GatewayError>")]
pub struct CancelExecution {
    pub instance: InstanceRef,
    pub amc_execution_id: String,
}

/// Stops the gateway, which its `actix::Supervisor` restarts at once with the same address and
/// slot table (the HTTP client and its token cache are kept too). Sent when an operator or a test
/// wants the gateway restarted; collections carry on.
#[cfg(any(test, feature = "test-support"))]
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestartGateway;

/// Reports slots and request counters (progress display, status dumps).
#[derive(Message)]
#[rtype(result = "GatewayStatus")]
pub struct GetGatewayStatus;

#[derive(Debug, Clone, Serialize)]
pub struct InstanceSlotStatus {
    pub in_use: usize,
    pub waiting: usize,
    pub peak: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayStatus {
    pub slots: HashMap<String, InstanceSlotStatus>,
    pub limit: usize,
    pub token_expires_at: Option<DateTime<Utc>>,
    /// Whether Login-with-Amazon refuses or fails the `[amc]` set's refreshes (its instances'
    /// AMC calls wait meanwhile).
    pub credentials: CredentialsSnapshot,
    /// Every credential set (`default` first): each has its own token and outage, so a failing
    /// set holds only the instances linked to it.
    pub credential_sets: Vec<CredentialSetStatus>,
    pub requests: AmcStats,
}

/// The gateway actor.
pub struct AmcGateway {
    /// Shared HTTP client; cloned into each request future.
    client: AmcClient,
    /// Executions allowed in flight per instance.
    limit: usize,
    /// Keyed by AMC instance id.
    slots: HashMap<String, InstanceSlots>,
    /// Weeks waiting for their executions' statuses, per instance.
    boards: board::Boards,
    /// Least time between two listings of one instance's executions.
    listing_gap: std::time::Duration,
}

impl AmcGateway {
    pub fn new(client: AmcClient, max_in_flight_per_instance: usize) -> Self {
        Self {
            client,
            limit: max_in_flight_per_instance,
            slots: HashMap::new(),
            boards: board::Boards::default(),
            listing_gap: std::time::Duration::from_millis(125),
        }
    }

    /// Lists an instance's executions at most once per `gap` (two fifths of the poll interval:
    /// one listing serves all the instance's executions, so it may come more often than the
    /// polls of one execution; a fifth would cost more than five status reads a week in the
    /// makespan bench, a half saw runs end a fifth later).
    pub fn with_listing_gap(mut self, gap: std::time::Duration) -> Self {
        self.listing_gap = gap;
        self
    }
}

impl Actor for AmcGateway {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Thousands of collection actors may ask at once; `send` waits when the mailbox is full.
        ctx.set_mailbox_capacity(4096);
        tracing::info!(actor = "gateway", limit = self.limit, "Gateway started.");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(actor = "gateway", "Gateway stopped.");
    }
}

impl actix::Supervised for AmcGateway {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Slots are kept on purpose: the executions they count are still running on AMC. Status
        // waiters are dropped (their timers died with the old context): their weeks ask again.
        self.boards.clear();
        tracing::warn!(actor = "gateway", "Gateway restarted by its supervisor.");
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Handler<RestartGateway> for AmcGateway {
    type Result = ();

    fn handle(&mut self, _msg: RestartGateway, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<AcquireSlot> for AmcGateway {
    type Result = ResponseFuture<Result<(), GatewayError>>;

    fn handle(&mut self, msg: AcquireSlot, _ctx: &mut Self::Context) -> Self::Result {
        let slots = self.slots.entry(msg.instance_id).or_default();
        let (reply, receiver) = oneshot::channel();
        slots.request(
            msg.collection_id,
            Waiter {
                week_id: msg.week_id,
                reply,
            },
            self.limit,
        );
        Box::pin(async move { receiver.await.map_err(|_| GatewayError::SlotDropped) })
    }
}

impl Handler<AdoptSlots> for AmcGateway {
    type Result = ();

    fn handle(&mut self, msg: AdoptSlots, _ctx: &mut Self::Context) {
        let slots = self.slots.entry(msg.instance_id).or_default();
        slots.adopt(msg.collection_id, msg.week_ids);
    }
}

impl Handler<ReleaseSlot> for AmcGateway {
    type Result = ();

    fn handle(&mut self, msg: ReleaseSlot, _ctx: &mut Self::Context) {
        if let Some(slots) = self.slots.get_mut(&msg.instance_id) {
            slots.release(msg.week_id, self.limit);
        }
    }
}

impl Handler<ReleaseCollection> for AmcGateway {
    type Result = ();

    fn handle(&mut self, msg: ReleaseCollection, _ctx: &mut Self::Context) {
        for slots in self.slots.values_mut() {
            slots.release_collection(msg.collection_id, self.limit);
        }
    }
}

impl Handler<SubmitExecution> for AmcGateway {
    type Result = ResponseFuture<Result<ExecutionInfo, GatewayError>>;

    fn handle(&mut self, msg: SubmitExecution, _ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move {
            let create = client.create_execution(&msg.instance, &msg.request);
            let info = tokio::select! {
                info = create => info?,
                _ = msg.caller => return Err(GatewayError::Abandoned),
            };
            tracing::info!(
                execution_id = %msg.execution_id,
                amc_execution_id = info.workflow_execution_id.as_deref().unwrap_or("<missing>"),
                "AMC execution created."
            );
            Ok(info)
        })
    }
}

impl Handler<FindExecution> for AmcGateway {
    type Result = ResponseFuture<Result<Option<ExecutionInfo>, GatewayError>>;

    fn handle(&mut self, msg: FindExecution, _ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move {
            Ok(client
                .find_execution(&msg.instance, &msg.request, msg.created_after, &msg.exclude)
                .await?)
        })
    }
}

impl Handler<PollExecution> for AmcGateway {
    type Result = ResponseFuture<Result<ExecutionInfo, GatewayError>>;

    fn handle(&mut self, msg: PollExecution, _ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move {
            Ok(client
                .get_execution(&msg.instance, &msg.amc_execution_id)
                .await?)
        })
    }
}

impl Handler<StreamResults> for AmcGateway {
    type Result = ResponseFuture<Result<u64, GatewayError>>;

    fn handle(&mut self, msg: StreamResults, _ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move {
            Ok(client
                .stream_results(&msg.instance, &msg.amc_execution_id, &msg.sink)
                .await?)
        })
    }
}

impl Handler<CancelExecution> for AmcGateway {
    type Result = ResponseFuture<Result<(), GatewayError>>;

    fn handle(&mut self, msg: CancelExecution, _ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        Box::pin(async move {
            Ok(client
                .cancel_execution(&msg.instance, &msg.amc_execution_id)
                .await?)
        })
    }
}

impl Handler<GetGatewayStatus> for AmcGateway {
    type Result = MessageResult<GetGatewayStatus>;

    fn handle(&mut self, _msg: GetGatewayStatus, _ctx: &mut Self::Context) -> Self::Result {
        let slots = self
            .slots
            .iter()
            .map(|(instance, slots)| {
                let status = InstanceSlotStatus {
                    in_use: slots.in_use(),
                    waiting: slots.waiting(),
                    peak: slots.peak(),
                };
                (instance.clone(), status)
            })
            .collect();
        MessageResult(GatewayStatus {
            slots,
            limit: self.limit,
            token_expires_at: self.client.token_expires_at(),
            credentials: self.client.credentials(),
            credential_sets: self.client.credential_sets(),
            requests: self.client.stats(),
        })
    }
}
