//! Several real `run` processes share one PostgreSQL: collections are leased, one process is
//! killed with SIGKILL, the others take its work over after the lease expires, and at the end no
//! week is lost, no window was created twice and the instance's 10-slot limit was never exceeded.

use std::time::{Duration, Instant};

use crate::support::procs::{daemon_env, spawn_run, spawn_with_args, ChildGuard, Simulator};
use crate::support::{self, procs, wait_until};
use crate::support::{stdout_of, Backend, TestDb};
use amc_collector::ids::CollectionId;
use amc_collector::status::WeekStatus;
use sqlx::Connection;

/// Given to `procs::daemon_env`.
const MAX_IN_FLIGHT: u64 = 10;
const INSTANCE: &str = "amcmulti1";
const COLLECTIONS: usize = 9;
const WEEKS_EACH: usize = 4;
const LEASE_SECONDS: u64 = 2;

fn setup(db: &TestDb, env: &[(&'static str, String)]) -> Vec<CollectionId> {
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(support::binary());
        command
            .args(args)
            .current_dir(db.dir.path())
            .env("AMC_COLLECTOR__DATABASE__URL", &db.url);
        for (key, value) in env {
            command.env(key, value);
        }
        stdout_of(&command.output().unwrap())
    };
    run(&[
        "instance",
        "add",
        "--instance-id",
        INSTANCE,
        "--advertiser-id",
        "ENTITYM",
        "--marketplace-id",
        "ATVPDKIKX0DER",
    ]);
    // One workflow per collection: the same SQL over the same windows would be the same AMC run.
    (0..COLLECTIONS)
        .map(|n| {
            let file = format!("weekly{n}.sql");
            let sql =
                format!("SELECT campaign, {n} AS variant FROM t WHERE d >= '{{{{start_date}}}}'");
            std::fs::write(db.path(&file), sql).unwrap();
            let name = format!("weekly{n}");
            run(&["workflow", "add", "--name", &name, "--sql-file", &file]);
            let weeks = WEEKS_EACH.to_string();
            run(&[
                "collection",
                "create",
                "--workflow",
                &name,
                "--instance",
                INSTANCE,
                "--weeks",
                &weeks,
            ])
            .parse()
            .unwrap()
        })
        .collect()
}

/// Collections whose lease names the given process id.
async fn leased_by(db: &TestDb, pid: u32) -> i64 {
    count_for(db, pid, "SELECT COUNT(*) FROM report_data_collections WHERE lease_owner LIKE $1 AND status IN ('pending', 'running')").await
}

/// Weeks in flight (submitted to AMC, not yet stored) in collections leased by the process.
async fn in_flight_under(db: &TestDb, pid: u32) -> i64 {
    count_for(db, pid, "SELECT COUNT(*) FROM report_data_weeks w JOIN report_data_collections c ON c.id = w.collection_id WHERE c.lease_owner LIKE $1 AND w.status IN ('submitting', 'running', 'downloading')").await
}

/// `sql`'s count, its `$1` bound to the lease owners of process `pid` (`host:pid:suffix`).
async fn count_for(db: &TestDb, pid: u32, sql: &str) -> i64 {
    let store = db.store().await;
    let amc_collector::store::Store::Postgres(pool) = &store else {
        unreachable!("multi-process runs on Postgres")
    };
    sqlx::query_scalar(sql)
        .bind(format!("%:{pid}:%"))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn three_processes_share_the_work_and_take_over_a_killed_ones_collections() {
    // Arrange
    let db = TestDb::new(Backend::Postgres).await;
    let sim = Simulator::start(
        db.dir.path(),
        &[
            "--pending-ms",
            "20",
            "--running-ms",
            "400",
            "--publishing-ms",
            "20",
            "--duration-jitter-pct",
            "20",
        ]
        .map(String::from),
    );
    let mut env = daemon_env(&sim, MAX_IN_FLIGHT);
    env.push((
        "AMC_COLLECTOR__SCHEDULER__LEASE_SECONDS",
        LEASE_SECONDS.to_string(),
    ));
    env.push(("AMC_COLLECTOR__SCHEDULER__MAX_COLLECTIONS", "4".into()));
    env.push(("AMC_COLLECTOR__SCHEDULER__CLAIM_BATCH", "2".into()));
    let ids = setup(&db, &env);

    // Act: three daemons; the first is killed once it holds collections with work in flight.
    let mut runs: Vec<_> = (0..3).map(|round| spawn_run(&db, &env, round)).collect();
    let victim = runs[0].pid();
    let what = "the first process has weeks in flight in collections it leased";
    wait_until(what, Duration::from_secs(30), || async {
        in_flight_under(&db, victim).await > 0
    })
    .await;
    let held_at_kill = leased_by(&db, victim).await;
    runs[0].kill();
    let killed_at = Instant::now();
    let limit = Duration::from_secs(LEASE_SECONDS + 10);
    wait_until("the others take over its collections", limit, || async {
        leased_by(&db, victim).await == 0
    })
    .await;
    let takeover = killed_at.elapsed();
    for run in runs.iter_mut().skip(1) {
        let status = run
            .wait_for(Duration::from_secs(120))
            .await
            .expect("a survivor did not finish");
        assert!(status.success(), "a survivor failed: {status:?}");
    }

    // Assert
    let store = db.store().await;
    let stats = sim.stats().await;
    let mut completed = 0;
    for id in &ids {
        for week in store.weeks_of(*id).await.unwrap() {
            assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
            assert!(week.execution_id.is_some() && week.data_checksum.is_some());
            completed += 1;
        }
    }
    let creates = stats["creates_per_window"].as_object().unwrap();
    let duplicates = creates.values().filter(|n| n.as_u64() != Some(1)).count();
    let peak = stats["max_in_flight_per_instance"][INSTANCE]
        .as_u64()
        .unwrap();
    println!(
        "multi-process: 3 processes, 1 killed holding {held_at_kill} collections; takeover after {:.2}s \
         (lease {LEASE_SECONDS}s); weeks completed {completed}/{}; duplicate creates {duplicates}; \
         peak in flight {peak} (limit {MAX_IN_FLIGHT})",
        takeover.as_secs_f64(),
        COLLECTIONS * WEEKS_EACH
    );
    assert_eq!(completed, COLLECTIONS * WEEKS_EACH);
    assert_eq!(
        creates.len(),
        COLLECTIONS * WEEKS_EACH,
        "every window created"
    );
    if duplicates > 0 {
        for event in procs::warnings(db.dir.path(), 3) {
            println!("{event}");
        }
        for round in 0..3 {
            let log =
                std::fs::read_to_string(procs::log_path(db.dir.path(), round)).unwrap_or_default();
            let _ = std::fs::write(format!("/tmp/multi-run-{round}.log"), log);
        }
    }
    assert_eq!(duplicates, 0, "{creates:?}");
    assert!(peak <= MAX_IN_FLIGHT, "slot limit exceeded: {peak}");
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + 5),
        "takeover took {takeover:?}"
    );
    sim.stop();
}

