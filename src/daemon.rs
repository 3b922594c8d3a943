//! `amc-collector run`: builds the actor tree from the configuration, runs it until it is idle
//! (with `--exit-when-idle`) or a signal arrives, then shuts down gracefully. While it runs it
//! serves the inspection endpoint, logs the tree summary periodically and a full dump on SIGUSR1
//! (`observe`).

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::actors::collection::WeekPolicy;
use crate::actors::db_writer::{CloseWriter, DbWriter};
use crate::actors::gateway::AmcGateway;
use crate::actors::supervisor::{Shutdown, Supervisor, SupervisorSettings};
use crate::amc::{AmcClient, AmcClientConfig};
use crate::cli::{open_store, CliError};
use crate::config::Settings;
use crate::observe::{self, Observer, Targets};
use crate::store::Store;

/// Rows accepted from one week's result before the week is refused (hostile or runaway output).
/// Memory no longer grows with rows (results stream into the database); `amc.max_result_bytes`
/// is the real bound, and each file's row index must stay an `i32`.
pub const MAX_RESULT_ROWS: usize = 500_000_000;

/// Connections of the DbWriter's own pool: its flush tasks (3 on Postgres) plus lease writes.
const WRITER_CONNECTIONS: u32 = 5;

/// The running actor tree.
pub struct Daemon {
    pub supervisor: Addr<Supervisor>,
    pub gateway: Addr<AmcGateway>,
    pub db: Addr<DbWriter>,
    /// Resolves once nothing is left to do (only with `exit_when_idle`).
    pub idle: oneshot::Receiver<()>,
    /// Resolves with the reason if the SQLite process lock was lost: the process must end.
    pub lock_lost: oneshot::Receiver<String>,
    /// Posts alerts to `[alerts] webhook_url` (none when it is unset).
    pub alerter: Option<Addr<crate::alerts::Alerter>>,
}

/// Builds the AMC client configuration; credentials are required.
pub fn client_config(settings: &Settings) -> Result<AmcClientConfig, CliError> {
    let amc = &settings.amc;
    let missing = |key: &str| {
        CliError::Usage(format!(
            "configuration key `amc.{key}` is required to run (set AMC_COLLECTOR__AMC__{})",
            key.to_ascii_uppercase()
        ))
    };
    let client_id = amc.client_id.clone().ok_or_else(|| missing("client_id"))?;
    let client_secret = amc
        .client_secret
        .clone()
        .ok_or_else(|| missing("client_secret"))?;
    let refresh_token = amc
        .refresh_token
        .clone()
        .ok_or_else(|| missing("refresh_token"))?;
    let mut config = AmcClientConfig::new(client_id, client_secret, refresh_token);
    config.base_url_override = amc.base_url.clone();
    config.token_url = amc.token_url.clone();
    config.request_timeout = std::time::Duration::from_millis(amc.request_timeout_ms);
    config.max_retries = amc.max_retries;
    config.backoff_base = std::time::Duration::from_millis(amc.backoff_base_ms);
    config.backoff_max = std::time::Duration::from_millis(amc.backoff_max_ms);
    config.max_requests_per_second = amc.max_requests_per_second;
    config.max_result_bytes = amc.max_result_bytes;
    config.download_file_deadline =
        std::time::Duration::from_secs(settings.results.file_deadline_seconds);
    Ok(config)
}

/// Starts the gateway, the writer and the supervisor on the current actix system.
pub fn start(store: Store, client: AmcClient, settings: &Settings, exit_when_idle: bool) -> Daemon {
    start_as(
        &crate::store::process_owner(),
        false,
        store,
        client,
        settings,
        exit_when_idle,
    )
}

