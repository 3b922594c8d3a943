//! Each workflow's typed relation (`amc_results.weekly` / `amc_results_weekly`), on SQLite and
//! Postgres: it holds exactly what `collection export` gives, typed as inferred, widened in the
//! commit of the week that needs it, switched atomically by a rerun, rebuilt from stored rows;
//! export's own headers are never repeated by a result column.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::support::pipeline::{
    drive_to_downloading, fixture, run_until_idle, settings, staged_week, weeks, Fixture,
};
use crate::support::{stdout_of, Backend};
use amc_collector::ids::ExecutionId;
use amc_collector::simulator::{self, ResultContent, SimulatorConfig, SimulatorHandle};
use amc_collector::status::WeekStatus;
use amc_collector::store::model::Week;
use amc_collector::store::{Store, Transition, WorkflowSource};

const SQL: &str = "SELECT campaign FROM t WHERE d >= '{{start_date}}'";

async fn simulator() -> SimulatorHandle {
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 20,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    };
    simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// The relation's name on this backend.
fn relation(store: &Store) -> &'static str {
    match store {
        Store::Postgres(_) => "amc_results.weekly",
        Store::Sqlite(_) => "amc_results_weekly",
    }
}

/// Rows of a query whose columns are all read as text (NULL as "").
async fn texts(store: &Store, sql: &str) -> Vec<Vec<String>> {
    use sqlx::Row;
    let rows: Vec<Vec<String>> = match store {
        Store::Postgres(pool) => sqlx::query(sql)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.get::<Option<String>, _>(i).unwrap_or_default())
                    .collect()
            })
            .collect(),
        Store::Sqlite(pool) => sqlx::query(sql)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| row.get::<Option<String>, _>(i).unwrap_or_default())
                    .collect()
            })
            .collect(),
    };
    rows
}

/// (week start, execution, data) of every exported row, in export order.
async fn exported(fx: &Fixture) -> Vec<(String, ExecutionId, serde_json::Value)> {
    let mut rows = Vec::new();
    fx.store
        .export_rows(fx.collection_id, |row| {
            rows.push((row.week_start.to_string(), row.execution_id, row.data.0));
            Ok(())
        })
        .await
        .unwrap();
    rows
}

/// Per week: (week_start, rows, sum of impressions) through the relation.
async fn weekly_sums(store: &Store) -> Vec<Vec<String>> {
    let sql = format!(
        "SELECT CAST(week_start AS TEXT), CAST(COUNT(*) AS TEXT), CAST(SUM(impressions) AS TEXT) \
         FROM {} GROUP BY week_start ORDER BY week_start",
        relation(store)
    );
    texts(store, &sql).await
}

/// The same from the exported rows (the simulator's data, as `export` gives it).
async fn weekly_sums_of_export(fx: &Fixture) -> Vec<Vec<String>> {
    let mut sums: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for (week, _, data) in exported(fx).await {
        let entry = sums.entry(week).or_default();
        entry.0 += 1;
        entry.1 += data["impressions"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap();
    }
    sums.into_iter()
        .map(|(week, (n, sum))| vec![week, n.to_string(), sum.to_string()])
        .collect()
}

fn show(fx: &Fixture) -> serde_json::Value {
    let output = stdout_of(&fx.db.run(&["workflow", "show", "weekly", "--json"]));
    serde_json::from_str(&output).unwrap()
}

fn column_type(shown: &serde_json::Value, name: &str) -> String {
    shown["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["type"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no column {name} in {shown}"))
}

async fn backfill(backend: Backend, weeks: i64) -> (Fixture, SimulatorHandle) {
    let fx = fixture(backend, weeks, WorkflowSource::Sql(SQL.into())).await;
    let sim = simulator().await;
    run_until_idle(
        &fx.store,
        &settings(&fx.db.url, &sim.base_url(), &sim.token_url()),
        Duration::from_secs(60),
    )
    .await;
    (fx, sim)
}

