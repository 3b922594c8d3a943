//! Plans (`collection create --dry-run`) and reuse of weeks stored already.

use amc_collector::ids::CollectionId;
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::Store;
use serde_json::Value;

use super::{catalog, create_fleet, json_of, run_daemon, simulator, status_of, INSTANCES};
use crate::support::{stdout_of, Backend};

/// The number of rows of every table of the database (the relations' schema included).
pub(super) async fn row_counts(store: &Store) -> Vec<(String, i64)> {
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
    // The workflow's typed relation holds the reused weeks' rows too.
    let typed = relation_rows(&store, reused).await;
    let expected: i64 = again.iter().map(|w| w.row_count.unwrap()).sum();
    assert_eq!(typed, expected);
}

/// Rows of the `weekly` workflow's typed relation belonging to collection `id`.
async fn relation_rows(store: &Store, id: CollectionId) -> i64 {
    match store {
        Store::Sqlite(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM amc_results_weekly WHERE collection_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap()
        }
        Store::Postgres(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM amc_results.weekly WHERE collection_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
                .unwrap()
        }
    }
}

async fn weeks_stored_with_other_query_parameters_are_not_reused(backend: Backend) {
    // Arrange: a workflow with a parameter, 3 weeks of it collected for market US.
    let db = catalog(backend).await;
    let sim = simulator().await;
    std::fs::write(
        db.path("market.sql"),
        "SELECT campaign, SUM(impressions) FROM t\nWHERE d >= '{{start_date}}' AND d <= '{{end_date}}' \
         AND marketplace = {{market}}\nGROUP BY 1;\n",
    )
    .unwrap();
    stdout_of(&db.run(&[
        "workflow",
        "add",
        "--name",
        "market",
        "--sql-file",
        "market.sql",
    ]));
    let create = |market: &str, dry_run: bool| {
        let param = format!("market={market}");
        let mut args = vec![
            "collection",
            "create",
            "--workflow",
            "market",
            "--instance",
            INSTANCES[0],
            "--weeks",
            "3",
            "--param",
            &param,
            "--json",
        ];
        if dry_run {
            args.push("--dry-run");
        }
        json_of(&db, &args)
    };
    create("US", false);
    run_daemon(&db, &sim).await;
    assert_eq!(sim.stats().creates_total, 3);

    // Act: the plan and the collection of the same weeks for market DE, then for US again.
    let plan_de = create("DE", true);
    let plan_us = create("US", true);
    let de = create("DE", false);
    let us = create("US", false);
    run_daemon(&db, &sim).await;

    // Assert: DE's weeks are new executions (3 more runs); US's are the stored ones (none).
    assert_eq!(plan_de["instances"][0]["stored"], 0);
    assert_eq!(plan_us["instances"][0]["stored"], 3);
    assert_eq!(de["reused_weeks"], 0, "{de}");
    assert_eq!(us["reused_weeks"], 3, "{us}");
    assert_eq!(sim.stats().creates_total, 3 + 3);
    let received = sim.received();
    assert_eq!(
        received
            .iter()
            .filter(|r| r.sql_query.as_deref().is_some_and(|q| q.contains("'DE'")))
            .count(),
        3
    );
}

crate::actix_on_both_backends!(
    a_dry_run_writes_no_row_and_plans_every_instance,
    weeks_stored_with_other_query_parameters_are_not_reused,
    a_week_stored_already_is_reused_without_an_amc_execution,
);
