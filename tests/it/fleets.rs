//! Fleets (one workflow on several instances), plans (`--dry-run`) and reuse of stored weeks,
//! driven through the real binary with the daemon in-process against the simulator, on SQLite
//! and Postgres.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::pipeline::{run_until_idle, settings};
use crate::support::{assert_usage_error, stdout_of, Backend, TestDb};
use amc_collector::ids::CollectionId;
use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::Store;
use serde_json::Value;

const INSTANCES: [&str; 3] = ["amcfleet01", "amcfleet02", "amcfleet03"];

async fn simulator() -> SimulatorHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 30,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    };
    simulator::start(bind, config).await.unwrap()
}

/// A database with the three instances and workflow `weekly`, added through the CLI.
async fn catalog(backend: Backend) -> TestDb {
    let db = TestDb::new(backend).await;
    std::fs::write(
        db.path("weekly.sql"),
        "SELECT campaign, SUM(impressions) FROM t\nWHERE d >= '{{start_date}}' AND d <= '{{end_date}}'\nGROUP BY 1;\n",
    )
    .unwrap();
    for (n, instance) in INSTANCES.iter().enumerate() {
        let advertiser = format!("ENTITYFLEET{n}");
        stdout_of(&db.run(&[
            "instance",
            "add",
            "--instance-id",
            instance,
            "--advertiser-id",
            &advertiser,
            "--marketplace-id",
            "ATVPDKIKX0DER",
        ]));
    }
    stdout_of(&db.run(&[
        "workflow",
        "add",
        "--name",
        "weekly",
        "--sql-file",
        "weekly.sql",
    ]));
    db
}

fn json_of(db: &TestDb, args: &[&str]) -> Value {
    serde_json::from_str(&stdout_of(&db.run(args))).unwrap()
}

