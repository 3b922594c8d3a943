//! The full dump logged on SIGUSR1: per collection its weeks by state (database) and its actor's
//! state, every in-flight execution with its AMC id and age (database), the gateway's slots per
//! instance, token expiry and request counters, and the writes in flight.
//!
//! It is logged as a run of structured events, one per collection, execution, instance and
//! endpoint, between a "Tree dump begins." and a "Tree dump ends." event sharing one `dump_id`:
//! each line stays greppable and machine-readable in text and JSON logs alike.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{with_timeout, ActorSnapshot, ObserveError, Targets, TreeStatus, READ_TIMEOUT};
use crate::amc::{AmcStats, Endpoint};
use crate::ids::CollectionId;
use crate::status::WeekStatus;
pub use crate::store::InFlightExecution;
use crate::store::{Store, StoreError};

/// In-flight executions listed at most (a slot limit keeps the real number far below).
const MAX_IN_FLIGHT_LISTED: i64 = 1_000;

/// Everything the dump reports, taken at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct Dump {
    pub taken_at: DateTime<Utc>,
    pub tree: TreeStatus,
    pub requests: AmcStats,
    /// Active collections (pending, running, paused) and every supervised one.
    pub collections: Vec<CollectionWeeks>,
    pub in_flight: Vec<InFlightExecution>,
    /// Why the database part is missing, when it is.
    pub db_error: Option<String>,
}

/// One collection's weeks by state, from the database.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionWeeks {
    pub collection_id: CollectionId,
    pub status: String,
    pub weeks: BTreeMap<String, i64>,
}

impl Dump {
    /// Asks every actor, then reads the database; a database failure still yields the actor part.
    pub async fn take(targets: &Targets) -> Result<Dump, ObserveError> {
        let actors = ActorSnapshot::take(targets, true).await?;
        let tree = actors.tree();
        let db = with_timeout(READ_TIMEOUT, read_db(&targets.store, &tree)).await;
        let (collections, in_flight, db_error) = match db {
            Ok((collections, in_flight)) => (collections, in_flight, None),
            Err(error) => (Vec::new(), Vec::new(), Some(error.to_string())),
        };
        Ok(Dump {
            taken_at: tree.taken_at,
            requests: actors.gateway.requests.clone(),
            tree,
            collections,
            in_flight,
            db_error,
        })
    }

    /// Logs the dump as structured events (see the module header).
    pub fn log(&self) {
        let dump_id = self.taken_at.timestamp_millis();
        let supervisor = &self.tree.supervisor;
        tracing::info!(
            dump_id,
            children = supervisor.children.len(),
            restarts_total = supervisor.restarts_total,
            gave_up_total = supervisor.gave_up_total,
            shutting_down = supervisor.shutting_down,
            collections = self.collections.len(),
            in_flight = self.in_flight.len(),
            "Tree dump begins."
        );
        if let Some(error) = &self.db_error {
            tracing::warn!(dump_id, %error, "Tree dump: the database could not be read.");
        }
        self.log_collections(dump_id);
        for execution in &self.in_flight {
            let age_seconds = execution
                .created_at
                .map(|created| (self.taken_at - created).num_seconds());
            tracing::info!(
                dump_id,
                collection_id = %execution.collection_id,
                week_start = %execution.week_start,
                week_status = %execution.week_status,
                execution_id = execution.execution_id.map(|id| id.to_string()),
                amc_execution_id = execution.amc_execution_id.as_deref(),
                created_at = execution.created_at.map(|t| t.to_rfc3339()),
                age_seconds,
                attempts = execution.attempts,
                "Tree dump: in-flight execution."
            );
        }
        self.log_gateway(dump_id);
        tracing::info!(
            dump_id,
            writes_in_flight = self.tree.db_writer.writes_in_flight,
            "Tree dump: database writer."
        );
        tracing::info!(dump_id, "Tree dump ends.");
    }

