//! `amc-collector bench`: starts the AMC simulator and a database itself, runs the real actor
//! tree through fixed scenarios and prints one line of figures per scenario and backend.
//! It is a measuring command, not a test: nothing here asserts a timing.
//!
//! Scenarios: `throughput` (zero-length executions, weeks/s, AMC requests and database
//! transactions per week, CPU per 1,000 weeks, peak RSS), `makespan` (5 s executions against
//! the 10-slot limit, makespan over the ideal), `scale` (10,000 collections active at once,
//! peak RSS and time until every actor runs), `multiprocess` (three processes on Postgres, one
//! killed: takeover time, slot-limit violations, duplicate creates). Submodules: `fixture` (fresh
//! database, seeding, settings, transaction counters, and `World`: the simulator and the seeded
//! database every scenario starts from), `pg_cluster` (throwaway PostgreSQL 15), `procstat` (CPU and
//! memory from /proc), one file per scenario.

mod catalog;
mod fixture;
mod ingest;
mod makespan;
mod multiprocess;
mod pg_cluster;
mod procstat;
mod scale;
mod throughput;
mod views;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::ValueEnum;

use crate::actors::db_writer::{GetGroupCommitStats, GroupCommitStats};
use crate::actors::gateway::GetGatewayStatus;
use crate::amc::AmcStats;
use crate::app::{App, AppError};
use crate::config::Settings;
use crate::simulator::{self, SimulatorConfig, SimulatorHandle};
use crate::store::Store;
use pg_cluster::PgServer;

/// Errors of a benchmark run. Nothing is retried (a benchmark that had to retry its own setup
/// would measure the wrong thing), so there is no transient/permanent split.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot start a throwaway PostgreSQL 15 cluster: {0}")]
    Postgres(String),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The daemon did not start or stop.
    #[error(transparent)]
    App(#[from] AppError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Simulator(#[from] simulator::SimulatorError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("an actor is gone: {0}")]
    Mailbox(#[from] actix::MailboxError),
    #[error("timed out after {0:?}: {1}")]
    Timeout(Duration, &'static str),
    /// SIGTERM or SIGINT arrived; what the bench started is stopped before it exits.
    #[error("stopped by {0} before its scenarios finished")]
    Stopped(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Throughput,
    Makespan,
    Scale,
    Multiprocess,
    /// One week of `--ingest-mb` MB of CSV, against the database's own load speed (not in `all`).
    Ingest,
    /// Weekly sums over a workflow's typed relation against a plain typed table (not in `all`).
    Views,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Postgres,
    Sqlite,
    Both,
}

/// One database backend of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    pub scenario: Scenario,
    /// Which database backend(s) to run each scenario on.
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    pub backend: BackendChoice,
    /// PostgreSQL server to use (a database is created and dropped per run); without it a
    /// throwaway PostgreSQL 15 cluster is started from /usr/lib/postgresql/15/bin.
    #[arg(long, value_name = "URL")]
    pub postgres_url: Option<String>,
    /// Smaller sizes for a smoke run (the targets are not assessed).
    #[arg(long)]
    pub quick: bool,
    /// Size of the `ingest` scenario's result, in MB of CSV.
    #[arg(long, default_value_t = 1024)]
    pub ingest_mb: u64,
}

/// The printed line of one scenario run, and whether every week it needed got done.
pub struct Outcome {
    pub line: String,
    pub complete: bool,
}

/// Shared inputs of every scenario run.
pub struct RunCtx<'a> {
    pub backend: Backend,
    pub quick: bool,
    pub server: Option<&'a PgServer>,
    pub ingest_mb: u64,
}

impl RunCtx<'_> {
    fn server_pid(&self) -> Option<u32> {
        match self.backend {
            Backend::Postgres => self.server.and_then(PgServer::server_pid),
            Backend::Sqlite => None,
        }
    }
}

pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    let backends: &[Backend] = match args.backend {
        BackendChoice::Postgres => &[Backend::Postgres],
        BackendChoice::Sqlite => &[Backend::Sqlite],
        BackendChoice::Both => &[Backend::Postgres, Backend::Sqlite],
    };
    let scenarios: &[Scenario] = match args.scenario {
        // Scale first: its figure is the process's peak memory, and memory the other scenarios
        // used is not all handed back to the system afterwards.
        Scenario::All => &[
            Scenario::Scale,
            Scenario::Throughput,
            Scenario::Makespan,
            Scenario::Multiprocess,
        ],
        Scenario::Throughput => &[Scenario::Throughput],
        Scenario::Makespan => &[Scenario::Makespan],
        Scenario::Scale => &[Scenario::Scale],
        Scenario::Multiprocess => &[Scenario::Multiprocess],
        Scenario::Ingest => &[Scenario::Ingest],
        Scenario::Views => &[Scenario::Views],
    };
    // Installed before the cluster starts: a signal's default action would end the process
    // without stopping a cluster that runs in a session of its own.
    let mut stop = StopSignals::new()?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench: {} build, {cpus} CPUs{}; wall-clock figures on a possibly shared machine are noisy",
        if cfg!(debug_assertions) {
            "debug (not representative: use --release)"
        } else {
            "release"
        },
        if args.quick {
            ", --quick sizes (targets not assessed)"
        } else {
            ""
        }
    );
    let server =
        if backends.contains(&Backend::Postgres) || scenarios.contains(&Scenario::Multiprocess) {
            let server = match &args.postgres_url {
                Some(url) => PgServer::external(url).await?,
                None => PgServer::throwaway().await?,
            };
            println!("postgres: {}", server.describe());
            Some(server)
        } else {
            None
        };
    let outcome = tokio::select! {
        outcome = run_scenarios(scenarios, backends, args.quick, args.ingest_mb, server.as_ref()) => outcome,
        // The scenario's future is dropped here: its daemons are killed, its simulator stopped.
        signal = stop.next() => Err(BenchError::Stopped(signal)),
    };
    if let Some(server) = server {
        server.close().await;
    }
    let incomplete = outcome?;
    if incomplete > 0 {
        return Err(BenchError::Setup(format!(
            "{incomplete} run(s) did not complete every week; their figures are not valid"
        )));
    }
    Ok(())
}

/// SIGTERM (as `timeout` sends) and SIGINT (Ctrl-C), caught so the bench stops what it started.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// The first of them to arrive, named.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Runs each scenario on each backend, printing lines as they come; returns how many runs
/// left work undone.
async fn run_scenarios(
    scenarios: &[Scenario],
    backends: &[Backend],
    quick: bool,
    ingest_mb: u64,
    server: Option<&PgServer>,
) -> Result<usize, BenchError> {
    use std::io::Write;
    let mut incomplete = 0;
    for scenario in scenarios {
        // Several processes share a database only on Postgres.
        let backends: &[Backend] = if *scenario == Scenario::Multiprocess {
            &[Backend::Postgres]
        } else {
            backends
        };
        for backend in backends {
            let cx = RunCtx {
                backend: *backend,
                quick,
                server,
                ingest_mb,
            };
            let outcome = match scenario {
                Scenario::Throughput => throughput::run(&cx).await?,
                Scenario::Makespan => makespan::run(&cx).await?,
                Scenario::Multiprocess => multiprocess::run(&cx).await?,
                Scenario::Ingest => ingest::run(&cx).await?,
                Scenario::Views => views::run(&cx).await?,
                Scenario::Scale | Scenario::All => scale::run(&cx).await?,
            };
            println!("{}", outcome.line);
            let _ = std::io::stdout().flush();
            if !outcome.complete {
                incomplete += 1;
            }
        }
    }
    Ok(incomplete)
}

/// Starts the simulator on a free loopback port.
async fn start_simulator(config: SimulatorConfig) -> Result<SimulatorHandle, BenchError> {
    Ok(simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).await?)
}

/// Starts the real actor tree on `store`.
async fn start_daemon(
    store: Store,
    settings: &Settings,
    exit_when_idle: bool,
) -> Result<App, BenchError> {
    Ok(App::build(settings)
        .store(store)
        .exit_when_idle(exit_when_idle)
        .start()
        .await?)
}

/// What a run to idle measured.
struct IdleRun {
    elapsed: Duration,
    amc: AmcStats,
    writes: GroupCommitStats,
}

/// Runs the daemon until every collection is finished; returns the time that took, the AMC
/// client's request counters and the DbWriter's group commits.
async fn run_to_idle(
    store: Store,
    settings: &Settings,
    limit: Duration,
) -> Result<IdleRun, BenchError> {
    let started = Instant::now();
    let mut daemon = start_daemon(store, settings, true).await?;
    tokio::time::timeout(limit, &mut daemon.idle)
        .await
        .map_err(|_| BenchError::Timeout(limit, "the daemon did not finish its collections"))?
        .map_err(|_| BenchError::Setup("the daemon stopped before it was idle".into()))?;
    let elapsed = started.elapsed();
    let status = daemon.gateway.send(GetGatewayStatus).await?;
    let writes = daemon.db.send(GetGroupCommitStats).await?;
    daemon.stop().await?;
    Ok(IdleRun {
        elapsed,
        amc: status.requests,
        writes,
    })
}

/// " INCOMPLETE: 3/10 weeks completed" when not every week was, else nothing.
fn incomplete_note(completed: i64, weeks: u64) -> String {
    if completed as u64 == weeks {
        String::new()
    } else {
        format!(" INCOMPLETE: {completed}/{weeks} weeks completed")
    }
}

/// "met" / "missed" against a target, or "not assessed" for quick runs.
fn verdict(quick: bool, met: bool) -> &'static str {
    match (quick, met) {
        (true, _) => "not assessed in --quick",
        (false, true) => "met",
        (false, false) => "MISSED",
    }
}
