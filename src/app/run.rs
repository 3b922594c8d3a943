//! `amc-collector run`: starts the app with the process lock and the inspection side, runs it
//! until it is idle (with `--exit-when-idle`), the process lock is lost or a signal arrives, then
//! stops it gracefully. SIGUSR1 logs a full dump of the tree at any time (`observe`).

use actix::prelude::*;

use super::{App, AppError};
use crate::config::Settings;
use crate::observe::{Inspector, TakeDump};

/// Runs the daemon until idle (with `exit_when_idle`) or until SIGTERM/SIGINT; a second signal
/// exits at once.
pub async fn run(settings: Settings, exit_when_idle: bool) -> Result<(), AppError> {
    // Installed first, so a signal arriving while the database opens is handled gracefully too.
    let mut signals = Signals::new().map_err(AppError::Signals)?;
    let mut app = App::build(&settings)
        .lock_process()
        .inspected()
        .exit_when_idle(exit_when_idle)
        .start()
        .await?;
    let inspector = app.observer().map(|observer| observer.inspector.clone());
    // Set when another process took the SQLite lock: the work stops and the exit is non-zero.
    let mut lost = None;
    loop {
        tokio::select! {
            _ = &mut app.idle => {
                tracing::info!("Every collection is finished.");
                break;
            }
            Ok(reason) = &mut app.lock_lost => {
                lost = Some(reason);
                break;
            }
            signal = signals.next() => match signal {
                SignalEvent::Dump => log_dump(inspector.as_ref()).await,
                SignalEvent::Stop(name) => {
                    tracing::info!(signal = name, "Signal received; shutting down gracefully.");
                    break;
                }
            },
        }
    }
    let stopping = app.stop();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            // Whatever the supervisor answered, the process ends now.
            _ = &mut stopping => break,
            signal = signals.next() => match signal {
                SignalEvent::Dump => log_dump(inspector.as_ref()).await,
                SignalEvent::Stop(name) => {
                    tracing::warn!(signal = name, "Second signal: exiting at once.");
                    std::process::exit(130);
                }
            },
        }
    }
    System::current().stop();
    match lost {
        Some(reason) => Err(AppError::LockLost(reason)),
        None => Ok(()),
    }
}

/// Takes the full dump and logs it (the SIGUSR1 action). Through the inspector's address, so it
/// also works while `App::stop` owns the app.
async fn log_dump(inspector: Option<&Addr<Inspector>>) {
    let Some(inspector) = inspector else {
        return;
    };
    match inspector.send(TakeDump).await {
        Ok(Ok(dump)) => dump.log(),
        Ok(Err(error)) => tracing::warn!(%error, "Tree dump unavailable."),
        Err(error) => tracing::warn!(%error, "Tree dump unavailable: the inspector is gone."),
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
