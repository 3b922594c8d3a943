//! The daemon as one value: `App::build(&settings)` starts the actor tree (gateway, writer,
//! supervisor, housekeeping), optionally with its inspection side, and `App::stop` ends it. `run`, `demo`,
//! `bench` and the tests all start and stop it this way. Also here: opening the configured
//! database (`open_store`), which every command does, and `AppError`, the errors of both; the
//! command line maps them to its exit codes.
//!
//! Submodules: `build` (the builder and the wiring), `open` (`open_store`), `run` (the `run`
//! command: signals around a started app).

mod build;
mod open;
mod run;

pub use build::{AppBuilder, MAX_RESULT_ROWS};
pub use open::open_store;
pub use run::run;

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::actors::db_writer::{CloseWriter, DbWriter};
use crate::actors::gateway::AmcGateway;
use crate::actors::housekeeping::{Housekeeping, StopHousekeeping};
use crate::actors::supervisor::{Supervisor, SupervisorEvent};
use crate::config::{ConfigError, Settings};
use crate::http::{HttpError, Observer};
use crate::store::{Store, StoreError};

/// Errors of starting, running and stopping the daemon, and of opening the database.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A configuration key the daemon needs is missing (the AMC credentials).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The AMC client refused its configuration.
    #[error(transparent)]
    Client(#[from] crate::amc::AmcError),
    /// The database URL or schema cannot work (the URL is redacted).
    #[error("cannot open database {url}: {message}")]
    DatabaseInput { url: String, message: String },
    /// The database could not be opened: down, unreachable, refused (the URL is redacted).
    #[error("cannot open database {url}")]
    Database {
        url: String,
        #[source]
        source: StoreError,
    },
    /// Another process holds the SQLite process lock.
    #[error("{0}")]
    Locked(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The inspection endpoint could not start (its port is taken, for one).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The signal handlers could not be installed.
    #[error(transparent)]
    Signals(std::io::Error),
    /// The SQLite process lock was lost to another process: this one must end.
    #[error("{0}")]
    LockLost(String),
    /// The supervisor was gone when it was asked to shut down.
    #[error("the supervisor is gone: {0}")]
    Mailbox(#[from] MailboxError),
}

impl AppError {
    /// Whether the user's input (configuration, database URL, a second daemon) is at fault,
    /// rather than something failing while doing the work.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AppError::Config(_)
                | AppError::Client(_)
                | AppError::DatabaseInput { .. }
                | AppError::Locked(_)
        )
    }
}

/// The running actor tree. Built with `App::build`, ended with `App::stop`.
pub struct App {
    pub supervisor: Addr<Supervisor>,
    /// Adds due keep-fresh weeks and sweeps cancellations (`RunHousekeeping` runs a round now).
    pub housekeeping: Addr<Housekeeping>,
    pub gateway: Addr<AmcGateway>,
    pub db: Addr<DbWriter>,
    /// Resolves once nothing is left to do (only with `exit_when_idle`).
    pub idle: oneshot::Receiver<()>,
    /// Resolves with the reason if the SQLite process lock was lost: the process must end.
    pub lock_lost: oneshot::Receiver<String>,
    /// Posts alerts to `[alerts] webhook_url` (none when it is unset).
    pub alerter: Option<Addr<crate::alerts::Alerter>>,
    /// The endpoint and the periodic tree log (only when built `inspected`).
    observer: Option<Observer>,
    /// Closed by `stop` only when the app opened it itself (a given store is the caller's).
    store: Store,
    owns_store: bool,
    shutdown_deadline: Duration,
}

impl App {
    /// Starts building the daemon from `settings`; see `AppBuilder` for what may be given or
    /// asked for, and `AppBuilder::start`.
    pub fn build(settings: &Settings) -> AppBuilder<'_> {
        AppBuilder::new(settings)
    }

    /// The inspection side, when the app was built `inspected`.
    pub fn observer(&self) -> Option<&Observer> {
        self.observer.as_ref()
    }

    /// Stops gracefully: housekeeping starts no more rounds; collection actors stop, and they,
    /// the reads under way and the queued writes end within `scheduler.shutdown_deadline_seconds`
    /// before leases go back (the supervisor's `ShutdownRequested`); then the
    /// endpoint closes (it outlives the graceful part, so `/readyz` reports the shutdown
    /// meanwhile), the writer's pool closes, and the store too if the app opened it. Pools close
    /// on their own runtimes before the system stops (see `CloseWriter`). Every step runs even
    /// if the supervisor was already gone, which is then the error.
    pub async fn stop(self) -> Result<(), AppError> {
        let _ = self.housekeeping.send(StopHousekeeping).await;
        let shutdown = self
            .supervisor
            .send(SupervisorEvent::ShutdownRequested {
                deadline: self.shutdown_deadline,
            })
            .await;
        // The alerter's last round ends before the pools close (undelivered alerts wait in the
        // outbox for the next process).
        if let Some(alerter) = &self.alerter {
            let _ = alerter.send(crate::alerts::StopAlerter).await;
        }
        if let Some(observer) = self.observer {
            observer.stop().await;
        }
        let _ = self.db.send(CloseWriter).await;
        if self.owns_store {
            self.store.close().await;
        }
        Ok(shutdown?)
    }
}
