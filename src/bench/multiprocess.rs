//! Multi-process scenario (Postgres): three real `amc-collector run` processes share one
//! database; once the first holds collections with executions in flight it is killed with
//! SIGKILL. Reports how long until another process took over its collections with executions in
//! flight (the survivors do so whatever their `max_collections` cap) and all of them,
//! slot-limit violations and duplicate creates.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::fixture::{Layout, World};
use super::{BenchError, Outcome, RunCtx};
use crate::simulator::{self, SimulatorConfig, SimulatorStats};
use crate::status::{CollectionStatus, WeekStatus};
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
    let layout = layout(cx.quick);
    let world = World::prepare(
        cx,
        "multiprocess",
        layout,
        SimulatorConfig {
            pending_ms: 20,
            running_ms: 1_000,
            publishing_ms: 20,
            duration_jitter_pct: 20.0,
            ..SimulatorConfig::default()
        },
    )
    .await?;
    let env = daemon_env(&world, layout);
    let binary = std::env::current_exe()?;
    let mut daemons = (0..PROCESSES)
        .map(|_| spawn_daemon(&binary, &env))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let takeover = kill_one_and_time_the_takeover(&world.fx.store, &mut daemons).await?;
    wait_for_survivors(&mut daemons[1..]).await?;
    let elapsed = started.elapsed();
    let (done, total) = completed_weeks(&world.fx.store).await?;
    let stats = world.tear_down().await;
    let line = report(layout, &takeover, elapsed, (done, total), &stats);
    Ok(Outcome {
        line,
        complete: done == total,
    })
}

fn layout(quick: bool) -> Layout {
    if quick {
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
    }
}

/// The environment of every `run` process: this world's database and simulator, short leases
/// and scans, and a share of the collections each so that all three take part.
fn daemon_env(world: &World<'_>, layout: Layout) -> Vec<(&'static str, String)> {
    let per_process = layout.collections().div_ceil(PROCESSES).to_string();
    vec![
        ("AMC_COLLECTOR__DATABASE__URL", world.fx.url().to_string()),
        ("AMC_COLLECTOR__AMC__BASE_URL", world.sim.base_url()),
        ("AMC_COLLECTOR__AMC__TOKEN_URL", world.sim.token_url()),
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
        // The simulator has no daily limit here, and the collector's own count (30 a day by
        // default) would hold 18 of each instance's 48 weeks back for a day.
        ("AMC_COLLECTOR__AMC__MAX_CREATES_PER_DAY", "0".to_string()),
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
    ]
}

/// Starts `amc-collector run --exit-when-idle` with `env`, its output discarded.
fn spawn_daemon(binary: &Path, env: &[(&'static str, String)]) -> Result<Daemon, BenchError> {
    let mut command = Command::new(binary);
    command
        .args(["run", "--exit-when-idle"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Ok(Daemon(command.spawn()?))
}

/// What the takeover of the killed process's collections took.
struct Takeover {
    /// Collections it held, and how many of them had weeks in flight.
    held: i64,
    held_in_flight: i64,
    /// Until its collections with weeks in flight were claimed (whatever the survivors' cap).
    in_flight: Duration,
    /// Until every one of its collections was claimed.
    all: Duration,
}

/// Waits until the first daemon holds collections with executions in flight, kills it, and
/// waits until none of its collections is leased any more.
async fn kill_one_and_time_the_takeover(
    store: &Store,
    daemons: &mut [Daemon],
) -> Result<Takeover, BenchError> {
    let victim = daemons[0].0.id();
    wait_until(
        Duration::from_secs(60),
        "the first process to claim work",
        || async { Ok(leased_by(store, victim).await? > 0) },
    )
    .await?;
    // Let it submit: the takeover must adopt executions in flight, not only pending weeks.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    wait_until(
        Duration::from_secs(60),
        "the first process to have executions in flight",
        || async { Ok(in_flight_leased_by(store, victim).await? > 0) },
    )
    .await?;
    let held = leased_by(store, victim).await?;
    let held_in_flight = in_flight_leased_by(store, victim).await?;
    let _ = daemons[0].0.kill();
    let _ = daemons[0].0.wait();
    let killed_at = Instant::now();
    wait_until(
        Duration::from_secs(120),
        "the takeover of collections with executions in flight",
        || async { Ok(in_flight_leased_by(store, victim).await? == 0) },
    )
    .await?;
    let in_flight = killed_at.elapsed();
    wait_until(Duration::from_secs(300), "the takeover", || async {
        Ok(leased_by(store, victim).await? == 0)
    })
    .await?;
    Ok(Takeover {
        held,
        held_in_flight,
        in_flight,
        all: killed_at.elapsed(),
    })
}

/// Waits for each of `daemons` to exit (they exit when idle), 600 s at the most each.
async fn wait_for_survivors(daemons: &mut [Daemon]) -> Result<(), BenchError> {
    for daemon in daemons {
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
    Ok(())
}

/// The scenario's printed line, with duplicate creates and slot-limit violations as the
/// simulator counted them.
fn report(
    layout: Layout,
    takeover: &Takeover,
    elapsed: Duration,
    (done, total): (usize, usize),
    stats: &SimulatorStats,
) -> String {
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
    format!(
        "multi-process [postgres]: {PROCESSES} processes, {}, one killed (SIGKILL) holding {} collections \
         ({} with executions in flight): takeover {:.2} s of those in flight (lease {LEASE_SECONDS} s, \
         target <= {} s), all taken over after {:.2} s; slot-limit violations {violations} \
         (peak {peak}/{LIMIT} per instance), duplicate creates {duplicates}, weeks completed {done}/{total}, \
         wall {:.1} s",
        layout.describe(),
        takeover.held,
        takeover.held_in_flight,
        takeover.in_flight.as_secs_f64(),
        LEASE_SECONDS + 5,
        takeover.all.as_secs_f64(),
        elapsed.as_secs_f64()
    )
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
    Ok(store
        .open_collections_leased_like(&format!("%:{pid}:%"))
        .await?)
}

/// Of those, the collections with weeks in flight (submitted to AMC or downloading).
async fn in_flight_leased_by(store: &Store, pid: u32) -> Result<i64, BenchError> {
    let sql = "SELECT COUNT(*) FROM report_data_collections c \
               WHERE c.lease_owner LIKE $1 AND c.status IN ($2, $3) \
               AND EXISTS (SELECT 1 FROM report_data_weeks w \
                 WHERE w.collection_id = c.id AND w.status IN ($4, $5, $6))";
    let pattern = format!("%:{pid}:%");
    Ok(crate::store::with_pool!(store, |pool| sqlx::query_scalar(
        sql
    )
    .bind(&pattern)
    .bind(CollectionStatus::Pending.as_str())
    .bind(CollectionStatus::Running.as_str())
    .bind(WeekStatus::Submitting.as_str())
    .bind(WeekStatus::Running.as_str())
    .bind(WeekStatus::Downloading.as_str())
    .fetch_one(pool)
    .await)?)
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