#[tokio::test]
async fn a_second_process_on_one_sqlite_file_is_refused_with_a_clear_message() {
    let db = TestDb::new(Backend::Sqlite).await;
    let sim = Simulator::start(db.dir.path(), &["--running-ms", "5000"].map(String::from));
    let env = daemon_env(&sim, MAX_IN_FLIGHT);
    setup(&db, &env);
    let mut first = spawn_run(&db, &env, 0);
    // Wait until the first holds the lock (it has claimed its collections).
    let store = db.store().await;
    wait_until(
        "the first process starts",
        Duration::from_secs(20),
        || async {
            let weeks = store
                .weeks_of(store.list_collections().await.unwrap()[0].id)
                .await
                .unwrap();
            weeks.iter().any(|w| w.status != WeekStatus::Pending)
        },
    )
    .await;

    let mut second = spawn_run(&db, &env, 1);
    let status = second
        .wait_for(Duration::from_secs(20))
        .await
        .expect("second process kept running");

    assert_eq!(status.code(), Some(2));
    let log = std::fs::read_to_string(procs::log_path(db.dir.path(), 1)).unwrap();
    assert!(log.contains("SQLite serves one process"), "{log}");
    first.kill();
    sim.stop();
}

/// The process named in SQLite's process lock (owners are `host:pid:suffix`), if any.
async fn lock_holder_pid(db: &TestDb) -> Option<u32> {
    let mut connection = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let owner: Option<String> = sqlx::query_scalar("SELECT owner FROM process_lock WHERE id = 1")
        .fetch_optional(&mut connection)
        .await
        .unwrap();
    owner.and_then(|owner| owner.split(':').nth(1)?.parse().ok())
}

