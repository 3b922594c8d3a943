//! One benchmark run's world: a fresh database (a SQLite file in a temporary directory or a new
//! Postgres database), seeded instances, workflows and collections, the settings the daemon runs
//! with, and the database-transaction counters read before and after the measured part;
//! [`World`] puts them together with the simulator, the set-up and tear-down every scenario shares.

use std::time::{Duration, Instant};

use super::catalog::Catalog;
pub use super::catalog::Layout;
use super::pg_cluster::PgServer;
use super::{Backend, BenchError, RunCtx};
use crate::config::Settings;
use crate::ids::CollectionId;
use crate::simulator::{self, SimulatorConfig, SimulatorHandle, SimulatorStats};
use crate::store::Store;

/// Database connections of a run (the default of `database.max_connections`).
pub const MAX_CONNECTIONS: u32 = 10;

/// A fresh database for one run.
pub struct Fixture<'a> {
    pub store: Store,
    db: Db<'a>,
}

enum Db<'a> {
    Sqlite {
        url: String,
        _dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        name: String,
        server: &'a PgServer,
    },
}

/// Transactions committed so far, where the backend counts them (Postgres: every commit, reads
/// included; SQLite keeps no such statistics). Writes are counted by the DbWriter itself.
#[derive(Debug, Clone, Copy)]
pub struct TxCount {
    pub commits: Option<u64>,
}

impl<'a> Fixture<'a> {
    /// Creates and migrates a fresh database named after `label`.
    pub async fn open(
        backend: Backend,
        label: &str,
        server: Option<&'a PgServer>,
    ) -> Result<Fixture<'a>, BenchError> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("amc-collector-bench.")
                    .tempdir()?;
                let url = format!(
                    "sqlite://{}",
                    dir.path().join(format!("{label}.db")).display()
                );
                let store = Store::open(&url, MAX_CONNECTIONS).await?;
                Ok(Fixture {
                    store,
                    db: Db::Sqlite { url, _dir: dir },
                })
            }
            Backend::Postgres => {
                let server = server.ok_or_else(|| {
                    BenchError::Setup("no PostgreSQL server for a Postgres run".into())
                })?;
                let name = format!("amc_bench_{label}_{}", std::process::id());
                let url = server.create_database(&name).await?;
                let store = Store::open(&url, MAX_CONNECTIONS).await?;
                Ok(Fixture {
                    store,
                    db: Db::Postgres { url, name, server },
                })
            }
        }
    }

    pub fn url(&self) -> &str {
        match &self.db {
            Db::Sqlite { url, .. } | Db::Postgres { url, .. } => url,
        }
    }

    /// Closes the pool (Postgres backends flush their statistics when they exit), reads the
    /// counters and opens a fresh pool, so seeding is not counted against the run.
    pub async fn fresh_pool(&mut self) -> Result<TxCount, BenchError> {
        self.store.close().await;
        let count = self.tx_count().await?;
        self.store = match &self.db {
            Db::Sqlite { url, .. } | Db::Postgres { url, .. } => {
                Store::connect(url, MAX_CONNECTIONS).await?
            }
        };
        Ok(count)
    }

    /// Closes the pool and reads the counters once the server's statistics are settled.
    pub async fn close(&self) -> Result<TxCount, BenchError> {
        self.store.close().await;
        self.tx_count().await
    }

    async fn tx_count(&self) -> Result<TxCount, BenchError> {
        match &self.db {
            Db::Sqlite { .. } => Ok(TxCount { commits: None }),
            Db::Postgres { name, server, .. } => {
                // Backends flush their counters as they exit, a moment after the pool closed:
                // read until two readings agree.
                let mut last = None;
                for _ in 0..40 {
                    let commits: i64 = sqlx::query_scalar(
                        "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
                    )
                    .bind(name)
                    .fetch_one(server.admin())
                    .await?;
                    let active: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                    )
                    .bind(name)
                    .fetch_one(server.admin())
                    .await?;
                    if active == 0 && last == Some(commits) {
                        break;
                    }
                    last = Some(commits);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(TxCount {
                    commits: last.map(|c| c as u64),
                })
            }
        }
    }

    /// Removes the database (the SQLite directory goes when the fixture drops).
    pub async fn remove(self) {
        self.store.close().await;
        if let Db::Postgres { name, server, .. } = &self.db {
            server.drop_database(name).await;
        }
    }
}

/// Seeds `layout`: instances `amcbench0000…`, one workflow per collection slot of an instance
/// (so no two collections of an instance share a workflow and window), and the collections.
pub async fn seed(store: &Store, layout: Layout) -> Result<Vec<CollectionId>, BenchError> {
    let catalog = Catalog::seed(store, layout).await?;
    catalog.collections(store, layout.weeks, 0).await
}

