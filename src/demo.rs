//! `amc-collector demo`: the whole product on one machine with no account and no network. It
//! starts the AMC simulator in-process, fills a fresh SQLite file with an instance, a workflow and
//! a 26-week collection, runs the real actor tree to the end with live progress, and prints the
//! final table. The database file is left for the user to open. The simulator's faults are
//! listed in `faults` (said before the run, told after it); the logs of the simulator's own
//! server and of the collector's expected reactions to those faults stay out of the output.

mod faults;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::actors::gateway::GetGatewayStatus;
use crate::app::{App, AppError};
use crate::config::Settings;
use crate::ids::CollectionId;
use crate::simulator::{self, SimulatorConfig};
use crate::status::WeekStatus;
use crate::store::{NewCollection, NewInstance, Store, WorkflowSource};
use crate::weeks::{generate_weeks, WeekRequest, WeekRules, WeekStart};

/// The demo workflow: `{{start_date}}`/`{{end_date}}` are substituted per week.
const DEMO_SQL: &str = "SELECT campaign, SUM(impressions) AS impressions, SUM(clicks) AS clicks\n\
FROM sponsored_ads_traffic\n\
WHERE event_dt BETWEEN '{{start_date}}' AND '{{end_date}}'\n\
GROUP BY campaign;";
const DEMO_INSTANCE: &str = "amcdemo0001";
/// Length of the demo's simulated day (AMC's daily limit window), in seconds.
const DEMO_DAY_SECS: u64 = 3;
/// Executions the demo's AMC allows per instance and simulated day.
const DEMO_DAILY_LIMIT: u64 = 12;

/// The demo's log filter when `RUST_LOG` is unset: errors only, but none from the simulator's own
/// HTTP server (a connection it cuts on purpose is an error to actix) nor the collector's
/// Login-with-Amazon refusals, which the simulator causes on purpose: the summary tells them.
pub const LOG_FILTER: &str = "error,actix_http=off,actix_server=off,amc_collector::amc::token=off";

/// Errors of the demo; the command line maps `Usage` to exit code 2 and `App` as it maps the
/// daemon's errors.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The user's input is wrong (the database file exists already).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Simulator(#[from] simulator::SimulatorError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The demo's instance, workflow or collection could not be created.
    #[error(transparent)]
    Seed(anyhow::Error),
    #[error("{0} weeks did not complete")]
    Incomplete(usize),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Weeks in the demo collection.
    #[arg(long, default_value_t = 26, value_parser = clap::value_parser!(i64).range(1..=52))]
    pub weeks: i64,
    /// SQLite file to create (default: amc-collector-demo-<time>.db in the current directory).
    #[arg(long)]
    pub database: Option<PathBuf>,
}

pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let path = args.database.unwrap_or_else(|| {
        PathBuf::from(format!(
            "amc-collector-demo-{}.db",
            chrono::Utc::now().format("%Y%m%d-%H%M%S")
        ))
    });
    if path.exists() {
        return Err(DemoError::Usage(format!(
            "{} already exists; the demo writes a fresh database",
            path.display()
        )));
    }
    let started = Instant::now();
    let sim = simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), demo_simulator()).await?;
    let settings = demo_settings(&path, &sim.base_url(), &sim.token_url());
    let store = Store::open(&settings.database.url, settings.database.max_connections).await?;
    let collection_id = seed(&store, args.weeks).await.map_err(DemoError::Seed)?;
    println!(
        "Demo: {} weeks of workflow `demo-weekly` on instance {DEMO_INSTANCE}, against the AMC simulator at {}",
        args.weeks,
        sim.base_url()
    );
    println!("{}", faults::announcement());

    let mut daemon = App::build(&settings)
        .store(store.clone())
        .exit_when_idle(true)
        .start()
        .await?;
    let progress = Progress::new(
        args.weeks as u64,
        settings.amc.max_in_flight_per_instance as u64,
    );
    let mut ticker = tokio::time::interval(Duration::from_millis(150));
    loop {
        tokio::select! {
            _ = &mut daemon.idle => break,
            _ = ticker.tick() => progress.update(&store, collection_id, &daemon).await,
        }
    }
    progress.update(&store, collection_id, &daemon).await;
    progress.finish();
    // The table is printed whatever the shutdown says: the weeks are in the database.
    let _ = daemon.stop().await;

    let weeks = store.weeks_of(collection_id).await?;
    crate::output::print_week_table(&weeks);
    let stats = sim.stats();
    let completed = weeks
        .iter()
        .filter(|w| w.status == WeekStatus::Completed)
        .count();
    println!(
        "\n{completed}/{} weeks completed in {:.1}s; AMC creates {} for {} weeks; at most {} executions in flight (limit {}).",
        weeks.len(),
        started.elapsed().as_secs_f64(),
        stats.creates_total,
        weeks.len(),
        stats.max_in_flight_per_instance.get(DEMO_INSTANCE).copied().unwrap_or(0),
        settings.amc.max_in_flight_per_instance,
    );
    println!("{}", faults::how_handled(&stats));
    println!(
        "Database left at {} (collection {collection_id}).",
        path.display()
    );
    store.close().await;
    sim.stop().await;
    if completed == weeks.len() {
        Ok(())
    } else {
        Err(DemoError::Incomplete(weeks.len() - completed))
    }
}