/// `run` without `--exit-when-idle`: it runs until stopped, so the winner of a race is still
/// running when the loser has exited.
fn spawn_daemon(db: &TestDb, env: &[(&'static str, String)], round: usize) -> ChildGuard {
    spawn_with_args(db, env, round, &["run", "--log-format", "json"])
}

#[tokio::test]
async fn two_daemons_started_at_the_same_moment_on_one_sqlite_file_let_exactly_one_run() {
    // Arrange: executions that never finish, so the winner keeps running.
    let db = TestDb::new(Backend::Sqlite).await;
    let sim = Simulator::start(db.dir.path(), &["--running-ms", "600000"].map(String::from));
    let env = daemon_env(&sim, MAX_IN_FLIGHT);
    setup(&db, &env);

    for round in 0..4 {
        // Act: the test holds SQLite's write lock while both daemons start, so both reach the
        // lock at once and are released together (with a SELECT-then-upsert both won).
        let mut blocker = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut blocker)
            .await
            .unwrap();
        let mut pair = [
            spawn_daemon(&db, &env, 2 * round),
            spawn_daemon(&db, &env, 2 * round + 1),
        ];
        // Scenario time, not a wait for a condition: both daemons are given time to reach the
        // held lock, which nothing outside them can observe.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
        drop(blocker);

        // Assert: one exits with the refusal, the other holds the lock and keeps running.
        let what = format!("one daemon of round {round} is refused");
        let (loser, status) = wait_until(what, Duration::from_secs(40), || {
            let exited = pair
                .iter_mut()
                .enumerate()
                .find_map(|(n, child)| child.exited().map(|status| (n, status)));
            std::future::ready(exited)
        })
        .await;
        let log =
            std::fs::read_to_string(procs::log_path(db.dir.path(), 2 * round + loser)).unwrap();
        assert_eq!(status.code(), Some(2), "round {round}: {log}");
        assert!(log.contains("SQLite serves one process"), "{log}");
        let winner = &mut pair[1 - loser];
        assert!(
            winner.exited().is_none(),
            "round {round}: the winner exited too"
        );
        assert_eq!(
            lock_holder_pid(&db).await,
            Some(winner.pid()),
            "round {round}"
        );

        // A graceful stop frees the lock; a kill leaves a dead holder the next round replaces.
        if round % 2 == 0 {
            winner.terminate();
            let status = winner.wait_for(Duration::from_secs(30)).await;
            assert_eq!(status.and_then(|s| s.code()), Some(0), "round {round}");
        } else {
            winner.kill();
        }
    }
    sim.stop();
}

#[tokio::test]
async fn a_daemon_whose_sqlite_lock_is_taken_by_another_process_stops_and_exits_non_zero() {
    // Arrange: renewals every second.
    let db = TestDb::new(Backend::Sqlite).await;
    let sim = Simulator::start(db.dir.path(), &["--running-ms", "600000"].map(String::from));
    let mut env = daemon_env(&sim, MAX_IN_FLIGHT);
    env.push(("AMC_COLLECTOR__SCHEDULER__LEASE_SECONDS", "3".into()));
    setup(&db, &env);
    let mut daemon = spawn_daemon(&db, &env, 0);
    wait_until(
        "the daemon takes the lock",
        Duration::from_secs(30),
        || async { lock_holder_pid(&db).await == Some(daemon.pid()) },
    )
    .await;

    // Act: another process (on another host, so trusted until expiry) takes the lock over.
    let mut connection = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE process_lock SET owner = 'elsewhere:4242:0badcafe', expires_at = '2999-01-01T00:00:00+00:00' WHERE id = 1")
        .execute(&mut connection)
        .await
        .unwrap();

    // Assert
    let status = daemon
        .wait_for(Duration::from_secs(30))
        .await
        .expect("the daemon kept running without its lock");
    let log = std::fs::read_to_string(procs::log_path(db.dir.path(), 0)).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let last = log.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: lost the SQLite process lock to another amc-collector process (elsewhere:4242:0badcafe)"),
        "{log}"
    );
    sim.stop();
}