    fn log_collections(&self, dump_id: i64) {
        let children: HashMap<CollectionId, _> = self
            .tree
            .supervisor
            .children
            .iter()
            .map(|child| (child.collection_id, child))
            .collect();
        for collection in &self.collections {
            let count = |status: WeekStatus| {
                collection
                    .weeks
                    .get(status.as_str())
                    .copied()
                    .unwrap_or_default()
            };
            let child = children.get(&collection.collection_id);
            let actor = match child {
                Some(child) if child.running => "running",
                Some(_) => "restarting",
                None => "none",
            };
            let progress = child.and_then(|c| c.progress.clone()).unwrap_or_default();
            tracing::info!(
                dump_id,
                collection_id = %collection.collection_id,
                collection_status = %collection.status,
                pending = count(WeekStatus::Pending),
                submitting = count(WeekStatus::Submitting),
                running = count(WeekStatus::Running),
                downloading = count(WeekStatus::Downloading),
                completed = count(WeekStatus::Completed),
                failed = count(WeekStatus::Failed),
                cancelled = count(WeekStatus::Cancelled),
                actor,
                generation = child.map(|c| c.generation),
                recent_crashes = child.map(|c| c.recent_crashes),
                weeks_active = progress.active,
                weeks_waiting_retry = progress.waiting_retry,
                "Tree dump: collection."
            );
        }
    }

    fn log_gateway(&self, dump_id: i64) {
        let gateway = &self.tree.gateway;
        for (instance, slots) in &gateway.slots {
            tracing::info!(
                dump_id,
                instance = %instance,
                in_use = slots.in_use,
                waiting = slots.waiting,
                peak = slots.peak,
                limit = gateway.limit,
                "Tree dump: gateway instance slots."
            );
        }
        tracing::info!(
            dump_id,
            token_expires_at = gateway.token_expires_at.map(|t| t.to_rfc3339()),
            token_expires_in_seconds = gateway
                .token_expires_at
                .map(|t| (t - self.taken_at).num_seconds()),
            requests_total = self.requests.requests_total,
            rate_limited = self.requests.rate_limited,
            retries = self.requests.retries,
            token_refreshes = self.requests.token_refreshes,
            credentials_failing = gateway.credentials.failing,
            credentials = gateway.credentials.describe(),
            token_failures_total = gateway.credentials.failures_total,
            "Tree dump: gateway."
        );
        for endpoint in Endpoint::ALL {
            let stats = self.requests.endpoint(endpoint);
            if stats.requests == 0 {
                continue;
            }
            tracing::info!(
                dump_id,
                endpoint = endpoint.as_str(),
                requests = stats.requests,
                status_2xx = stats.status_2xx,
                status_4xx = stats.status_4xx,
                status_5xx = stats.status_5xx,
                transport_errors = stats.transport_errors,
                "Tree dump: AMC requests."
            );
        }
    }
}

async fn read_db(
    store: &Store,
    tree: &TreeStatus,
) -> Result<(Vec<CollectionWeeks>, Vec<InFlightExecution>), StoreError> {
    let rows = store.active_week_counts().await?;
    let mut collections: BTreeMap<CollectionId, CollectionWeeks> = BTreeMap::new();
    for (collection_id, status, week_status, n) in rows {
        collections
            .entry(collection_id)
            .or_insert_with(|| CollectionWeeks {
                collection_id,
                status,
                weeks: BTreeMap::new(),
            })
            .weeks
            .insert(week_status, n);
    }
    // A supervised collection that just finished is no longer active in the database.
    for child in &tree.supervisor.children {
        if collections.contains_key(&child.collection_id) {
            continue;
        }
        if let Some(collection) = store.collection(child.collection_id).await? {
            let mut weeks = BTreeMap::new();
            for week in store.weeks_of(child.collection_id).await? {
                *weeks.entry(week.status.as_str().to_string()).or_insert(0) += 1;
            }
            collections.insert(
                child.collection_id,
                CollectionWeeks {
                    collection_id: child.collection_id,
                    status: collection.status.as_str().to_string(),
                    weeks,
                },
            );
        }
    }
    let in_flight = store.in_flight_weeks(MAX_IN_FLIGHT_LISTED).await?;
    Ok((collections.into_values().collect(), in_flight))
}