async fn sums_and_counts_through_the_relation_equal_the_exported_simulator_data(backend: Backend) {
    // Arrange: a 6-week backfill against the simulator.
    let (fx, _sim) = backfill(backend, 6).await;
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert!(stored.iter().all(|w| w.status == WeekStatus::Completed));

    // Act
    let through_relation = weekly_sums(&fx.store).await;

    // Assert: the same weeks, counts and sums as export; types as inferred.
    let expected: Vec<Vec<String>> = weekly_sums_of_export(&fx).await;
    assert_eq!(through_relation, expected);
    let total: i64 = stored.iter().map(|w| w.row_count.unwrap()).sum();
    let counted: i64 = through_relation
        .iter()
        .map(|r| r[1].parse::<i64>().unwrap())
        .sum();
    assert_eq!(counted, total);
    let shown = show(&fx);
    assert_eq!(shown["relation"], relation(&fx.store));
    assert_eq!(column_type(&shown, "impressions"), "bigint");
    assert_eq!(column_type(&shown, "clicks"), "bigint");
    assert_eq!(column_type(&shown, "campaign"), "text");
    // AMC's own `week_start` column cannot pass for the week.
    assert_eq!(column_type(&shown, "result_week_start"), "date");
    assert_eq!(column_type(&shown, "week_start"), "date");
}

async fn an_export_s_week_start_is_the_week_even_when_a_result_column_is_named_week_start(
    backend: Backend,
) {
    // Arrange: the simulator's results have a column named `week_start`.
    let (fx, _sim) = backfill(backend, 2).await;
    let id = fx.collection_id.to_string();

    // Act
    let csv_text = stdout_of(&fx.db.run(&["collection", "export", &id, "--format", "csv"]));

    // Assert: every header once; the fixed week_start is the week's, AMC's is renamed.
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let unique: std::collections::HashSet<&String> = header.iter().collect();
    assert_eq!(unique.len(), header.len(), "{header:?}");
    assert_eq!(header[0], "week_start");
    assert!(
        header.contains(&"result_week_start".to_string()),
        "{header:?}"
    );
    let stored = weeks(&fx.store, fx.collection_id).await;
    for record in reader.records().map(Result::unwrap) {
        assert!(stored
            .iter()
            .any(|w| w.week_start_date.to_string() == record[0]));
    }
}

/// `spend` values of one week as its result file.
fn spend_rows(values: &[&str]) -> String {
    let rows: String = values
        .iter()
        .map(|value| format!("2026-01-05,{value}\n"))
        .collect();
    format!("day,spend\n{rows}")
}

async fn complete_with(fx: &Fixture, week: &Week, amc_id: &str, rows: String) -> ExecutionId {
    let execution_id = drive_to_downloading(fx, week, amc_id).await;
    complete_downloading(fx, week, execution_id, amc_id, &rows).await;
    execution_id
}

async fn complete_downloading(
    fx: &Fixture,
    week: &Week,
    execution_id: ExecutionId,
    amc_id: &str,
    rows: &str,
) {
    let done = staged_week(fx, week, execution_id, amc_id, rows).await;
    fx.store
        .apply_transition(Transition::Completed(done))
        .await
        .unwrap()
        .unwrap();
}

async fn spend_total(store: &Store) -> String {
    let sql = format!("SELECT CAST(SUM(spend) AS TEXT) FROM {}", relation(store));
    texts(store, &sql).await[0][0].clone()
}

async fn a_widening_week_widens_the_relation_in_its_completing_transaction(backend: Backend) {
    // Arrange: week 1 has whole amounts only.
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let stored = weeks(&fx.store, fx.collection_id).await;
    complete_with(&fx, &stored[0], "amc-1", spend_rows(&["5", "7"])).await;
    assert_eq!(column_type(&show(&fx), "spend"), "bigint");
    assert_eq!(column_type(&show(&fx), "day"), "date");

    // Act: week 2 is downloaded with a fractional amount; until its commit nothing changes.
    let execution = drive_to_downloading(&fx, &stored[1], "amc-2").await;
    assert_eq!(column_type(&show(&fx), "spend"), "bigint");
    assert_eq!(spend_total(&fx.store).await, "12");
    complete_downloading(
        &fx,
        &stored[1],
        execution,
        "amc-2",
        &spend_rows(&["0.10", "0.20"]),
    )
    .await;

    // Assert: numeric, week 1's values kept, the sum exact.
    assert_eq!(column_type(&show(&fx), "spend"), "numeric");
    let total = spend_total(&fx.store).await;
    match fx.store {
        Store::Postgres(_) => assert_eq!(total, "12.30"),
        // SQLite has no exact decimal: NUMERIC affinity stores a double.
        Store::Sqlite(_) => assert!(
            (total.parse::<f64>().unwrap() - 12.3).abs() < 1e-9,
            "{total}"
        ),
    }
    let count = texts(
        &fx.store,
        &format!("SELECT CAST(COUNT(*) AS TEXT) FROM {}", relation(&fx.store)),
    )
    .await;
    assert_eq!(count[0][0], "4");
}