/// `collection create --instances ... --json`: the fleet id and its collections by instance.
fn create_fleet(db: &TestDb, weeks: &str) -> (String, Vec<(String, CollectionId)>) {
    let created = json_of(
        db,
        &[
            "collection",
            "create",
            "--workflow",
            "weekly",
            "--instances",
            &INSTANCES.join(","),
            "--weeks",
            weeks,
            "--json",
        ],
    );
    let members = created["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["instance_id"].as_str().unwrap().to_string(),
                c["id"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    (created["fleet_id"].as_str().unwrap().to_string(), members)
}

async fn run_daemon(db: &TestDb, sim: &SimulatorHandle) {
    let settings = settings(&db.url, &sim.base_url(), &sim.token_url());
    run_until_idle(&db.store().await, &settings, Duration::from_secs(60)).await;
}

async fn status_of(store: &Store, id: CollectionId) -> CollectionStatus {
    store.collection(id).await.unwrap().unwrap().status
}

async fn a_fleet_of_three_instances_runs_to_the_end_and_exports_each_row_with_its_instance(
    backend: Backend,
) {
    // Arrange
    let db = catalog(backend).await;
    let sim = simulator().await;
    let (fleet, members) = create_fleet(&db, "4");
    assert_eq!(members.len(), 3);

    // Act
    run_daemon(&db, &sim).await;

    // Assert: every member completed, one AMC run per week and instance.
    let store = db.store().await;
    for (_, id) in &members {
        assert_eq!(status_of(&store, *id).await, CollectionStatus::Completed);
    }
    assert_eq!(sim.stats().creates_total, 12);
    let shown = json_of(&db, &["fleet", "show", &fleet, "--json"]);
    let collections = shown["collections"].as_array().unwrap();
    let instances: Vec<&str> = collections
        .iter()
        .map(|c| c["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(instances, INSTANCES);
    assert!(collections.iter().all(|c| c["status"] == "completed"));
    let export = stdout_of(&db.run(&["fleet", "export", &fleet, "--format", "jsonl"]));
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut expected_rows = 0;
    for (_, id) in &members {
        for week in store.weeks_of(*id).await.unwrap() {
            expected_rows += week.row_count.unwrap();
        }
    }
    assert_eq!(lines.len() as i64, expected_rows);
    for instance in INSTANCES {
        assert!(
            lines.iter().any(|l| l["instance_id"] == instance),
            "no row of {instance}"
        );
    }
    let csv = stdout_of(&db.run(&["fleet", "export", &fleet]));
    assert!(
        csv.starts_with("instance_id,week_start,week_end,execution_id"),
        "{csv}"
    );
}

async fn fleet_controls_act_on_every_collection_of_the_fleet(backend: Backend) {
    // Arrange
    let db = catalog(backend).await;
    let (fleet, members) = create_fleet(&db, "3");
    let store = db.store().await;
    let all = |expected: CollectionStatus| {
        let store = store.clone();
        let members = members.clone();
        async move {
            for (instance, id) in &members {
                assert_eq!(status_of(&store, *id).await, expected, "{instance}");
            }
        }
    };

    // Act / Assert: each control reaches all three, by whole id and by prefix.
    stdout_of(&db.run(&["fleet", "pause", &fleet]));
    all(CollectionStatus::Paused).await;
    stdout_of(&db.run(&["fleet", "resume", &fleet[..8]]));
    all(CollectionStatus::Pending).await;
    let cancelled = stdout_of(&db.run(&["fleet", "cancel", &fleet]));
    assert_eq!(cancelled.lines().count(), 3, "{cancelled}");
    all(CollectionStatus::Cancelled).await;
    for (_, id) in &members {
        let weeks = store.weeks_of(*id).await.unwrap();
        assert!(weeks.iter().all(|w| w.status == WeekStatus::Cancelled));
    }
    // None of them can be resumed now: bad input, and nothing changes.
    assert_usage_error(&db.run(&["fleet", "resume", &fleet]), "cannot resume fleet");
    all(CollectionStatus::Cancelled).await;
}

/// The number of rows of every table of the database (the relations' schema included).
async fn row_counts(store: &Store) -> Vec<(String, i64)> {
    let tables: Vec<String> = match store {
        Store::Sqlite(pool) => sqlx::query_scalar(
            "SELECT '\"' || name || '\"' FROM sqlite_master WHERE type = 'table' ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) \
             FROM information_schema.tables WHERE table_type = 'BASE TABLE' \
             AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap(),
    };
    assert!(tables.len() > 5, "{tables:?}");
    let mut counts = Vec::new();
    for table in tables {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let count: i64 = match store {
            Store::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
            Store::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        };
        counts.push((table, count));
    }
    counts
}

async fn a_dry_run_writes_no_row_and_plans_every_instance(backend: Backend) {
    // Arrange: a collection of two weeks already waiting on the first instance.
    let db = catalog(backend).await;
    stdout_of(&db.run(&[
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        INSTANCES[0],
        "--weeks",
        "2",
    ]));
    let store = db.store().await;
    let before = row_counts(&store).await;

    // Act
    let fleet = db.run(&[
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instances",
        &INSTANCES.join(","),
        "--weeks",
        "52",
        "--dry-run",
        "--json",
    ]);
    let text = db.run(&[
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--all-instances",
        "--weeks",
        "52",
        "--dry-run",
    ]);
    let single = db.run(&[
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        INSTANCES[1],
        "--weeks",
        "52",
        "--dry-run",
    ]);

    // Assert
    assert_eq!(row_counts(&store).await, before);
    let plan: Value = serde_json::from_str(&stdout_of(&fleet)).unwrap();
    let instances = plan["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3);
    // The existing collection's two pending weeks are not stored yet: they are the queue.
    assert_eq!(instances[0]["queue"], 2);
    assert_eq!(instances[0]["stored"], 0);
    assert_eq!(instances[1]["queue"], 0);
    for instance in instances {
        assert_eq!(instance["weeks"], 52);
        assert_eq!(instance["executions"], 52);
        assert_eq!(instance["run_time"]["source"], "assumed");
    }
    assert_eq!(plan["total"]["executions"], 156);
    let text = stdout_of(&text);
    assert!(
        text.starts_with("plan (dry run, nothing written)"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2 + 3 + 1, "{text}");
    assert!(text.contains("156 AMC executions"), "{text}");
    assert_eq!(stdout_of(&single).lines().count(), 2 + 1 + 1);
}

async fn a_week_stored_already_is_reused_without_an_amc_execution(backend: Backend) {
    // Arrange: 4 weeks collected on the first instance.
    let db = catalog(backend).await;
    let sim = simulator().await;
    let first: CollectionId = stdout_of(&db.run(&[
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        INSTANCES[0],
        "--weeks",
        "4",
    ]))
    .parse()
    .unwrap();
    run_daemon(&db, &sim).await;
    assert_eq!(sim.stats().creates_total, 4);

    // Act: the plan, then a fleet over the same windows (plus a fifth, older week).
    let plan = json_of(
        &db,
        &[
            "collection",
            "create",
            "--workflow",
            "weekly",
            "--instances",
            &INSTANCES.join(","),
            "--weeks",
            "5",
            "--dry-run",
            "--json",
        ],
    );
    let (_, members) = create_fleet(&db, "5");
    run_daemon(&db, &sim).await;

    // Assert: the plan said 4 stored on the first instance; the fleet spent 1 + 5 + 5 runs.
    let planned: Vec<(i64, i64)> = plan["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["stored"].as_i64().unwrap(),
                p["executions"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(planned, [(4, 1), (0, 5), (0, 5)]);
    assert_eq!(sim.stats().creates_total, 4 + 11);
    let store = db.store().await;
    let reused = members[0].1;
    assert_eq!(status_of(&store, reused).await, CollectionStatus::Completed);
    let original = store.weeks_of(first).await.unwrap();
    let again = store.weeks_of(reused).await.unwrap();
    for week in &original {
        let copy = again
            .iter()
            .find(|w| w.week_start_date == week.week_start_date)
            .unwrap();
        // Lineage: the execution that produced the rows, with its AMC id, count and checksum.
        assert_eq!(copy.status, WeekStatus::Completed);
        assert_eq!(copy.execution_id, week.execution_id);
        assert_eq!(copy.amc_execution_id, week.amc_execution_id);
        assert_eq!(copy.row_count, week.row_count);
        assert_eq!(copy.data_checksum, week.data_checksum);
    }
    // Export serves the same rows for the reused weeks as for the original ones.
    let rows = |id: CollectionId| {
        let out =
            stdout_of(&db.run(&["collection", "export", &id.to_string(), "--format", "jsonl"]));
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let original_rows = rows(first);
    let first_start = original[0].week_start_date.to_string();
    let reused_rows: Vec<Value> = rows(reused)
        .into_iter()
        .filter(|r| r["week_start"].as_str().unwrap() >= first_start.as_str())
        .collect();
    assert!(!original_rows.is_empty());
    assert_eq!(reused_rows, original_rows);
}

async fn bad_fleet_input_exits_2_with_one_line_and_writes_nothing(backend: Backend) {
    // Arrange
    let db = catalog(backend).await;
    let store = db.store().await;
    let before = row_counts(&store).await;
    let create = |extra: &[&str]| {
        let mut args = vec![
            "collection",
            "create",
            "--workflow",
            "weekly",
            "--weeks",
            "3",
        ];
        args.extend_from_slice(extra);
        db.run(&args)
    };

    // Act / Assert
    assert_usage_error(
        &create(&["--instances", "amcfleet01,amcfleet02,amcfleet01"]),
        "names instance `amcfleet01` twice",
    );
    assert_usage_error(
        &create(&["--instances", "amcfleet01,amcnowhere"]),
        "unknown instance `amcnowhere`",
    );
    assert_usage_error(
        &create(&[
            "--instances",
            "amcfleet01,amcfleet02",
            "--instance",
            "amcfleet03",
        ]),
        "cannot be used with",
    );
    assert_usage_error(
        &create(&["--instances", "amcfleet01,,amcfleet02"]),
        "empty item",
    );
    assert_usage_error(&create(&[]), "give one of --instance, --instances");
    let unknown = "5d0c6a43-8f7e-4d8b-9b53-2f9a1c7e0b42";
    for action in [
        "show",
        "pause",
        "resume",
        "cancel",
        "retry-failed",
        "watch",
        "export",
    ] {
        assert_usage_error(&db.run(&["fleet", action, unknown]), "not found");
    }
    assert_usage_error(&db.run(&["fleet", "pause", "nope"]), "not a fleet UUID");
    assert_eq!(row_counts(&store).await, before);
}

crate::actix_on_both_backends!(
    a_fleet_of_three_instances_runs_to_the_end_and_exports_each_row_with_its_instance,
    fleet_controls_act_on_every_collection_of_the_fleet,
    a_dry_run_writes_no_row_and_plans_every_instance,
    a_week_stored_already_is_reused_without_an_amc_execution,
    bad_fleet_input_exits_2_with_one_line_and_writes_nothing,
);
