//! `AppBuilder`: what differs between the daemon's users (a given store or AMC client, the lease
//! owner's name, the SQLite process lock, the inspection side, exiting when idle), and the wiring
//! of the actor tree from `Settings` (the DbWriter on its own `Arbiter` thread with its own pool,
//! Housekeeping beside the Supervisor, one task tracker shared by all of them).

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{open_store, App, AppError};
use crate::actors::collection::WeekPolicy;
use crate::actors::db_writer::DbWriter;
use crate::actors::gateway::AmcGateway;
use crate::actors::housekeeping::{Housekeeping, HousekeepingSettings, HousekeepingWiring};
use crate::actors::supervisor::{
    Supervisor, SupervisorExits, SupervisorSettings, SupervisorWiring,
};
use crate::actors::tracker::Tracker;
use crate::amc::AmcClient;
use crate::config::Settings;
use crate::http::{self, Observer};
use crate::observe::Targets;
use crate::store::{Store, StoreError};

/// Rows accepted from one week's result before the week is refused (hostile or runaway output).
/// Memory no longer grows with rows (results stream into the database); `amc.max_result_bytes`
/// is the real bound, and each file's row index must stay an `i32`.
pub const MAX_RESULT_ROWS: usize = 500_000_000;

/// Connections of the DbWriter's own pool: its flush tasks (3 on Postgres) plus lease writes.
const WRITER_CONNECTIONS: u32 = 5;

/// How to start the daemon; from `App::build`. Without further calls it opens the configured
/// database, builds the AMC client from the configuration, runs as this process's lease owner
/// without the process lock and without the inspection side, and runs until stopped.
pub struct AppBuilder<'a> {
    settings: &'a Settings,
    store: Option<Store>,
    client: Option<AmcClient>,
    owner: Option<String>,
    lock_process: bool,
    inspected: bool,
    exit_when_idle: bool,
}

impl<'a> AppBuilder<'a> {
    pub(super) fn new(settings: &'a Settings) -> Self {
        Self {
            settings,
            store: None,
            client: None,
            owner: None,
            lock_process: false,
            inspected: false,
            exit_when_idle: false,
        }
    }

    /// Runs on this store rather than opening the configured one; `stop` leaves it open.
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Talks to AMC through this client (to read its state afterwards) rather than a new one.
    pub fn client(mut self, client: AmcClient) -> Self {
        self.client = Some(client);
        self
    }

    /// The lease owner's name (several daemons in one test process); default
    /// `store::process_owner()`.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Takes the SQLite process lock before anything starts (`run` does; a no-op on Postgres);
    /// it is then renewed with the leases, and losing it resolves `App::lock_lost`. Another
    /// holder is `AppError::Locked`.
    pub fn lock_process(mut self) -> Self {
        self.lock_process = true;
        self
    }

    /// Also serves the inspection endpoint (unless `http.enabled` is false) and logs the tree
    /// periodically, as `run` does. The endpoint's port is bound before the actors start, so a
    /// taken port fails before any work starts.
    pub fn inspected(mut self) -> Self {
        self.inspected = true;
        self
    }

    /// Resolve `App::idle` (and stop scanning) once no collection has work left.
    pub fn exit_when_idle(mut self, exit_when_idle: bool) -> Self {
        self.exit_when_idle = exit_when_idle;
        self
    }

    /// Starts the daemon on the current actix system.
    pub async fn start(self) -> Result<App, AppError> {
        let settings = self.settings;
        let client = match self.client {
            Some(client) => client,
            None => AmcClient::new(settings.client_config()?)?,
        };
        let (store, owns_store) = match self.store {
            Some(store) => (store, false),
            None => (open_store(settings).await?, true),
        };
        register_credential_sets(&store, &client).await?;
        let owner = self.owner.unwrap_or_else(crate::store::process_owner);
        if self.lock_process {
            store
                .lock_process(&owner, settings.scheduler.lease())
                .await
                .map_err(|error| match error {
                    StoreError::Conflict(message) => AppError::Locked(message),
                    other => AppError::Store(other),
                })?;
        }
        let listener = if self.inspected && settings.http.enabled {
            Some(http::bind(settings.http.bind)?)
        } else {
            None
        };
        let mut app = start_actors(
            settings,
            &owner,
            self.lock_process,
            store,
            client,
            self.exit_when_idle,
        );
        app.owns_store = owns_store;
        if self.inspected {
            let targets = Targets {
                supervisor: app.supervisor.clone(),
                gateway: app.gateway.clone(),
                db: app.db.clone(),
                store: app.store.clone(),
                alerts_enabled: app.alerter.is_some(),
            };
            app.observer = Some(Observer::start(
                targets,
                settings.scheduler.tree_log_interval(),
                listener,
                http::Access {
                    planning: crate::new_collection::Planning::of(settings),
                    ..http::Access::from_settings(&settings.http)
                },
            )?);
        }
        Ok(app)
    }
}

