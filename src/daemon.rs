//! `amc-collector run`: builds the actor tree from the configuration, runs it until it is idle
//! (with `--exit-when-idle`) or a signal arrives, then shuts down gracefully.

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::actors::collection::WeekPolicy;
use crate::actors::db_writer::DbWriter;
use crate::actors::gateway::AmcGateway;
use crate::actors::supervisor::{Shutdown, Supervisor, SupervisorSettings};
use crate::amc::{AmcClient, AmcClientConfig};
use crate::cli::{open_store, CliError};
use crate::config::Settings;
use crate::store::Store;

/// Rows accepted from one week's result before the week is refused (hostile or runaway output).
pub const MAX_RESULT_ROWS: usize = 5_000_000;

/// The running actor tree.
pub struct Daemon {
    pub supervisor: Addr<Supervisor>,
    pub gateway: Addr<AmcGateway>,
    pub db: Addr<DbWriter>,
    /// Resolves once nothing is left to do (only with `exit_when_idle`).
    pub idle: oneshot::Receiver<()>,
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
    Ok(config)
}

/// Starts the gateway, the writer and the supervisor on the current actix system.
pub fn start(store: Store, client: AmcClient, settings: &Settings, exit_when_idle: bool) -> Daemon {
    start_as(
        &crate::store::process_owner(),
        store,
        client,
        settings,
        exit_when_idle,
    )
}

/// Like `start`, with the lease owner name given (several daemons in one test process).
pub fn start_as(
    owner: &str,
    store: Store,
    client: AmcClient,
    settings: &Settings,
    exit_when_idle: bool,
) -> Daemon {
    let gateway = AmcGateway::new(client, settings.amc.max_in_flight_per_instance as usize).start();
    let db = DbWriter::new(store.clone()).start();
    let (idle_sender, idle) = oneshot::channel();
    let scheduler = &settings.scheduler;
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
            lease: std::time::Duration::from_secs(scheduler.lease_seconds),
            max_collections: scheduler.max_collections as usize,
            claim_batch: scheduler.claim_batch as usize,
            max_in_flight: i64::from(settings.amc.max_in_flight_per_instance),
        },
        WeekPolicy {
            poll_interval: settings.amc.poll_interval(),
            max_attempts: settings.retry.max_attempts,
            retry_backoff_base: std::time::Duration::from_millis(settings.retry.backoff_base_ms),
            max_result_rows: MAX_RESULT_ROWS,
        },
        idle_sender,
    )
    .start();
    Daemon {
        supervisor,
        gateway,
        db,
        idle,
    }
}

/// Runs the daemon until idle (with `exit_when_idle`) or until SIGTERM/SIGINT; a second signal
/// exits at once.
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
    let daemon = start_as(&owner, store.clone(), client, &settings, exit_when_idle);
    let deadline = std::time::Duration::from_secs(settings.scheduler.shutdown_deadline_seconds);
    tokio::select! {
        _ = daemon.idle => tracing::info!("Every collection is finished."),
        name = signals.next() => tracing::info!(signal = name, "Signal received; shutting down gracefully."),
    }
    tokio::select! {
        _ = daemon.supervisor.send(Shutdown { deadline }) => {}
        name = signals.next() => {
            tracing::warn!(signal = name, "Second signal: exiting at once.");
            std::process::exit(130);
        }
    }
    store.close().await;
    System::current().stop();
    Ok(())
}

/// SIGTERM and SIGINT as one stream.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}