/// Settings of a benchmark daemon: no request-rate cap (the simulator is the only peer), short
/// scans and backoffs, the given poll interval.
pub fn settings(url: &str, sim: &SimulatorHandle, poll_interval_ms: u64) -> Settings {
    let mut settings = Settings::default();
    settings.database.url = url.to_string();
    settings.database.max_connections = MAX_CONNECTIONS;
    settings.amc.base_url = Some(sim.base_url());
    settings.amc.token_url = sim.token_url();
    settings.amc.client_id = Some(simulator::DEFAULT_CLIENT_ID.to_string());
    settings.amc.client_secret = Some(simulator::DEFAULT_CLIENT_SECRET.into());
    settings.amc.refresh_token = Some(simulator::DEFAULT_REFRESH_TOKEN.into());
    settings.amc.poll_interval_ms = poll_interval_ms;
    settings.amc.max_in_flight_per_instance = 10;
    settings.amc.max_requests_per_second = 0;
    // The benchmark measures the collector; the daily limit's bound is printed by `makespan`.
    settings.amc.max_creates_per_day = 0;
    // Results here are a few hundred bytes: the download budget (a memory bound for big results,
    // default 2) would measure itself rather than the pipeline. `ingest` keeps the default.
    settings.results.max_concurrent_downloads = 16;
    settings.amc.backoff_base_ms = 50;
    settings.amc.backoff_max_ms = 2_000;
    settings.retry.backoff_base_ms = 500;
    settings.scheduler.scan_interval_ms = 100;
    settings.scheduler.shutdown_deadline_seconds = 10;
    settings
}

/// A scenario's world before its measured part: the simulator, and the seeded database on a
/// fresh pool.
pub struct World<'a> {
    pub sim: SimulatorHandle,
    pub fx: Fixture<'a>,
    /// The transaction counters once seeding was done.
    pub tx_before: TxCount,
    /// How long seeding took.
    pub seeded_in: Duration,
    /// Collections run before the measured part (not counted by [`World::weeks_completed`]).
    warm_up: Vec<CollectionId>,
}

impl<'a> World<'a> {
    /// Starts the simulator with `config`, opens a fresh database named after `label` on the
    /// run's backend, seeds `layout` and reopens the pool so seeding is not counted against the
    /// run.
    pub async fn prepare(
        cx: &RunCtx<'a>,
        label: &str,
        layout: Layout,
        config: SimulatorConfig,
    ) -> Result<World<'a>, BenchError> {
        let sim = super::start_simulator(config).await?;
        let mut fx = Fixture::open(cx.backend, label, cx.server).await?;
        let seeding = Instant::now();
        seed(&fx.store, layout).await?;
        let seeded_in = seeding.elapsed();
        let tx_before = fx.fresh_pool().await?;
        Ok(World {
            sim,
            fx,
            tx_before,
            seeded_in,
            warm_up: Vec::new(),
        })
    }

    /// As [`World::prepare`], but first runs one week of every workflow on every instance to
    /// the end with `settings` (a week older than the layout's, not measured): the measured
    /// backfill is then one of workflows known to run there, which go at full speed from the
    /// start rather than probing with one execution per collection, with their run times known.
    /// `settle` is waited after the warm-up (its creates leave the daily-limit window).
    pub async fn prepare_proven(
        cx: &RunCtx<'a>,
        label: &str,
        layout: Layout,
        config: SimulatorConfig,
        settings: impl Fn(&str, &SimulatorHandle) -> Settings,
        settle: Duration,
    ) -> Result<World<'a>, BenchError> {
        let mut fx = Fixture::open(cx.backend, label, cx.server).await?;
        let seeding = Instant::now();
        let catalog = Catalog::seed(&fx.store, layout).await?;
        let warm_up = catalog
            .collections(&fx.store, 1, layout.weeks as usize)
            .await?;
        // A simulator of its own, so that the measured run's AMC counters start at zero.
        let warm_sim = super::start_simulator(config.clone()).await?;
        let ran = super::run_to_idle(
            fx.store.clone(),
            &settings(fx.url(), &warm_sim),
            Duration::from_secs(300),
        )
        .await;
        warm_sim.stop().await;
        ran?;
        // Until the warm-up's creates have left the daily-limit window the measured run counts in.
        tokio::time::sleep(settle).await;
        catalog.collections(&fx.store, layout.weeks, 0).await?;
        let seeded_in = seeding.elapsed();
        let tx_before = fx.fresh_pool().await?;
        let sim = super::start_simulator(config).await?;
        Ok(World {
            sim,
            fx,
            tx_before,
            seeded_in,
            warm_up,
        })
    }

    /// The daemon's [`settings`] in this world, polling every `poll_interval_ms`.
    pub fn settings(&self, poll_interval_ms: u64) -> Settings {
        settings(self.fx.url(), &self.sim, poll_interval_ms)
    }

    /// Weeks completed over all collections, by the collections' own counters.
    pub async fn weeks_completed(&self) -> Result<i64, BenchError> {
        Ok(self
            .fx
            .store
            .list_collections()
            .await?
            .iter()
            .filter(|c| !self.warm_up.contains(&c.id))
            .map(|c| c.weeks_completed)
            .sum())
    }

    /// Stops the simulator and removes the database; returns the simulator's last counters.
    pub async fn tear_down(self) -> SimulatorStats {
        let stats = self.sim.stats();
        self.sim.stop().await;
        self.fx.remove().await;
        stats
    }
}
