//! The PostgreSQL server of a benchmark: the one at `--postgres-url`, or a throwaway
//! PostgreSQL 15 cluster started like `scripts/test.sh` does (initdb + pg_ctl from
//! /usr/lib/postgresql/15/bin, run as the `postgres` user when we are root) and stopped on drop.
//! Each benchmark run gets a fresh database of its own, so `pg_stat_database` counts only it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::BenchError;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A server we may create databases on.
pub struct PgServer {
    admin_url: String,
    admin: PgPool,
    /// Present when we started the server ourselves.
    cluster: Option<Cluster>,
}

impl PgServer {
    /// Uses the server at `url` (its database is only used to create and drop others).
    pub async fn external(url: &str) -> Result<Self, BenchError> {
        let admin = admin_pool(url).await?;
        Ok(Self {
            admin_url: url.to_string(),
            admin,
            cluster: None,
        })
    }

    /// Starts a throwaway cluster on a free loopback port.
    pub async fn throwaway() -> Result<Self, BenchError> {
        let cluster = Cluster::start()?;
        let admin_url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
        let admin = admin_pool(&admin_url).await?;
        Ok(Self {
            admin_url,
            admin,
            cluster: Some(cluster),
        })
    }

    /// Where the figures come from, for the report (password hidden).
    pub fn describe(&self) -> String {
        match &self.cluster {
            Some(cluster) => format!(
                "throwaway PostgreSQL 15 cluster on port {} (default durability: fsync on)",
                cluster.port
            ),
            None => crate::store::dsn::redact_url(&self.admin_url),
        }
    }

    /// The postmaster's pid when we run it, to measure the server's CPU time.
    pub fn server_pid(&self) -> Option<u32> {
        let cluster = self.cluster.as_ref()?;
        let text = std::fs::read_to_string(cluster.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    pub fn admin(&self) -> &PgPool {
        &self.admin
    }

    /// Creates an empty database and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, BenchError> {
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
            .execute(&self.admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&self.admin)
            .await?;
        let mut url = url::Url::parse(&self.admin_url)
            .map_err(|e| BenchError::Setup(format!("bad --postgres-url: {e}")))?;
        url.set_path(&format!("/{name}"));
        Ok(url.to_string())
    }

    /// Drops a database created by [`Self::create_database`]; failures only leave it behind.
    pub async fn drop_database(&self, name: &str) {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        if let Err(error) = sqlx::query(&sql).execute(&self.admin).await {
            tracing::error!(%error, database = name, "benchmark database left behind");
        }
    }

    pub async fn close(self) {
        self.admin.close().await;
        // `cluster` drops here and stops the server.
    }
}

async fn admin_pool(url: &str) -> Result<PgPool, BenchError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| BenchError::Setup(format!("bad --postgres-url: {e}")))?;
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .map_err(|e| {
            BenchError::Setup(format!(
                "cannot connect to PostgreSQL at {}: {e}",
                crate::store::dsn::redact_url(url)
            ))
        })
}

/// A PostgreSQL cluster in a temporary directory, stopped and removed on drop.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    fn start() -> Result<Self, BenchError> {
        let fail = |why: String| BenchError::Postgres(why);
        if !Path::new(PG_BIN).join("initdb").exists() {
            return Err(fail(format!(
                "PostgreSQL 15 server binaries not found in {PG_BIN} \
                 (install postgresql-15 or pass --postgres-url)"
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("amc-collector-bench-pg.")
            .tempdir()
            .map_err(|e| fail(format!("cannot create a temporary directory: {e}")))?;
        // initdb and pg_ctl refuse to run as root.
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let port = free_port().map_err(|e| fail(format!("no free port: {e}")))?;
        let cluster = Self {
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .status();
            if !status.is_ok_and(|s| s.success()) {
                return Err(fail(
                    "cannot hand the cluster directory to the postgres user".into(),
                ));
            }
        }
        let log = cluster.dir.path().join("initdb.log");
        cluster.pg(
            "initdb",
            &[
                "-D".into(),
                cluster.data_dir().display().to_string(),
                "-U".into(),
                "postgres".into(),
                "--auth=trust".into(),
                "--encoding=UTF8".into(),
                "--no-locale".into(),
            ],
            &log,
            "initdb failed",
        )?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            cluster.dir.path().display()
        );
        let server_log = cluster.dir.path().join("server.log");
        cluster.pg(
            "pg_ctl",
            &[
                "-D".into(),
                cluster.data_dir().display().to_string(),
                "-l".into(),
                server_log.display().to_string(),
                "-w".into(),
                "-t".into(),
                "60".into(),
                "-o".into(),
                options,
                "start".into(),
            ],
            &server_log,
            "PostgreSQL did not start",
        )?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a server tool (as `postgres` when root); on failure the error carries the last
    /// line of its log so the one-line message says why.
    fn pg(&self, tool: &str, args: &[String], log: &Path, what: &str) -> Result<(), BenchError> {
        let program = format!("{PG_BIN}/{tool}");
        // In a session of its own, as a database service runs: with the kernel's autogroup
        // scheduling a server started inside the benchmark's session shared that session's CPU
        // share with the collector, instead of getting a share of its own like a real server.
        let mut command = Command::new("setsid");
        if self.as_postgres {
            command.args(["runuser", "-u", "postgres", "--", &program]);
        } else {
            command.arg(&program);
        }
        let output = command.args(args).output();
        let ok = output.as_ref().is_ok_and(|o| o.status.success());
        if ok {
            return Ok(());
        }
        let mut detail = std::fs::read_to_string(log)
            .ok()
            .and_then(|text| {
                text.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        if detail.is_empty() {
            detail = match &output {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => e.to_string(),
            };
        }
        Err(BenchError::Postgres(format!("{what}: {}", detail.trim())))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let args = [
            "-D".to_string(),
            self.data_dir().display().to_string(),
            "-m".into(),
            "fast".into(),
            "stop".into(),
        ];
        let log = self.dir.path().join("stop.log");
        if let Err(error) = self.pg("pg_ctl", &args, &log, "stopping PostgreSQL failed") {
            tracing::error!(%error, "throwaway cluster may still run");
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}
