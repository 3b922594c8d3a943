//! Fleets (one workflow on several instances), plans (`--dry-run`) and reuse of stored weeks,
//! driven through the real binary with the daemon in-process against the simulator, on SQLite
//! and Postgres.

mod plans;

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::pipeline::{run_until_idle, settings};
use crate::support::{assert_usage_error, stdout_of, Backend, TestDb};
use amc_collector::ids::CollectionId;
use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::Store;
use plans::row_counts;
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
    let matrix = stdout_of(&db.run(&["fleet", "show", &fleet]));
    for instance in INSTANCES {
        let line = matrix.lines().find(|l| l.starts_with(instance)).unwrap();
        assert!(line.ends_with("  ####"), "{matrix}");
    }
    // Every member ended completed: `watch` says so for each and exits 0 at once.
    let watched = db.run(&["fleet", "watch", &fleet]);
    assert_eq!(watched.status.code(), Some(0));
    assert_eq!(stdout_of(&watched).matches("completed").count(), 3);
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
    let retried = stdout_of(&db.run(&["fleet", "retry-failed", &fleet]));
    assert_eq!(retried.matches("0 failed weeks back to pending").count(), 3);
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
    bad_fleet_input_exits_2_with_one_line_and_writes_nothing,
);