/// Like `start`, with the lease owner name given (several daemons in one test process), and
/// whether that owner took the SQLite process lock (`run` does, before starting): then the lock
/// is renewed with the leases, and losing it ends the process (`Daemon::lock_lost`).
pub fn start_as(
    owner: &str,
    holds_process_lock: bool,
    store: Store,
    client: AmcClient,
    settings: &Settings,
    exit_when_idle: bool,
) -> Daemon {
    // Under actix's Supervisor: if either stops, it is restarted in place and keeps its address,
    // so the collection actors holding that address carry on.
    let limit = settings.amc.max_in_flight_per_instance as usize;
    let gateway = actix::Supervisor::start(move |_| AmcGateway::new(client, limit));
    // The writer runs on its own thread with its own pool: each of its statements is a round trip,
    // and on the actors' busy thread every round trip also waited for a turn of the event loop.
    // The thread (an actix Arbiter) stops with the system.
    let writer_store = store.clone();
    let writer_thread = Arbiter::new();
    let db = actix::Supervisor::start_in_arbiter(&writer_thread.handle(), move |_| {
        // Named for `top -H` and the benchmark's CPU accounting (Linux; elsewhere a no-op).
        let _ = std::fs::write("/proc/thread-self/comm", "amc-db-writer");
        let connections = match &writer_store {
            Store::Postgres(_) => WRITER_CONNECTIONS,
            // One writer at a time, plus a connection for lease renewals.
            Store::Sqlite(_) => 2,
        };
        DbWriter::new(writer_store.sibling(connections))
    });
    let (idle_sender, idle) = oneshot::channel();
    let (lock_lost_sender, lock_lost) = oneshot::channel();
    let scheduler = &settings.scheduler;
    let store_for_alerts = store.clone();
    let supervisor = Supervisor::new(
        store,
        gateway.clone(),
        db.clone(),
        SupervisorSettings {
            scan_interval: std::time::Duration::from_millis(scheduler.scan_interval_ms),
            restart_intensity: scheduler.restart_intensity,
            restart_window: std::time::Duration::from_secs(scheduler.restart_window_seconds),
            restart_backoff_base: std::time::Duration::from_millis(
                scheduler.restart_backoff_base_ms,
            ),
            exit_when_idle,
            owner: owner.to_string(),
            holds_process_lock,
            lease: std::time::Duration::from_secs(scheduler.lease_seconds),
            max_collections: scheduler.max_collections as usize,
            claim_batch: scheduler.claim_batch as usize,
            max_in_flight: i64::from(settings.amc.max_in_flight_per_instance),
            quota: settings.amc.create_quota(),
        },
        WeekPolicy {
            poll_interval: settings.amc.poll_interval(),
            max_attempts: settings.retry.max_attempts,
            retry_backoff_base: std::time::Duration::from_millis(settings.retry.backoff_base_ms),
            max_result_rows: MAX_RESULT_ROWS,
            download_budget: std::sync::Arc::new(tokio::sync::Semaphore::new(
                settings.results.max_concurrent_downloads as usize,
            )),
        },
        idle_sender,
        lock_lost_sender,
    )
    .start();
    let alerter = start_alerter(owner, store_for_alerts, settings, &gateway, &supervisor);
    Daemon {
        supervisor,
        gateway,
        db,
        idle,
        lock_lost,
        alerter,
    }
}

/// Alerts (issue 15): the alerter, when a webhook is configured. It reads and writes only the
/// alert outbox, on the daemon's pool.
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

/// Starts the actor tree and its inspection side as `run` does: the HTTP endpoint (unless
/// `http.enabled` is false) and the periodic tree log. The endpoint's port is bound first, so a
/// taken port fails before any work starts.
pub fn start_inspected(
    store: Store,
    client: AmcClient,
    settings: &Settings,
    exit_when_idle: bool,
) -> Result<(Daemon, Observer), CliError> {
    let owner = crate::store::process_owner();
    start_inspected_as(&owner, false, store, client, settings, exit_when_idle)
}

/// `start_inspected` with the lease owner name given, and whether it holds the process lock.
pub fn start_inspected_as(
    owner: &str,
    holds_process_lock: bool,
    store: Store,
    client: AmcClient,
    settings: &Settings,
    exit_when_idle: bool,
) -> Result<(Daemon, Observer), CliError> {
    let listener = if settings.http.enabled {
        Some(observe::http::bind(settings.http.bind).map_err(runtime)?)
    } else {
        None
    };
    let daemon = start_as(
        owner,
        holds_process_lock,
        store.clone(),
        client,
        settings,
        exit_when_idle,
    );
    let targets = Targets {
        supervisor: daemon.supervisor.clone(),
        gateway: daemon.gateway.clone(),
        db: daemon.db.clone(),
        store,
        alerts_enabled: daemon.alerter.is_some(),
    };
    let tree_log_interval = match settings.scheduler.tree_log_interval_seconds {
        0 => None,
        seconds => Some(std::time::Duration::from_secs(seconds)),
    };
    let observer = Observer::start(
        targets,
        tree_log_interval,
        listener,
        settings.http.token.clone(),
    )
    .map_err(runtime)?;
    Ok((daemon, observer))
}