async fn a_rerun_switches_the_relation_s_rows_atomically(backend: Backend) {
    // Arrange: two completed weeks.
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let stored = weeks(&fx.store, fx.collection_id).await;
    let old = complete_with(&fx, &stored[0], "amc-old", spend_rows(&["1", "2"])).await;
    complete_with(&fx, &stored[1], "amc-b", spend_rows(&["3"])).await;
    let executions = |store: Store| async move {
        let sql = format!(
            "SELECT CAST(execution_id AS TEXT), amc_execution_id, CAST(COUNT(*) AS TEXT) FROM {} \
             WHERE week_start = (SELECT MIN(week_start) FROM {}) GROUP BY 1, 2",
            relation(&store),
            relation(&store)
        );
        texts(&store, &sql).await
    };

    // Act: a rerun of week 1, collected up to its download.
    fx.store
        .request_rerun(fx.collection_id, stored[0].week_start_date)
        .await
        .unwrap();
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let new = drive_to_downloading(&fx, &week, "amc-new").await;

    // Assert: the old rows until the new execution's commit, then only the new ones.
    assert_eq!(
        executions(fx.store.clone()).await,
        vec![vec![old.to_string(), "amc-old".into(), "2".into()]]
    );
    complete_downloading(&fx, &week, new, "amc-new", &spend_rows(&["10", "20", "30"])).await;
    assert_eq!(
        executions(fx.store.clone()).await,
        vec![vec![new.to_string(), "amc-new".into(), "3".into()]]
    );
    assert_eq!(spend_total(&fx.store).await, "63");
    assert_eq!(exported(&fx).await.len(), 4);
}

async fn views_rebuild_and_migrate_recreate_a_dropped_relation_with_the_same_rows(
    backend: Backend,
) {
    // Arrange: a backfill, then the relation dropped (an install from before relations).
    let (fx, _sim) = backfill(backend, 3).await;
    let before = weekly_sums(&fx.store).await;
    let drop = format!("DROP TABLE {}", relation(&fx.store));
    match &fx.store {
        Store::Postgres(pool) => sqlx::query(&drop).execute(pool).await.map(|_| ()),
        Store::Sqlite(pool) => sqlx::query(&drop).execute(pool).await.map(|_| ()),
    }
    .unwrap();

    // Act + Assert: `migrate` recreates what is missing; `views rebuild` everything, same rows.
    let migrated = stdout_of(&fx.db.run(&["migrate"]));
    assert!(migrated.contains("rebuilt"), "{migrated}");
    assert_eq!(weekly_sums(&fx.store).await, before);
    let rebuilt = stdout_of(&fx.db.run(&["views", "rebuild"]));
    assert!(
        rebuilt.contains(&format!("relation {} rebuilt", relation(&fx.store))),
        "{rebuilt}"
    );
    assert_eq!(weekly_sums(&fx.store).await, before);
    assert_eq!(column_type(&show(&fx), "impressions"), "bigint");
}

async fn a_result_with_4096_columns_fails_its_week_with_a_clear_reason(backend: Backend) {
    // Arrange: one file whose header has 4,096 distinct columns.
    let header: Vec<String> = (0..4096).map(|i| format!("c{i}")).collect();
    let file = Bytes::from(format!(
        "{}\n{}\n",
        header.join(","),
        vec!["1"; 4096].join(",")
    ));
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let sim = simulator().await;
    sim.control()
        .set_result_content(ResultContent::Files(Arc::new(vec![file])));
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.retry.max_attempts = 1;

    // Act
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    assert_eq!(week.status, WeekStatus::Failed, "{week:?}");
    let message = week.error_message.unwrap_or_default();
    assert!(
        message.contains("4096 columns; its typed relation can hold at most 1594"),
        "{message}"
    );
}