/// A realistic AMC in miniature: queued runs, a 10-slot limit, and the faults of `faults`.
fn demo_simulator() -> SimulatorConfig {
    faults::with_faults(SimulatorConfig {
        pending_ms: 300,
        running_ms: 2_000,
        publishing_ms: 300,
        duration_jitter_pct: 30.0,
        ..SimulatorConfig::default()
    })
}

fn demo_settings(path: &std::path::Path, base_url: &str, token_url: &str) -> Settings {
    let mut settings = Settings::default();
    settings.database.url = format!("sqlite://{}", path.display());
    settings.amc.base_url = Some(base_url.to_string());
    settings.amc.token_url = token_url.to_string();
    settings.amc.client_id = Some(simulator::DEFAULT_CLIENT_ID.to_string());
    settings.amc.client_secret = Some(simulator::DEFAULT_CLIENT_SECRET.into());
    settings.amc.refresh_token = Some(simulator::DEFAULT_REFRESH_TOKEN.into());
    settings.amc.poll_interval_ms = 250;
    settings.amc.backoff_base_ms = 50;
    settings.amc.backoff_max_ms = 2_000;
    settings.amc.max_requests_per_second = 0;
    // The demo's "day" lasts seconds, so its daily limit (the default 30) shows without waiting.
    settings.amc.max_creates_per_day = DEMO_DAILY_LIMIT as u32;
    settings.amc.quota_window_seconds = DEMO_DAY_SECS;
    settings.retry.backoff_base_ms = 500;
    settings.scheduler.scan_interval_ms = 200;
    // Nothing runs once the demo is idle; a stuck shutdown gives up soon.
    settings.scheduler.shutdown_deadline_seconds = 5;
    settings
}

async fn seed(store: &Store, weeks: i64) -> anyhow::Result<CollectionId> {
    let instance = store
        .insert_instance(&NewInstance {
            instance_id: DEMO_INSTANCE.into(),
            instance_name: "Demo instance".into(),
            region: "na".into(),
            advertiser_id: "ENTITYDEMO1".into(),
            marketplace_id: "ATVPDKIKX0DER".into(),
        })
        .await?;
    let workflow = store
        .insert_workflow("demo-weekly", &WorkflowSource::Sql(DEMO_SQL.into()))
        .await?;
    let today = chrono::Utc::now().date_naive();
    let weeks = generate_weeks(
        today,
        "UTC",
        &WeekRequest {
            weeks,
            end_date: None,
            week_start: WeekStart::Monday,
        },
        WeekRules {
            data_lag_days: 14,
            retention_days: 395,
        },
    )?;
    Ok(store
        .create_collection(&NewCollection {
            workflow_id: workflow.id,
            instance_id: instance.id,
            week_start: WeekStart::Monday,
            time_zone: "UTC".into(),
            weeks,
            keep_fresh: None,
            parameters: Default::default(),
        })
        .await?)
}

/// Live bars: weeks by state, and AMC slots in use.
struct Progress {
    weeks: ProgressBar,
    slots: ProgressBar,
    _bars: MultiProgress,
}

impl Progress {
    fn new(weeks: u64, slots: u64) -> Self {
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{bar:40.green/blue}] {pos:>3}/{len:3} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let week_bar = bars.add(
            ProgressBar::new(weeks)
                .with_style(style.clone())
                .with_prefix("weeks"),
        );
        let slot_bar = bars.add(
            ProgressBar::new(slots)
                .with_style(style)
                .with_prefix("AMC slots"),
        );
        Self {
            weeks: week_bar,
            slots: slot_bar,
            _bars: bars,
        }
    }

    async fn update(&self, store: &Store, collection_id: CollectionId, daemon: &App) {
        if let Ok(weeks) = store.weeks_of(collection_id).await {
            let count = |status: WeekStatus| weeks.iter().filter(|w| w.status == status).count();
            let running = weeks.iter().filter(|w| w.status.is_in_flight()).count();
            self.weeks.set_position(count(WeekStatus::Completed) as u64);
            self.weeks.set_message(format!(
                "completed, {running} running, {} failed, {} pending",
                count(WeekStatus::Failed),
                count(WeekStatus::Pending)
            ));
        }
        if let Ok(status) = daemon.gateway.send(GetGatewayStatus).await {
            let in_use = status
                .slots
                .get(DEMO_INSTANCE)
                .map(|s| s.in_use)
                .unwrap_or(0);
            let waiting = status
                .slots
                .get(DEMO_INSTANCE)
                .map(|s| s.waiting)
                .unwrap_or(0);
            self.slots.set_position(in_use as u64);
            self.slots
                .set_message(format!("in use, {waiting} weeks waiting for a slot"));
        }
    }

    fn finish(&self) {
        self.weeks.finish();
        self.slots.finish();
    }
}
