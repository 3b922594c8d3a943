//! Runtime inspection of a running daemon, as plain data: the actor tree (`TreeStatus`, here),
//! liveness (`is_alive`), the `Inspector` actor that answers readiness, the tree and the metrics
//! and logs the periodic tree summary (`inspector`), the Prometheus metrics text (`metrics`) and
//! the full SIGUSR1 dump (`dump`). It knows nothing of HTTP: `crate::http` serves these answers
//! (and `crate::console` shows a part of the tree).
//!
//! Nothing here changes state: it only asks the actors their read-only status queries and reads
//! the database. Every database read runs inside the `Inspector`, on the daemon's own runtime:
//! the HTTP server's worker thread has a runtime of its own, and a pooled connection opened there
//! would break once that runtime stops.

mod dump;
mod inspector;
mod metrics;

pub use dump::{CollectionWeeks, Dump, InFlightExecution};
pub use inspector::{
    CheckReadiness, GetMetrics, GetTree, Inspector, Readiness, StopInspector, TakeDump,
};
pub use metrics::PROMETHEUS_TEXT;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actors::collection::{CollectionProgress, GetCollectionProgress};
use crate::actors::db_writer::{DbWriter, GetWritesInFlight};
use crate::actors::gateway::{AmcGateway, GatewayStatus, GetGatewayStatus};
use crate::actors::supervisor::{GetChildCount, GetSupervisorStatus, Supervisor, SupervisorStatus};
use crate::amc::CredentialsSnapshot;
use crate::ids::CollectionId;
use crate::store::{Store, StoreError};

/// How long an actor or the database may take to answer one inspection query. A healthy actor
/// answers in microseconds; waiting longer would only hide a stuck one.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the aggregate database reads of a scrape or a dump may take (large tables).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of inspection queries.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("the {actor} did not answer: {source}")]
    Unresponsive {
        actor: &'static str,
        #[source]
        source: MailboxError,
    },
    #[error("database read failed: {0}")]
    Store(#[from] StoreError),
    #[error("the database did not answer within {0:?}")]
    StoreTimeout(Duration),
}

/// Liveness: the supervisor's mailbox is being processed (it answers a trivial question within
/// `ASK_TIMEOUT`).
pub async fn is_alive(supervisor: &Addr<Supervisor>) -> Result<(), MailboxError> {
    supervisor
        .send(GetChildCount)
        .timeout(ASK_TIMEOUT)
        .await
        .map(drop)
}

/// The actor tree as `/status` serves it and `amc-collector status` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeStatus {
    pub taken_at: DateTime<Utc>,
    pub supervisor: SupervisorNode,
    pub gateway: GatewayNode,
    pub db_writer: DbWriterNode,
    /// Alerts waiting in the outbox for the webhook; absent when the database did not answer
    /// (or in replies of daemons that predate alerts).
    #[serde(default)]
    pub alerts: Option<crate::store::UndeliveredAlerts>,
    /// Collections held because AMC will not run their query (read from the database; empty
    /// when it did not answer, or in replies of older daemons).
    #[serde(default)]
    pub held: Vec<crate::store::HeldCollection>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorNode {
    pub shutting_down: bool,
    pub restarts_total: u64,
    pub gave_up_total: u64,
    pub children: Vec<ChildNode>,
}

