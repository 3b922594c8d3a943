//! The command line (docs/contract.md, "Commands"): argument definitions and dispatch.
//!
//! Bad input is a `CliError::Usage` (exit 2, one line on stderr, nothing written); anything else
//! that goes wrong is `CliError::Runtime` (exit 1). Argument errors found by clap also exit 2.

mod catalog;
mod collection;
mod control;
mod credentials;
mod export;
mod fleet;
mod output_file;
mod params;
mod pipe;
mod plan;
mod rerun;
mod status;
mod views;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::app::{open_store, AppError};
use crate::config::Settings;
use crate::store::Store;
use crate::telemetry::{self, LogFormat};

/// Errors of a command, split by who must act on them.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user's input is wrong: exit code 2.
    #[error("{0}")]
    Usage(String),
    /// Something failed while doing the work: exit code 1.
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

impl From<crate::config::ConfigError> for CliError {
    fn from(error: crate::config::ConfigError) -> Self {
        CliError::Usage(error.to_string())
    }
}

impl From<AppError> for CliError {
    fn from(error: AppError) -> Self {
        if error.is_usage() {
            CliError::Usage(error.to_string())
        } else {
            CliError::Runtime(error.into())
        }
    }
}

impl From<crate::demo::DemoError> for CliError {
    fn from(error: crate::demo::DemoError) -> Self {
        use crate::demo::DemoError;
        match error {
            DemoError::Usage(message) => CliError::Usage(message),
            DemoError::App(error) => error.into(),
            DemoError::Seed(error) => CliError::Runtime(error),
            other => CliError::Runtime(other.into()),
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "amc-collector",
    version,
    about = "Backfills Amazon Marketing Cloud workflow results week by week"
)]
pub struct Cli {
    /// Configuration file (default: config/default.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations.
    Migrate,
    /// Manage AMC instances.
    #[command(subcommand)]
    Instance(catalog::InstanceCommand),
    /// Manage workflows.
    #[command(subcommand)]
    Workflow(catalog::WorkflowCommand),
    /// Manage credential sets (one Login-with-Amazon login per advertiser).
    #[command(subcommand)]
    Credentials(credentials::CredentialsCommand),
    /// Create and inspect collections.
    #[command(subcommand)]
    Collection(collection::CollectionCommand),
    /// Act on a fleet: the collections of one workflow created together on several instances.
    #[command(subcommand)]
    Fleet(fleet::FleetCommand),
    /// Each workflow's typed relation (`amc_results.<workflow>`).
    #[command(subcommand)]
    Views(views::ViewsCommand),
    /// Run the supervised daemon.
    Run(RunArgs),
    /// Run a 26-week collection against the built-in AMC simulator into a fresh SQLite file.
    Demo(crate::demo::DemoArgs),
    /// Serve the AMC simulator (API, token endpoint, download host) until SIGINT/SIGTERM.
    SimulateAmc(Box<SimulateArgs>),
    /// Print the actor tree of a running daemon (from its inspection endpoint).
    Status(status::StatusArgs),
    /// Measure throughput, makespan and scale against the built-in simulator (use a release build).
    Bench(crate::bench::BenchArgs),
}

/// `list` of the catalog commands (`instance`, `workflow`, `credentials`): shared here so that
/// none of them imports another for it.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on; keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub bind: std::net::SocketAddr,
    #[command(flatten)]
    pub simulator: crate::simulator::SimulatorConfig,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Exit 0 once no collection has runnable or in-flight work.
    #[arg(long)]
    pub exit_when_idle: bool,
}

/// Parses the process arguments, runs the command and maps the outcome to an exit code.
pub fn main_entry() -> ExitCode {
    crate::memory::limit_malloc_arenas();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version are successes; everything else clap reports is a usage error (2),
            // told in one line like every other bad input.
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = error.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    let rendered = error.render().to_string();
                    let first = rendered
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("error: invalid arguments");
                    eprintln!("{}", first.trim_end());
                    ExitCode::from(2)
                }
            };
        }
    };
    pipe::end_quietly_on_closed_stdout(&cli.command);
    telemetry::init(cli.log_format, cli.command.default_log_level());
    let outcome = actix_rt::System::new().block_on(run(cli));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            let (code, message) = match &error {
                CliError::Usage(message) => (2, message.clone()),
                CliError::Runtime(error) => (1, format!("{error:#}")),
            };
            // One line, whatever the message carries (AMC text, a multi-line database error).
            eprintln!("error: {}", crate::escape::escape_controls(&message));
            ExitCode::from(code)
        }
    }
}

impl Command {
    fn default_log_level(&self) -> &'static str {
        match self {
            Command::Run(_) | Command::SimulateAmc(_) => "info",
            // The demo's progress bars and table are its output; only errors interrupt them.
            Command::Demo(_) => crate::demo::LOG_FILTER,
            // The benchmark's output is its figure lines.
            Command::Bench(_) => "error",
            _ => "warn",
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Migrate => {
            let store = open_store(&settings).await?;
            println!("migrations applied ({})", store.backend_name());
            // An install upgraded with data stored gets the relations it is missing.
            views::rebuild(&store, true).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Instance(command) => catalog::run_instance(command, &settings).await,
        Command::Workflow(command) => catalog::run_workflow(command, &settings).await,
        Command::Credentials(command) => credentials::run(command, &settings).await,
        Command::Collection(command) => collection::run(command, &settings).await,
        Command::Fleet(command) => fleet::run(command, &settings).await,
        Command::Views(command) => views::run(command, &settings).await,
        Command::Run(args) => {
            crate::app::run(settings, args.exit_when_idle).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            crate::demo::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::SimulateAmc(args) => simulate(*args).await,
        Command::Status(args) => status::run(args, &settings).await,
        Command::Bench(args) => {
            crate::bench::run(args)
                .await
                .map_err(|error| CliError::Runtime(error.into()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Serves the simulator until a signal arrives.
async fn simulate(args: SimulateArgs) -> Result<ExitCode, CliError> {
    let handle = crate::simulator::start(args.bind, args.simulator)
        .await
        .map_err(|e| CliError::Usage(e.to_string()))?;
    println!(
        "AMC simulator listening: base URL {} token URL {} stats {}/__sim/stats",
        handle.base_url(),
        handle.token_url(),
        handle.base_url()
    );
    let (client_id, _, _) = handle.credentials();
    println!("accepted client id {client_id} (secret and refresh token as configured)");
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| CliError::Runtime(e.into()))?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    handle.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Opens a database that must already exist: commands that only read, or that act on existing
/// collections, never create (and so write) a fresh SQLite file for input that names nothing.
pub(crate) async fn open_existing_store(settings: &Settings) -> Result<Store, CliError> {
    let url = &settings.database.url;
    if url.starts_with("sqlite:") {
        let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
            .map_err(|e| CliError::Usage(format!("database.url is not a SQLite URL: {e}")))?;
        let path = options.get_filename();
        if path != std::path::Path::new(":memory:") && !path.exists() {
            return Err(CliError::Usage(format!(
                "database {} does not exist yet (nothing to act on; `migrate` or `instance add` creates it)",
                path.display()
            )));
        }
    }
    Ok(open_store(settings).await?)
}
