//! The `Store`: every database read and write, for Postgres and SQLite, behind one type.
//!
//! Each query is written once: the `with_pool!` macro expands the same sqlx code for both pools,
//! so the two backends cannot drift apart. SQL is kept to the dialect both understand (`$N`
//! placeholders, `ON CONFLICT`, `RETURNING`); time comes from Rust, not from `now()`. Writes that
//! belong together run in one transaction.
//!
//! Submodules: `catalog` (instances, workflows), `credential_sets` (where each credential
//! set's secrets are read), `collections` (creating and reading collections),
//! `control` (pause/resume/cancel/retry-failed), `rerun` (collecting a completed week again), `export` (streaming rows out), `leases`
//! (multi-process claims, renewals, the SQLite process lock),
//! `progress` (a collection's status derived from its weeks), `staging` (rows of a download in
//! progress, written by the week's ingest), `transitions` (the week state machine: `Transition`,
//! each kind's payload, SQL and refusal, and the group commit that applies them), `model`
//! (row types), `overview` (what the observability endpoints read), `console_view` (what the
//! console reads), `dsn` (reading and redacting database URLs), `schema` (the collector's own
//! Postgres schema), `probe` (the first, bounded connection), `alerts` (the alert outbox),
//! `keep_fresh` (due weeks of keep-fresh collections), `typed` (each workflow's typed relation),
//! `fleets` (creating collections, alone or as a fleet, and reading fleets), `reuse` (weeks
//! completed from another collection's stored execution), `plan` (what a creation would cost).
//! `tx` (one transaction on either backend, shared by `transitions` and `typed`).

mod alerts;
mod catalog;
mod collections;
mod console_view;
mod control;
mod credential_sets;
pub mod dsn;
mod export;
mod fence;
mod fleets;
mod held;
mod keep_fresh;
mod leases;
mod lineage;
pub mod model;
mod overview;
mod plan;
mod probe;
mod progress;
mod quota;
mod reopened;
mod rerun;
mod reuse;
mod run_times;
pub mod schema;
mod staging;
mod transitions;
mod tx;
pub mod typed;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub(crate) use alerts::OutboxTx;
pub use alerts::{AlertEvent, NewAlert, OutboxAlert, UndeliveredAlerts};
pub use catalog::{NewInstance, WorkflowSource};
pub use collections::{is_collection_ref, KeepFresh, NewCollection, MIN_ID_PREFIX};
pub use console_view::{CollectionOverview, WeekDetail};
pub use control::{Control, ExecutionToCancel};
pub use export::ExportRow;
pub use fence::Fence;
pub use fleets::{Created, FleetMember};
pub use held::{create_refusal, HeldCollection, CREATE_REFUSED, SAME_FAILURES_TO_HOLD};
pub use keep_fresh::{next_week_due, today_in, DueWeeks, FreshCollection};
pub use leases::process_owner;
pub use lineage::Served;
pub use model::ResultRow;
pub use overview::{DurationHistogram, InFlightExecution, StatusCounts};
pub use plan::{eta_text, InstancePlan, PlanRequest, RunTime};
pub use quota::{daily_limit_wait, CreateQuota, QuotaUse};
pub use reopened::REOPENED_LOOKBACK;
pub use rerun::RerunRequested;
pub use reuse::ReuseKey;
pub use schema::DEFAULT_SCHEMA;
pub use staging::{RowBatch, StagingBatch, StagingTarget, COPY_ROWS};
pub use transitions::{
    CompletedWeek, Downloading, Edge, Failed, Refused, StatusReport, SubmissionIntent, Submitted,
    Transition, Verdict, Withdrawn, EDGES,
};

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// A collection id prefix matches more than one collection.
    #[error("{0}")]
    Ambiguous(String),
    /// An operator's control or a creation the collection's state does not allow (the week
    /// transitions' refusals are `transitions::Refused`, not errors).
    #[error("{0}")]
    InvalidTransition(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("cannot write the export: {0}")]
    Sink(std::io::Error),
    /// The database URL or schema cannot be used as given (the message never holds the URL).
    #[error("database.url {0}")]
    Url(#[from] dsn::DsnError),
    #[error("database.schema `{0}` is not a plain lower-case identifier (or is reserved)")]
    Schema(String),
    #[error("database.url {}", dsn::TRANSACTION_POOLER)]
    TransactionPooler,
    /// The first connection failed; the message names the cause (refused, DNS, TLS, ...).
    #[error("cannot reach the database: {0}")]
    Unreachable(String),
    /// SQLite: another process holds the single-process lock this process had; it must stop.
    #[error("{0}")]
    ProcessLockLost(String),
}

