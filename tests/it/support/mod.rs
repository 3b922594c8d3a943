//! Shared test tooling: a fresh database per test on either backend, and running the real binary.
//!
//! Postgres tests need `AMC_TEST_PG_URL` (set by `scripts/test.sh`, which starts the cluster);
//! without it they fail loudly instead of being skipped.

use std::path::{Path, PathBuf};
use std::process::Output;

use amc_collector::store::Store;

pub mod pipeline;
pub mod procs;
mod wait;
use sqlx::Connection;
pub use wait::wait_until;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of its own for one test; SQLite files live in the test's temporary directory.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
            Backend::Postgres => fresh_postgres_database().await,
        };
        Self { url, dir, backend }
    }

    /// Opens (and migrates) the store the way every command does.
    pub async fn store(&self) -> Store {
        Store::open(&self.url, 5).await.expect("open store")
    }

    /// Runs the real binary in the test's directory with this database configured.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[])
    }

    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().expect("run amc-collector")
    }

    /// The real binary in the test's directory with this database and `env` configured.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Command {
        let mut command = std::process::Command::new(binary());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("AMC_COLLECTOR__DATABASE__URL", &self.url)
            .env_remove("RUST_LOG");
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// Like `run`, without blocking the async runtime (needed while a daemon runs in-process).
    pub async fn run_async(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(binary())
            .args(args)
            .current_dir(self.dir.path())
            .env("AMC_COLLECTOR__DATABASE__URL", &self.url)
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("run amc-collector")
    }

    /// `run_with_env` without blocking the async runtime.
    pub async fn run_with_env_async(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        tokio::process::Command::from(self.command(args, env))
            .output()
            .await
            .expect("run amc-collector")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_amc-collector"))
}

async fn fresh_postgres_database() -> String {
    let base = std::env::var("AMC_TEST_PG_URL").unwrap_or_else(|_| {
        panic!("AMC_TEST_PG_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL")
    });
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {base}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(&base).expect("AMC_TEST_PG_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Asserts the command failed as bad input must: exit 2, one line on stderr, no panic.
#[track_caller]
pub fn assert_usage_error(output: &Output, expected_fragment: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(expected_fragment),
        "`{expected_fragment}` not in: {stderr}"
    );
}

#[track_caller]
pub fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Generates one test per backend from an async fn taking a `Backend`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn on_sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn on_postgres() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            }
        )+
    };
}