fn runtime(error: observe::ObserveError) -> CliError {
    CliError::Runtime(error.into())
}

/// Runs the daemon until idle (with `exit_when_idle`) or until SIGTERM/SIGINT; a second signal
/// exits at once. SIGUSR1 logs a full dump of the tree at any time.
pub async fn run(settings: Settings, exit_when_idle: bool) -> Result<(), CliError> {
    // Installed first, so a signal arriving while the database opens is handled gracefully too.
    let mut signals = Signals::new().map_err(|e| CliError::Runtime(e.into()))?;
    let client_config = client_config(&settings)?;
    let client = AmcClient::new(client_config).map_err(|e| CliError::Usage(e.to_string()))?;
    let store = open_store(&settings).await?;
    let owner = crate::store::process_owner();
    let lease = std::time::Duration::from_secs(settings.scheduler.lease_seconds);
    store
        .lock_process(&owner, lease)
        .await
        .map_err(|error| match error {
            crate::store::StoreError::Conflict(message) => CliError::Usage(message),
            other => CliError::Runtime(other.into()),
        })?;
    let (daemon, observer) = start_inspected_as(
        &owner,
        true,
        store.clone(),
        client,
        &settings,
        exit_when_idle,
    )?;
    let Daemon {
        supervisor,
        db,
        mut idle,
        mut lock_lost,
        alerter,
        ..
    } = daemon;
    let deadline = std::time::Duration::from_secs(settings.scheduler.shutdown_deadline_seconds);
    // Set when another process took the SQLite lock: the work stops and the exit is non-zero.
    let mut lost = None;
    loop {
        tokio::select! {
            _ = &mut idle => {
                tracing::info!("Every collection is finished.");
                break;
            }
            Ok(reason) = &mut lock_lost => {
                lost = Some(reason);
                break;
            }
            signal = signals.next() => match signal {
                SignalEvent::Dump => observer.log_dump().await,
                SignalEvent::Stop(name) => {
                    tracing::info!(signal = name, "Signal received; shutting down gracefully.");
                    break;
                }
            },
        }
    }
    let shutdown = supervisor.send(Shutdown { deadline });
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            signal = signals.next() => match signal {
                SignalEvent::Dump => observer.log_dump().await,
                SignalEvent::Stop(name) => {
                    tracing::warn!(signal = name, "Second signal: exiting at once.");
                    std::process::exit(130);
                }
            },
        }
    }
    // The alerter's round ends before the pools close (undelivered alerts wait in the outbox).
    if let Some(alerter) = alerter {
        let _ = alerter.send(crate::alerts::StopAlerter).await;
    }
    // The endpoint outlives the graceful part so that /readyz reports the shutdown meanwhile.
    observer.stop().await;
    // Pools close on their own runtimes before the system stops (see `CloseWriter`).
    let _ = db.send(CloseWriter).await;
    store.close().await;
    System::current().stop();
    match lost {
        Some(reason) => Err(CliError::Runtime(anyhow::anyhow!(reason))),
        None => Ok(()),
    }
}

/// What a signal asks of the daemon.
enum SignalEvent {
    /// SIGTERM or SIGINT (named).
    Stop(&'static str),
    /// SIGUSR1: log the full tree dump.
    Dump,
}

/// SIGTERM, SIGINT and SIGUSR1 as one stream.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    dump: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            dump: signal(SignalKind::user_defined1())?,
        })
    }

    async fn next(&mut self) -> SignalEvent {
        tokio::select! {
            _ = self.terminate.recv() => SignalEvent::Stop("SIGTERM"),
            _ = self.interrupt.recv() => SignalEvent::Stop("SIGINT"),
            _ = self.dump.recv() => SignalEvent::Dump,
        }
    }
}