impl StoreError {
    /// Whether retrying later may succeed (the database was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(error) => {
                matches!(
                    error,
                    sqlx::Error::Io(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                        | sqlx::Error::Protocol(_)
                ) || is_busy(error)
            }
            StoreError::Unreachable(_) => true,
            _ => false,
        }
    }
}

fn is_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // SQLite BUSY/LOCKED; Postgres serialization failure, deadlock, admin shutdown.
            matches!(
                code.as_ref(),
                "5" | "6" | "40001" | "40P01" | "57P01" | "57P03"
            )
        }
        _ => false,
    }
}

/// The database, Postgres or SQLite.
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same sqlx code against whichever pool the store holds.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::store::Store::Postgres($pool) => $body,
            $crate::store::Store::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

impl Store {
    /// Connects (creating a missing SQLite file) without migrating, in the default schema.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_in(url, max_connections, DEFAULT_SCHEMA).await
    }

    /// Connects without migrating; on Postgres every connection works in `schema`. A Postgres
    /// that cannot be reached fails within `probe::CONNECT_TIMEOUT`, naming the cause.
    pub async fn connect_in(
        url: &str,
        max_connections: u32,
        schema: &str,
    ) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
                // 512 KiB of page cache per connection instead of 2 MiB: reads are served by the
                // OS's file cache just as well, and a pool of connections multiplied the default.
                .pragma("cache_size", "-512");
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Ok(Store::Sqlite(pool))
        } else {
            if !schema::valid_schema_name(schema) {
                return Err(StoreError::Schema(schema.to_string()));
            }
            let target = dsn::PgTarget::parse(url)?;
            if target.transaction_pooler {
                return Err(StoreError::TransactionPooler);
            }
            if !target.dropped.is_empty() {
                tracing::warn!(
                    parameters = target.dropped.join(","),
                    "database.url parameters not understood by the collector are ignored."
                );
            }
            probe::probe(&target)
                .await
                .map_err(StoreError::Unreachable)?;
            let pool = schema::pool_options(schema)
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(target.options)
                .await?;
            Ok(Store::Postgres(pool))
        }
    }

    /// A second pool on the same database, connecting on first use, so its connections belong to
    /// the runtime that uses them (the DbWriter's own thread) rather than the caller's. It keeps
    /// the first pool's options (on Postgres, the schema every connection works in).
    pub fn sibling(&self, max_connections: u32) -> Store {
        match self {
            Store::Postgres(pool) => Store::Postgres(
                pool.options()
                    .clone()
                    .max_connections(max_connections)
                    .connect_lazy_with((*pool.connect_options()).clone()),
            ),
            Store::Sqlite(pool) => Store::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_lazy_with((*pool.connect_options()).clone()),
            ),
        }
    }

    /// Connects and applies pending migrations (every command does this), in the default schema.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::open_in(url, max_connections, DEFAULT_SCHEMA).await
    }

    /// Connects and applies pending migrations; on Postgres the schema is created first (and an
    /// install from before it existed is moved into it from `public`).
    pub async fn open_in(
        url: &str,
        max_connections: u32,
        schema: &str,
    ) -> Result<Self, StoreError> {
        let store = Self::connect_in(url, max_connections, schema).await?;
        if let Store::Postgres(pool) = &store {
            schema::prepare(pool, schema).await?;
        }
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations of this backend (on Postgres, into a schema already prepared
    /// by `open_in`).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
            Store::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
        }
        Ok(())
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(_) => "sqlite",
        }
    }

    /// Cheap liveness probe of the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }
}

/// Statuses as an SQL list of string literals (`'a', 'b'`) from their enums, for the statements
/// rendered once rather than binding every status (the text is the enums' own, never input).
fn status_list<S: std::fmt::Display>(statuses: &[S]) -> String {
    let quoted: Vec<String> = statuses.iter().map(|s| format!("'{s}'")).collect();
    quoted.join(", ")
}

/// Maps a unique-constraint violation to a user-facing conflict message.
fn conflict_or(error: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(error),
    }
}
