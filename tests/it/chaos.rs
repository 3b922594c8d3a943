//! Chaos: the real `amc-collector run --exit-when-idle` is interrupted again and again (SIGKILL,
//! or SIGTERM) at seeded random moments while it backfills a 16-week collection from the real
//! `simulate-amc` process with faults switched on; at the end no week is lost, no window was
//! created twice on AMC and no result row is stored twice, on SQLite and on PostgreSQL.
//!
//! The seed is printed; rerun one case with `AMC_CHAOS_SEED=<seed>`.

mod verify;

use std::time::{Duration, Instant};

use amc_collector::ids::CollectionId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::procs::{daemon_env, describe, spawn_run, warnings, Simulator};
use crate::support::{stdout_of, wait_until, Backend, TestDb};

const INSTANCE: &str = "amcchaos1";
const SQL: &str = "SELECT campaign, SUM(impressions) AS impressions\nFROM sponsored_ads_traffic\n\
                   WHERE event_date >= '{{start_date}}' AND event_date <= '{{end_date}}'\nGROUP BY 1;";
const WEEKS: usize = 16;
/// `AMC_COLLECTOR__AMC__MAX_IN_FLIGHT_PER_INSTANCE` given to every run (given to `procs::daemon_env`).
const MAX_IN_FLIGHT: u64 = 4;
/// Interruptions planned; at least `MIN_INTERRUPTIONS` must land before the collection is done.
const PLANNED_INTERRUPTIONS: usize = 6;
const MIN_INTERRUPTIONS: usize = 5;
/// Range of the seeded delay between a start and its interruption, in milliseconds.
const DELAY_MS: std::ops::RangeInclusive<u64> = 50..=1_500;
/// Bound of the whole test, interruptions and the final run included.
const TEST_DEADLINE: Duration = Duration::from_secs(120);
/// `AMC_COLLECTOR__SCHEDULER__SHUTDOWN_DEADLINE_SECONDS` (5) plus a second of slack.
const TERM_EXIT_LIMIT: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interruption {
    Kill,
    Term,
}

