//! Multi-process scenario (Postgres): three real `amc-collector run` processes share one
//! database; once the first holds collections it is killed with SIGKILL. Reports how long until
//! another process took its collections over, slot-limit violations and duplicate creates.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::fixture::{seed, Fixture, Layout};
use super::{start_simulator, Backend, BenchError, Outcome, RunCtx};
use crate::simulator::{self, SimulatorConfig};
use crate::status::WeekStatus;
use crate::store::Store;

const PROCESSES: usize = 3;
const LEASE_SECONDS: u64 = 5;
const LIMIT: u64 = 10;

/// A child process killed when dropped, so an error never leaves daemons behind.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(cx: &RunCtx<'_>) -> Result<Outcome, BenchError> {
    let layout = if cx.quick {
        Layout {
            instances: 2,
            collections_per_instance: 3,
            weeks: 4,
        }
    } else {
        Layout {
            instances: 4,
            collections_per_instance: 6,
            weeks: 8,
        }
    };
    let fixture = Fixture::open(Backend::Postgres, "multiprocess", cx.server).await?;
    seed(&fixture.store, layout).await?;
    let sim = start_simulator(SimulatorConfig {
        pending_ms: 20,
        running_ms: 1_000,
        publishing_ms: 20,
        duration_jitter_pct: 20.0,
        ..SimulatorConfig::default()
    })
    .await?;
    let per_process = layout.collections().div_ceil(PROCESSES).to_string();
    let env = [
        ("AMC_COLLECTOR__DATABASE__URL", fixture.url().to_string()),
        ("AMC_COLLECTOR__AMC__BASE_URL", sim.base_url()),
        ("AMC_COLLECTOR__AMC__TOKEN_URL", sim.token_url()),
        (
            "AMC_COLLECTOR__AMC__CLIENT_ID",
            simulator::DEFAULT_CLIENT_ID.to_string(),
        ),
        (
            "AMC_COLLECTOR__AMC__CLIENT_SECRET",
            simulator::DEFAULT_CLIENT_SECRET.to_string(),
        ),
        (
            "AMC_COLLECTOR__AMC__REFRESH_TOKEN",
            simulator::DEFAULT_REFRESH_TOKEN.to_string(),
        ),
        ("AMC_COLLECTOR__AMC__POLL_INTERVAL_MS", "100".to_string()),
        (
            "AMC_COLLECTOR__AMC__MAX_REQUESTS_PER_SECOND",
            "0".to_string(),
        ),
        (
            "AMC_COLLECTOR__SCHEDULER__LEASE_SECONDS",
            LEASE_SECONDS.to_string(),
        ),
        (
            "AMC_COLLECTOR__SCHEDULER__SCAN_INTERVAL_MS",
            "200".to_string(),
        ),
        ("AMC_COLLECTOR__SCHEDULER__MAX_COLLECTIONS", per_process),
        ("AMC_COLLECTOR__SCHEDULER__CLAIM_BATCH", "2".to_string()),
        ("AMC_COLLECTOR__HTTP__BIND", "127.0.0.1:0".to_string()),
        ("RUST_LOG", "error".to_string()),
    ];
    let binary = std::env::current_exe()?;
    let mut daemons = Vec::new();
    for _ in 0..PROCESSES {
        let mut command = Command::new(&binary);
        command
            .args(["run", "--exit-when-idle"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        daemons.push(Daemon(command.spawn()?));
    }
    let started = Instant::now();
    let victim = daemons[0].0.id();
    wait_until(
        Duration::from_secs(60),
        "the first process to claim work",
        || async { Ok(leased_by(&fixture.store, victim).await? > 0) },
    )
    .await?;
    // Let it submit: the takeover must adopt executions in flight, not only pending weeks.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let held = leased_by(&fixture.store, victim).await?;
    let _ = daemons[0].0.kill();
    let _ = daemons[0].0.wait();
    let killed_at = Instant::now();
    wait_until(Duration::from_secs(120), "the takeover", || async {
        Ok(leased_by(&fixture.store, victim).await? == 0)
    })
    .await?;
    let takeover = killed_at.elapsed();
    for daemon in daemons.iter_mut().skip(1) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while daemon.0.try_wait()?.is_none() {
            if Instant::now() > deadline {
                return Err(BenchError::Timeout(
                    Duration::from_secs(600),
                    "the surviving processes",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let elapsed = started.elapsed();
    let stats = sim.stats();
    let duplicates: u64 = stats
        .creates_per_window
        .values()
        .map(|n| n.saturating_sub(1))
        .sum();
    let violations = stats
        .max_in_flight_per_instance
        .values()
        .filter(|n| **n > LIMIT)
        .count();
    let peak = stats
        .max_in_flight_per_instance
        .values()
        .copied()
        .max()
        .unwrap_or(0);
    let (done, total) = completed_weeks(&fixture.store).await?;
    sim.stop().await;
    let line = format!(
        "multi-process [postgres]: {PROCESSES} processes, {}, one killed (SIGKILL) holding {held} collections: \
         takeover {:.2} s (lease {LEASE_SECONDS} s, target <= {} s), slot-limit violations {violations} \
         (peak {peak}/{LIMIT} per instance), duplicate creates {duplicates}, weeks completed {done}/{total}, \
         wall {:.1} s",
        layout.describe(),
        takeover.as_secs_f64(),
        LEASE_SECONDS + 5,
        elapsed.as_secs_f64()
    );
    fixture.remove().await;
    Ok(Outcome {
        line,
        complete: done == total,
    })
}

async fn wait_until<F, Fut>(
    limit: Duration,
    what: &'static str,
    mut check: F,
) -> Result<(), BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, BenchError>>,
{
    let deadline = Instant::now() + limit;
    while !check().await? {
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(limit, what));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Unfinished collections whose lease names the process id (owners are `host:pid:suffix`).
async fn leased_by(store: &Store, pid: u32) -> Result<i64, BenchError> {
    let Store::Postgres(pool) = store else {
        return Err(BenchError::Setup("multi-process needs Postgres".into()));
    };
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM report_data_collections \
         WHERE lease_owner LIKE $1 AND status IN ('pending', 'running')",
    )
    .bind(format!("%:{pid}:%"))
    .fetch_one(pool)
    .await?)
}

async fn completed_weeks(store: &Store) -> Result<(usize, usize), BenchError> {
    let mut done = 0;
    let mut total = 0;
    for collection in store.list_collections().await? {
        for week in store.weeks_of(collection.id).await? {
            total += 1;
            if week.status == WeekStatus::Completed {
                done += 1;
            }
        }
    }
    Ok((done, total))
}