async fn anon_and_authenticated_see_nothing_of_a_relation_on_postgres(backend: Backend) {
    // Arrange: Supabase's API roles exist (the cluster is shared: made only if missing).
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let Store::Postgres(pool) = &fx.store else {
        return;
    };
    for role in ["anon", "authenticated"] {
        let create = format!(
            "DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        );
        sqlx::query(&create).execute(pool).await.unwrap();
    }
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    complete_with(&fx, &week, "amc-1", spend_rows(&["5"])).await;

    // Assert: no privilege at all; granted SELECT anyway, row-level security shows no row.
    for role in ["anon", "authenticated"] {
        let (schema, table): (bool, bool) = sqlx::query_as(
            "SELECT has_schema_privilege($1, 'amc_results', 'USAGE'), \
             has_table_privilege($1, 'amc_results.weekly', 'SELECT')",
        )
        .bind(role)
        .fetch_one(pool)
        .await
        .unwrap();
        assert!(!schema && !table, "{role} may read amc_results.weekly");
    }
    let mut tx = pool.begin().await.unwrap();
    for sql in [
        "GRANT USAGE ON SCHEMA amc_results TO anon",
        "GRANT SELECT ON amc_results.weekly TO anon",
        "SET LOCAL ROLE anon",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM amc_results.weekly")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    tx.rollback().await.unwrap();
}

/// The weeks a backfill of `count` weeks created `behind` weeks ago would hold today.
fn weeks_behind(count: i64, behind: i64) -> Vec<amc_collector::weeks::Week> {
    use amc_collector::weeks::{generate_weeks, WeekRequest, WeekRules, WeekStart};
    let rules = WeekRules {
        data_lag_days: 14,
        retention_days: 395,
    };
    let today = chrono::Utc::now().date_naive();
    let end_date = today - chrono::Duration::days(14 + 7 * behind);
    let request = WeekRequest {
        weeks: count,
        end_date: Some(end_date),
        week_start: WeekStart::Monday,
    };
    generate_weeks(today, "UTC", &request, rules).unwrap()
}

async fn keep_fresh_weeks_join_the_relation_and_keep_weeks_drops_theirs(backend: Backend) {
    use amc_collector::store::{KeepFresh, NewCollection};
    // Arrange: every result has three rows; a keep-fresh collection one week behind, keeping 2.
    let sim = simulator().await;
    let file = Bytes::from("day,spend\n2026-01-05,1.50\n2026-01-06,2\n2026-01-07,3\n");
    sim.control()
        .set_result_content(ResultContent::Files(Arc::new(vec![file])));
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let id = fx
        .store
        .create_collection(&NewCollection {
            workflow_id: fx.workflow.id,
            instance_id: fx.instance.id,
            week_start: amc_collector::weeks::WeekStart::Monday,
            time_zone: "UTC".into(),
            weeks: weeks_behind(3, 1),
            keep_fresh: Some(KeepFresh {
                keep_weeks: Some(2),
            }),
            parameters: Default::default(),
        })
        .await
        .unwrap();

    // Act: the daemon collects the backfill and the week that became due.
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert: the relation holds the newest two weeks, as export does.
    let stored = weeks(&fx.store, id).await;
    assert_eq!(stored.len(), 4, "the week that became due is added");
    assert!(stored.iter().all(|w| w.status == WeekStatus::Completed));
    let sql = format!(
        "SELECT CAST(week_start AS TEXT), CAST(COUNT(*) AS TEXT) FROM {} \
         WHERE collection_id = '{id}' GROUP BY week_start ORDER BY week_start",
        relation(&fx.store)
    );
    let expected: Vec<Vec<String>> = stored[2..]
        .iter()
        .map(|w| vec![w.week_start_date.to_string(), "3".to_string()])
        .collect();
    assert_eq!(texts(&fx.store, &sql).await, expected);
    let mut exported_weeks: Vec<String> = Vec::new();
    fx.store
        .export_rows(id, |row| {
            exported_weeks.push(row.week_start.to_string());
            Ok(())
        })
        .await
        .unwrap();
    exported_weeks.dedup();
    assert_eq!(
        exported_weeks,
        vec![expected[0][0].clone(), expected[1][0].clone()]
    );
}

crate::actix_on_both_backends!(
    keep_fresh_weeks_join_the_relation_and_keep_weeks_drops_theirs,
    sums_and_counts_through_the_relation_equal_the_exported_simulator_data,
    an_export_s_week_start_is_the_week_even_when_a_result_column_is_named_week_start,
    views_rebuild_and_migrate_recreate_a_dropped_relation_with_the_same_rows,
    a_result_with_4096_columns_fails_its_week_with_a_clear_reason,
);

crate::on_both_backends!(
    a_widening_week_widens_the_relation_in_its_completing_transaction,
    a_rerun_switches_the_relation_s_rows_atomically,
    anon_and_authenticated_see_nothing_of_a_relation_on_postgres,
);
