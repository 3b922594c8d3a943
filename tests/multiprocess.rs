//! Several real `run` processes share one PostgreSQL: collections are leased, one process is
//! killed with SIGKILL, the others take its work over after the lease expires, and at the end no
//! week is lost, no window was created twice and the instance's 10-slot limit was never exceeded.

mod support;

// Shared with the chaos tests, which use more of it.
#[allow(dead_code)]
#[path = "chaos/procs.rs"]
mod procs;

use std::time::{Duration, Instant};

use amc_collector::ids::CollectionId;
use amc_collector::status::WeekStatus;
use procs::{daemon_env, spawn_run, Simulator};
use support::{stdout_of, Backend, TestDb};

/// Read by `procs::daemon_env`.
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
    let store = db.store().await;
    let amc_collector::store::Store::Postgres(pool) = &store else {
        unreachable!("multi-process runs on Postgres")
    };
    sqlx::query_scalar("SELECT COUNT(*) FROM report_data_collections WHERE lease_owner LIKE $1 AND status IN ('pending', 'running')")
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
    let mut env = daemon_env(&sim);
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
    let deadline = Instant::now() + Duration::from_secs(30);
    while leased_by(&db, victim).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the first process never claimed a collection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held_at_kill = leased_by(&db, victim).await;
    runs[0].kill();
    let killed_at = Instant::now();
    while leased_by(&db, victim).await > 0 {
        assert!(
            killed_at.elapsed() < Duration::from_secs(LEASE_SECONDS + 10),
            "no takeover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let env = daemon_env(&sim);
    setup(&db, &env);
    let mut first = spawn_run(&db, &env, 0);
    // Wait until the first holds the lock (it has claimed its collections).
    let store = db.store().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let weeks = store
            .weeks_of(store.list_collections().await.unwrap()[0].id)
            .await
            .unwrap();
        if weeks.iter().any(|w| w.status != WeekStatus::Pending) {
            break;
        }
        assert!(Instant::now() < deadline, "the first process never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

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