/// One week holds the single AMC slot for at least (450 ms − 10 %) + 100 ms, so the 16 weeks need
/// more than 8 s of wall time: longer than 5 interruptions of at most 1.5 s each, which makes
/// "at least 5 interruptions before the end" certain rather than likely. Four weeks are in
/// flight (one RUNNING, three PENDING), so interruptions land in every phase.
fn simulator_flags(seed: u64) -> Vec<String> {
    [
        "--pending-ms",
        "50",
        "--running-ms",
        "450",
        "--publishing-ms",
        "100",
        "--duration-jitter-pct",
        "10",
        "--max-running-per-instance",
        "1",
        "--rate-429",
        "0.08",
        "--retry-after-secs",
        "0",
        "--rate-5xx",
        "0.05",
        "--omit-id-rate",
        "0.25",
        "--url-ttl-ms",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--seed".to_string(), seed.to_string()])
    .collect()
}

fn seed() -> u64 {
    match std::env::var("AMC_CHAOS_SEED") {
        Ok(raw) => raw.parse().expect("AMC_CHAOS_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// Catalog and collection through the CLI, as a user would create them.
fn create_collection(db: &TestDb, env: &[(&'static str, String)]) -> CollectionId {
    create_collection_of(db, env, WEEKS)
}

/// `create_collection` with `weeks` weeks.
fn create_collection_of(db: &TestDb, env: &[(&'static str, String)], weeks: usize) -> CollectionId {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    std::fs::write(db.path("weekly.sql"), SQL).unwrap();
    stdout_of(&db.run_with_env(
        &[
            "instance",
            "add",
            "--instance-id",
            INSTANCE,
            "--advertiser-id",
            "ENTITYCHAOS",
            "--marketplace-id",
            "ATVPDKIKX0DER",
        ],
        &env,
    ));
    stdout_of(&db.run_with_env(
        &[
            "workflow",
            "add",
            "--name",
            "weekly",
            "--sql-file",
            "weekly.sql",
        ],
        &env,
    ));
    let weeks = weeks.to_string();
    let id = stdout_of(&db.run_with_env(
        &[
            "collection",
            "create",
            "--workflow",
            "weekly",
            "--instance",
            INSTANCE,
            "--weeks",
            &weeks,
        ],
        &env,
    ));
    id.parse()
        .unwrap_or_else(|e| panic!("collection id {id}: {e:?}"))
}

/// WARN/ERROR events of every run counted by level and message, most frequent first.
fn event_counts(db: &TestDb, rounds: usize) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for event in warnings(db.dir.path(), rounds) {
        *counts
            .entry(format!("{} {}", event.level, event.message))
            .or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    counts
        .iter()
        .map(|(message, n)| format!("{n}× {message}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The last `n` WARN/ERROR events of every run, for failure messages.
fn log_digest(db: &TestDb, rounds: usize, n: usize) -> String {
    let lines: Vec<String> = warnings(db.dir.path(), rounds)
        .iter()
        .map(ToString::to_string)
        .collect();
    let skip = lines.len().saturating_sub(n);
    format!(
        "{} WARN/ERROR events in the daemon logs; last {}:\n{}",
        lines.len(),
        lines.len() - skip,
        lines[skip..].join("\n")
    )
}

async fn interrupted_runs_lose_and_duplicate_nothing(backend: Backend, how: Interruption) {
    // Arrange
    let seed = seed();
    println!("chaos {how:?} on {backend:?}: seed {seed} (rerun with AMC_CHAOS_SEED={seed})");
    let db = TestDb::new(backend).await;
    let sim = Simulator::start(db.dir.path(), &simulator_flags(seed));
    let env = daemon_env(&sim, MAX_IN_FLIGHT);
    let collection_id = create_collection(&db, &env);
    let store = db.store().await;
    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + TEST_DEADLINE;

    // Act: start, interrupt after a seeded delay, restart.
    let mut rounds = 0;
    let mut interruptions = 0;
    let mut slowest_term_exit = Duration::ZERO;
    let mut finished_early = false;
    for _ in 0..PLANNED_INTERRUPTIONS {
        let delay = Duration::from_millis(rng.gen_range(DELAY_MS));
        let mut run = spawn_run(&db, &env, rounds);
        rounds += 1;
        if let Some(status) = run.wait_for(delay).await {
            assert!(
                status.success(),
                "run #{} ended by itself with {}\n{}",
                rounds - 1,
                describe(&status),
                log_digest(&db, rounds, 30)
            );
            finished_early = true;
            break;
        }
        match how {
            Interruption::Kill => {
                run.kill();
            }
            Interruption::Term => {
                let sent = Instant::now();
                run.terminate();
                let status = run.wait_for(TERM_EXIT_LIMIT).await.unwrap_or_else(|| {
                    panic!(
                        "run #{} did not exit within {TERM_EXIT_LIMIT:?} of SIGTERM (sent {delay:?} after start)\n{}",
                        rounds - 1,
                        log_digest(&db, rounds, 30)
                    )
                });
                assert_eq!(
                    status.code(),
                    Some(0),
                    "run #{} answered SIGTERM (sent {delay:?} after start) with {}\n{}",
                    rounds - 1,
                    describe(&status),
                    log_digest(&db, rounds, 30)
                );
                slowest_term_exit = slowest_term_exit.max(sent.elapsed());
            }
        }
        interruptions += 1;
        let phases = verify::week_phases(&store, collection_id).await;
        println!(
            "  run #{}: {how:?} after {delay:?}; weeks {phases:?}",
            rounds - 1
        );
    }
    if !finished_early {
        let mut last = spawn_run(&db, &env, rounds);
        rounds += 1;
        let status = last
            .wait_for(deadline.saturating_duration_since(Instant::now()))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "the final run did not finish within the test deadline\n{}",
                    log_digest(&db, rounds, 40)
                )
            });
        assert!(
            status.success(),
            "final run: {}\n{}",
            describe(&status),
            log_digest(&db, rounds, 40)
        );
    }

    // Assert
    assert!(
        interruptions >= MIN_INTERRUPTIONS,
        "only {interruptions} interruptions landed before the collection finished (seed {seed})"
    );
    let stats = sim.stats().await;
    sim.stop();
    let context = format!(
        "seed {seed}, {interruptions} interruptions\n{}",
        log_digest(&db, rounds, 40)
    );
    let figures = verify::assert_nothing_lost_or_duplicated(
        &store,
        collection_id,
        INSTANCE,
        SQL,
        WEEKS,
        &stats,
        &context,
    )
    .await;
    let term = match how {
        Interruption::Term => format!(", slowest SIGTERM exit {slowest_term_exit:?}"),
        Interruption::Kill => String::new(),
    };
    println!(
        "chaos summary [{backend:?}, {how:?}, seed {seed}]: {interruptions} interruptions survived \
         ({rounds} runs){term}; weeks {} completed, weeks lost {}, duplicate creates {}, \
         duplicate rows {}, rows {}; most in flight on AMC {}; faults injected {:?}; daemon WARN/ERROR events: {}",
        figures.weeks - figures.weeks_lost,
        figures.weeks_lost,
        figures.duplicate_creates,
        figures.duplicate_rows,
        figures.rows,
        figures.max_in_flight,
        figures.faults,
        event_counts(&db, rounds),
    );
    // Checked last so the figures above are printed and every loss/duplication check has run.
    assert!(
        figures.max_in_flight <= MAX_IN_FLIGHT,
        "AMC saw {} executions of {INSTANCE} in flight at once; the daemon's limit is \
         {MAX_IN_FLIGHT} (AMC_COLLECTOR__AMC__MAX_IN_FLIGHT_PER_INSTANCE) and must hold across \
         restarts\n{context}",
        figures.max_in_flight
    );
}

async fn sigkill_at_random_moments_loses_and_duplicates_nothing(backend: Backend) {
    interrupted_runs_lose_and_duplicate_nothing(backend, Interruption::Kill).await
}

async fn sigterm_at_random_moments_exits_zero_and_loses_and_duplicates_nothing(backend: Backend) {
    interrupted_runs_lose_and_duplicate_nothing(backend, Interruption::Term).await
}

/// Size of the big result: on a debug build its download and storage take seconds, so the kill
/// lands between the first rows being staged and the week completing.
const BIG_RESULT_KB: u64 = 24 * 1024;

/// Rows in `report_data_rows` of the collection: (all, distinct (week, file, row)).
async fn row_counts(store: &amc_collector::store::Store, id: CollectionId) -> (i64, i64) {
    let sql = "SELECT COUNT(*), (SELECT COUNT(*) FROM (SELECT DISTINCT week_id, file_index, \
               row_index FROM report_data_rows WHERE collection_id = $1) AS d) \
               FROM report_data_rows WHERE collection_id = $1";
    match store {
        amc_collector::store::Store::Postgres(pool) => {
            sqlx::query_as(sql).bind(id).fetch_one(pool).await.unwrap()
        }
        amc_collector::store::Store::Sqlite(pool) => {
            sqlx::query_as(sql).bind(id).fetch_one(pool).await.unwrap()
        }
    }
}

async fn sigkill_during_a_big_download_then_restart_stores_every_row_exactly_once(
    backend: Backend,
) {
    // Arrange: one week whose result is 24 MiB of CSV in two files.
    let db = TestDb::new(backend).await;
    let flags: Vec<String> = [
        "--pending-ms",
        "0",
        "--running-ms",
        "0",
        "--publishing-ms",
        "0",
        "--large-result-files",
        "2",
        "--large-result-kb",
        &BIG_RESULT_KB.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let sim = Simulator::start(db.dir.path(), &flags);
    let env = daemon_env(&sim, MAX_IN_FLIGHT);
    let collection_id = create_collection_of(&db, &env, 1);
    let store = db.store().await;

    // Act: SIGKILL once rows are staged (SQLite batches, or the first file's COPY on Postgres)
    // and before the week completes; then run again to the end.
    let mut run = spawn_run(&db, &env, 0);
    wait_until("a row is staged", Duration::from_secs(90), || {
        if let Some(status) = run.exited() {
            panic!("the run ended before it was killed: {}", describe(&status));
        }
        let store = &store;
        async move { row_counts(store, collection_id).await.0 > 0 }
    })
    .await;
    run.kill();
    let killed = crate::support::pipeline::weeks(&store, collection_id).await[0].clone();
    let staged_at_kill = row_counts(&store, collection_id).await.0;
    let mut again = spawn_run(&db, &env, 1);
    let status = again
        .wait_for(Duration::from_secs(180))
        .await
        .expect("the second run finishes");
    assert!(status.success(), "{}", describe(&status));

    // Assert: killed mid-download, then every row stored exactly once.
    assert_eq!(
        killed.status,
        amc_collector::status::WeekStatus::Downloading,
        "{killed:?}"
    );
    let (rows, checksum) = amc_collector::simulator::large_result_summary(BIG_RESULT_KB * 1024, 2);
    assert!(
        staged_at_kill > 0 && staged_at_kill < rows,
        "{staged_at_kill}"
    );
    let week = crate::support::pipeline::weeks(&store, collection_id).await[0].clone();
    assert_eq!(
        week.status,
        amc_collector::status::WeekStatus::Completed,
        "{week:?}"
    );
    assert_eq!(week.row_count, Some(rows));
    assert_eq!(week.data_checksum.as_deref(), Some(checksum.as_str()));
    assert_eq!(row_counts(&store, collection_id).await, (rows, rows));
    let stats = sim.stats().await;
    assert_eq!(
        stats["creates_total"], 1,
        "the execution was downloaded again, not resubmitted"
    );
    sim.stop();
}

crate::on_both_backends!(
    sigkill_at_random_moments_loses_and_duplicates_nothing,
    sigterm_at_random_moments_exits_zero_and_loses_and_duplicates_nothing,
    sigkill_during_a_big_download_then_restart_stores_every_row_exactly_once,
);