/// Starts the gateway, the writer, the supervisor and housekeeping on the current actix system,
/// wired by their addresses and sharing the daemon's one task tracker.
fn start_actors(
    settings: &Settings,
    owner: &str,
    holds_process_lock: bool,
    store: Store,
    client: AmcClient,
    exit_when_idle: bool,
) -> App {
    let tracker = Tracker::default();
    // Under actix's Supervisor: if either stops, it is restarted in place and keeps its address,
    // so the collection actors holding that address carry on.
    let limit = settings.amc.max_in_flight_per_instance as usize;
    // Two and a half listings per poll interval (see `AmcGateway::with_listing_gap`).
    let listing_gap = settings.amc.poll_interval() * 2 / 5;
    let gateway = actix::Supervisor::start(move |_| {
        AmcGateway::new(client, limit).with_listing_gap(listing_gap)
    });
    // The writer runs on its own thread with its own pool: each of its statements is a round trip,
    // and on the actors' busy thread every round trip also waited for a turn of the event loop.
    // The thread (an actix Arbiter) stops with the system.
    let writer_store = store.clone();
    let writer_tracker = tracker.clone();
    let writer_thread = Arbiter::new();
    let db = actix::Supervisor::start_in_arbiter(&writer_thread.handle(), move |_| {
        // Named for `top -H` and the benchmark's CPU accounting (Linux; elsewhere a no-op).
        let _ = std::fs::write("/proc/thread-self/comm", "amc-db-writer");
        let connections = match &writer_store {
            Store::Postgres(_) => WRITER_CONNECTIONS,
            // One writer at a time, plus a connection for lease renewals.
            Store::Sqlite(_) => 2,
        };
        DbWriter::new(writer_store.sibling(connections), writer_tracker)
    });
    let (idle_sender, idle) = oneshot::channel();
    let (lock_lost_sender, lock_lost) = oneshot::channel();
    let wiring = SupervisorWiring {
        store: store.clone(),
        gateway: gateway.clone(),
        db: db.clone(),
        policy: week_policy(settings),
        tracker: tracker.clone(),
    };
    let exits = SupervisorExits {
        idle: idle_sender,
        lock_lost: lock_lost_sender,
    };
    let supervisor_settings =
        supervisor_settings(settings, owner, holds_process_lock, exit_when_idle);
    let supervisor = Supervisor::new(wiring, supervisor_settings, exits).start();
    let housekeeping = Housekeeping::new(
        HousekeepingWiring {
            store: store.clone(),
            gateway: gateway.clone(),
            db: db.clone(),
            supervisor: supervisor.clone(),
            tracker,
        },
        HousekeepingSettings {
            interval: settings.scheduler.scan_interval(),
            week_rules: crate::weeks::WeekRules {
                data_lag_days: settings.collection.data_lag_days,
                retention_days: settings.collection.retention_days,
            },
        },
    )
    .start();
    let alerter = start_alerter(owner, store.clone(), settings, &gateway, &supervisor);
    App {
        supervisor,
        housekeeping,
        gateway,
        db,
        idle,
        lock_lost,
        alerter,
        observer: None,
        store,
        owns_store: false,
        shutdown_deadline: settings.scheduler.shutdown_deadline(),
    }
}

fn supervisor_settings(
    settings: &Settings,
    owner: &str,
    holds_process_lock: bool,
    exit_when_idle: bool,
) -> SupervisorSettings {
    let scheduler = &settings.scheduler;
    SupervisorSettings {
        scan_interval: scheduler.scan_interval(),
        restart_intensity: scheduler.restart_intensity,
        restart_window: scheduler.restart_window(),
        restart_backoff_base: scheduler.restart_backoff_base(),
        exit_when_idle,
        owner: owner.to_string(),
        holds_process_lock,
        lease: scheduler.lease(),
        max_collections: scheduler.max_collections as usize,
        claim_batch: scheduler.claim_batch as usize,
        max_in_flight: i64::from(settings.amc.max_in_flight_per_instance),
        quota: settings.amc.create_quota(),
    }
}

fn week_policy(settings: &Settings) -> WeekPolicy {
    WeekPolicy {
        poll_interval: settings.amc.poll_interval(),
        max_attempts: settings.retry.max_attempts,
        retry_backoff_base: settings.retry.backoff_base(),
        max_result_rows: MAX_RESULT_ROWS,
        download_budget: std::sync::Arc::new(tokio::sync::Semaphore::new(
            settings.results.max_concurrent_downloads as usize,
        )),
        unknown_status_max: settings.amc.unknown_status_max(),
        publish_grace: settings.results.publish_grace(),
        run_times: Default::default(),
    }
}

/// The alerter, when a webhook is configured. It reads and writes only the alert outbox, on the
/// daemon's pool.
fn start_alerter(
    owner: &str,
    store: Store,
    settings: &Settings,
    gateway: &Addr<AmcGateway>,
    supervisor: &Addr<Supervisor>,
) -> Option<Addr<crate::alerts::Alerter>> {
    let webhook = match crate::alerts::Webhook::from_settings(&settings.alerts) {
        Ok(webhook) => webhook?,
        Err(error) => {
            tracing::error!(%error, "Alerts are off: the webhook cannot be used.");
            return None;
        }
    };
    let pacing = crate::alerts::AlerterSettings::from_config(&settings.alerts, owner);
    let alerter =
        crate::alerts::Alerter::new(store, webhook, pacing, gateway.clone(), supervisor.clone());
    Some(alerter.start())
}

/// Makes every stored credential set known to the client before any actor starts, so status
/// shows each set from the start and a set whose secret cannot be read (variable unset, file
/// missing) is reported at once: its instances wait, with that reason, and the others run.
async fn register_credential_sets(store: &Store, client: &AmcClient) -> Result<(), AppError> {
    for set in store.list_credential_sets().await? {
        let Some(source) = set.locations.source(&set.name) else {
            continue;
        };
        if let Some(reason) = client.register_credential_set(&source) {
            tracing::error!(
                set = %set.name,
                cause = %reason,
                "Credential set unavailable: its instances' AMC calls wait until its secrets can be read."
            );
        }
    }
    Ok(())
}