/// One collection actor as its supervisor sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildNode {
    pub collection_id: CollectionId,
    pub generation: u32,
    /// False while the child waits for a restart or its state is being loaded.
    pub running: bool,
    pub recent_crashes: usize,
    /// The child's own count of its weeks; absent when it did not answer (stopping, restarting).
    pub progress: Option<ProgressNode>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProgressNode {
    pub active: usize,
    pub waiting_retry: usize,
    pub done: usize,
    /// Weeks wait for AMC's daily limit until then; absent in replies of older daemons.
    #[serde(default)]
    pub waiting_daily_limit_until: Option<DateTime<Utc>>,
    /// `AMC refuses creates: <message> (since T)` while AMC refuses the collection's creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_refusal: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayNode {
    /// Executions allowed in flight per instance.
    pub limit: usize,
    pub token_expires_at: Option<DateTime<Utc>>,
    /// The credentials outage state; absent in replies of daemons that predate it.
    #[serde(default)]
    pub credentials: CredentialsSnapshot,
    /// Every credential set (`default` is `[amc]`'s), each with its own outage state and the
    /// instances whose calls used it; absent in replies of daemons that predate sets.
    #[serde(default)]
    pub credential_sets: Vec<crate::amc::CredentialSetStatus>,
    /// Keyed by AMC instance id.
    pub slots: BTreeMap<String, SlotNode>,
    pub requests_total: u64,
    pub rate_limited_total: u64,
    pub retries_total: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SlotNode {
    pub in_use: usize,
    pub waiting: usize,
    pub peak: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DbWriterNode {
    pub writes_in_flight: usize,
}

/// The addresses inspection asks, and the database it reads. Cheap to clone.
#[derive(Clone)]
pub struct Targets {
    pub supervisor: Addr<Supervisor>,
    pub gateway: Addr<AmcGateway>,
    pub db: Addr<DbWriter>,
    pub store: Store,
    /// Whether a webhook is configured: undelivered alerts are shown only then.
    pub alerts_enabled: bool,
}

/// The actors' raw replies at one instant.
pub struct ActorSnapshot {
    pub supervisor: SupervisorStatus,
    pub progress: HashMap<CollectionId, CollectionProgress>,
    pub gateway: GatewayStatus,
    pub writes_in_flight: usize,
}

impl ActorSnapshot {
    /// Asks the supervisor, the gateway, the writer and (with `with_progress`) every child.
    pub async fn take(targets: &Targets, with_progress: bool) -> Result<Self, ObserveError> {
        let unresponsive = |actor| move |source| ObserveError::Unresponsive { actor, source };
        let supervisor = targets
            .supervisor
            .send(GetSupervisorStatus)
            .timeout(ASK_TIMEOUT)
            .await
            .map_err(unresponsive("supervisor"))?;
        let gateway = targets
            .gateway
            .send(GetGatewayStatus)
            .timeout(ASK_TIMEOUT)
            .await
            .map_err(unresponsive("gateway"))?;
        let writes_in_flight = targets
            .db
            .send(GetWritesInFlight)
            .timeout(ASK_TIMEOUT)
            .await
            .map_err(unresponsive("database writer"))?;
        let mut progress = HashMap::new();
        if with_progress {
            let asks = supervisor.children.iter().filter_map(|child| {
                let addr = child.addr.clone()?;
                let id = child.collection_id;
                Some(async move {
                    let reply = addr.send(GetCollectionProgress).timeout(ASK_TIMEOUT).await;
                    (id, reply.ok())
                })
            });
            for (id, reply) in futures::future::join_all(asks).await {
                if let Some(reply) = reply {
                    progress.insert(id, reply);
                }
            }
        }
        Ok(Self {
            supervisor,
            progress,
            gateway,
            writes_in_flight,
        })
    }

    pub fn tree(&self) -> TreeStatus {
        let children = self
            .supervisor
            .children
            .iter()
            .map(|child| ChildNode {
                collection_id: child.collection_id,
                generation: child.generation,
                running: child.running,
                recent_crashes: child.recent_crashes,
                progress: self
                    .progress
                    .get(&child.collection_id)
                    .map(|p| ProgressNode {
                        active: p.active,
                        waiting_retry: p.waiting_retry,
                        done: p.done,
                        waiting_daily_limit_until: p.waiting_daily_limit_until,
                        create_refusal: p.create_refusal.clone(),
                    }),
            })
            .collect();
        let slots = self
            .gateway
            .slots
            .iter()
            .map(|(instance, s)| {
                let node = SlotNode {
                    in_use: s.in_use,
                    waiting: s.waiting,
                    peak: s.peak,
                };
                (instance.clone(), node)
            })
            .collect();
        let requests = &self.gateway.requests;
        TreeStatus {
            taken_at: Utc::now(),
            supervisor: SupervisorNode {
                shutting_down: self.supervisor.shutting_down,
                restarts_total: self.supervisor.restarts_total,
                gave_up_total: self.supervisor.gave_up_total,
                children,
            },
            gateway: GatewayNode {
                limit: self.gateway.limit,
                token_expires_at: self.gateway.token_expires_at,
                credentials: self.gateway.credentials.clone(),
                credential_sets: self.gateway.credential_sets.clone(),
                slots,
                requests_total: requests.requests_total,
                rate_limited_total: requests.rate_limited,
                retries_total: requests.retries,
            },
            db_writer: DbWriterNode {
                writes_in_flight: self.writes_in_flight,
            },
            alerts: None,
            held: Vec::new(),
        }
    }
}

impl TreeStatus {
    /// Logs the tree's summary as one structured event (the periodic tree log).
    pub fn log_summary(&self) {
        let children = &self.supervisor.children;
        let running = children.iter().filter(|c| c.running).count();
        let weeks_active: usize = children
            .iter()
            .filter_map(|c| c.progress.as_ref().map(|p| p.active))
            .sum();
        let slots_in_use: usize = self.gateway.slots.values().map(|s| s.in_use).sum();
        let slot_waiters: usize = self.gateway.slots.values().map(|s| s.waiting).sum();
        tracing::info!(
            actor = "supervisor",
            children = children.len(),
            children_running = running,
            children_restarting = children.len() - running,
            weeks_active,
            restarts_total = self.supervisor.restarts_total,
            gave_up_total = self.supervisor.gave_up_total,
            instances = self.gateway.slots.len(),
            slots_in_use,
            slot_waiters,
            amc_requests_total = self.gateway.requests_total,
            amc_rate_limited_total = self.gateway.rate_limited_total,
            writes_in_flight = self.db_writer.writes_in_flight,
            shutting_down = self.supervisor.shutting_down,
            credentials_failing = self.gateway.credentials.failing,
            "Actor tree summary."
        );
    }
}

/// Bounds one database read by `limit`.
pub(crate) async fn with_timeout<T>(
    limit: Duration,
    read: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, ObserveError> {
    match tokio::time::timeout(limit, read).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ObserveError::StoreTimeout(limit)),
    }
}
