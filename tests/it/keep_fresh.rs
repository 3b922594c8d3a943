//! Keep-fresh collections against the simulator and both databases: the daemon adds each week
//! that became due and collects it, a paused collection gains nothing, `--keep-weeks` drops older
//! weeks' rows but keeps their ids, and the CLI shows `keep_fresh` / `next_week_due`.
//!
//! "Today" is the real date: the collections are created with their last week two weeks behind
//! the newest due one, which is exactly what a keep-fresh collection sees after two weeks.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support;
use crate::support::pipeline::{
    assert_completed_weeks_are_traceable, fixture, run_until_idle, settings, stored_row_count,
    weeks,
};
use crate::support::{assert_usage_error, stdout_of, Backend};
use amc_collector::ids::CollectionId;
use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::{Instance, Workflow};
use amc_collector::store::{Control, KeepFresh, NewCollection, Store, WorkflowSource};
use amc_collector::weeks::{generate_weeks, Week, WeekRequest, WeekRules, WeekStart};

const SQL: &str = "SELECT campaign, SUM(impressions) FROM t\nWHERE d >= '{{start_date}}' AND d <= '{{end_date}}'\nGROUP BY 1";

/// About one simulated window in eight has no rows. A test about rows picks, for today's weeks, a
/// variant of the query whose every week has some (the simulator's files are a pure function of
/// query and window, so this is decided before anything runs).
fn sql_with_rows_in(weeks: &[Week]) -> String {
    (0..200)
        .map(|limit| format!("{SQL}\nLIMIT {}", 1_000_000 + limit))
        .find(|sql| {
            weeks.iter().all(|week| {
                let prepared =
                    amc_collector::actors::collection::prepare_sql(sql, week.start, week.end)
                        .unwrap();
                let files = simulator::expected_result_files(
                    support::pipeline::INSTANCE_ID,
                    &simulator::sql_workflow_key(&prepared),
                    &format!("{}T00:00:00", week.start),
                    &format!("{}T00:00:00", week.end_exclusive()),
                    1.0,
                );
                files
                    .iter()
                    .map(|f| f.iter().filter(|b| **b == b'\n').count())
                    .sum::<usize>()
                    > files.len()
            })
        })
        .expect("some variant of the query has rows in every week")
}
const RULES: WeekRules = WeekRules {
    data_lag_days: 14,
    retention_days: 395,
};

async fn start_simulator() -> SimulatorHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 30,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    };
    simulator::start(bind, config).await.unwrap()
}

/// The weeks a backfill of `count` weeks created `behind` weeks ago would hold today.
fn weeks_behind(count: i64, behind: i64) -> Vec<Week> {
    let today = chrono::Utc::now().date_naive();
    let end_date = today - chrono::Duration::days(i64::from(RULES.data_lag_days) + 7 * behind);
    let request = WeekRequest {
        weeks: count,
        end_date: Some(end_date),
        week_start: WeekStart::Monday,
    };
    generate_weeks(today, "UTC", &request, RULES).unwrap()
}

async fn keep_fresh_collection(
    store: &Store,
    instance: &Instance,
    workflow: &Workflow,
    weeks: Vec<Week>,
    keep_weeks: Option<u32>,
) -> CollectionId {
    store
        .create_collection(&NewCollection {
            workflow_id: workflow.id,
            instance_id: instance.id,
            week_start: WeekStart::Monday,
            time_zone: "UTC".into(),
            weeks,
            keep_fresh: Some(KeepFresh { keep_weeks }),
            parameters: Default::default(),
        })
        .await
        .unwrap()
}

async fn a_keep_fresh_collection_gains_each_due_week_and_collects_it(backend: Backend) {
    let sim = start_simulator().await;
    let backfill = weeks_behind(3, 2);
    let newest_due = backfill[2].next().next();
    let sql = sql_with_rows_in(&[backfill[2].next(), newest_due]);
    let fx = fixture(backend, 1, WorkflowSource::Sql(sql)).await;
    let id = keep_fresh_collection(&fx.store, &fx.instance, &fx.workflow, backfill, None).await;
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());

    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    let stored = weeks(&fx.store, id).await;
    assert_eq!(stored.len(), 5, "the two weeks that became due are added");
    assert!(stored.iter().all(|w| w.status == WeekStatus::Completed));
    let last = stored.last().unwrap();
    assert_eq!(
        (last.week_start_date, last.week_end_date),
        (newest_due.start, newest_due.end)
    );
    assert!(stored_row_count(&fx.store, last).await > 0);
    assert_completed_weeks_are_traceable(&fx.store, id).await;
    let collection = fx.store.collection(id).await.unwrap().unwrap();
    assert_eq!(collection.status, CollectionStatus::Completed);
    assert_eq!(collection.end_date, newest_due.end);

    let show: serde_json::Value = serde_json::from_str(&stdout_of(&fx.db.run(&[
        "collection",
        "show",
        &id.to_string(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(show["keep_fresh"], true);
    let overview = fx.store.collection_overview(id).await.unwrap().unwrap();
    assert!(
        overview.keep_fresh,
        "the console shows it keeps itself fresh"
    );
    let due: chrono::DateTime<chrono::Utc> =
        show["next_week_due"].as_str().unwrap().parse().unwrap();
    assert!(
        due > chrono::Utc::now(),
        "the next week is not due yet: {due}"
    );
    let expected = newest_due.next().due_on(RULES.data_lag_days);
    assert_eq!(due.date_naive(), expected);

    // Running again adds nothing: the next week is not due.
    let creates = sim.stats().creates_total;
    run_until_idle(&fx.store, &settings, Duration::from_secs(30)).await;
    assert_eq!(weeks(&fx.store, id).await.len(), 5);
    assert_eq!(sim.stats().creates_total, creates);
}

async fn a_paused_keep_fresh_collection_gains_no_week(backend: Backend) {
    let sim = start_simulator().await;
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let id = keep_fresh_collection(
        &fx.store,
        &fx.instance,
        &fx.workflow,
        weeks_behind(2, 1),
        None,
    )
    .await;
    fx.store.apply_control(id, Control::Pause).await.unwrap();
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());

    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    let stored = weeks(&fx.store, id).await;
    assert_eq!(stored.len(), 2, "a paused collection gains no week");
    assert!(stored.iter().all(|w| w.status == WeekStatus::Pending));
    let collection = fx.store.collection(id).await.unwrap().unwrap();
    assert_eq!(collection.status, CollectionStatus::Paused);

    // Resumed, it catches up: its own weeks and the one that became due.
    fx.store.apply_control(id, Control::Resume).await.unwrap();
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;
    let stored = weeks(&fx.store, id).await;
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|w| w.status == WeekStatus::Completed));
}

async fn keep_weeks_drops_older_weeks_rows_but_keeps_their_ids(backend: Backend) {
    let sim = start_simulator().await;
    let backfill = weeks_behind(3, 1);
    let mut all = backfill.clone();
    all.push(backfill[2].next());
    let fx = fixture(backend, 1, WorkflowSource::Sql(sql_with_rows_in(&all))).await;
    let id = keep_fresh_collection(&fx.store, &fx.instance, &fx.workflow, backfill, Some(2)).await;
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());

    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    let stored = weeks(&fx.store, id).await;
    assert_eq!(stored.len(), 4);
    for (index, week) in stored.iter().enumerate() {
        assert_eq!(week.status, WeekStatus::Completed);
        assert!(week.execution_id.is_some() && week.amc_execution_id.is_some());
        let rows = stored_row_count(&fx.store, week).await;
        if index < 2 {
            assert_eq!(rows, 0, "week {index} is beyond keep_weeks");
            assert!(week.rows_dropped_at.is_some());
            assert!(
                week.row_count.unwrap() > 0,
                "its row count stays as lineage"
            );
        } else {
            assert!(rows > 0, "week {index} is among the newest two");
            assert!(week.rows_dropped_at.is_none());
        }
    }
    assert_completed_weeks_are_traceable(&fx.store, id).await;
}

async fn create_refuses_keep_weeks_without_keep_fresh_or_below_one(backend: Backend) {
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let base = [
        "collection",
        "create",
        "--workflow",
        "weekly",
        "--instance",
        support::pipeline::INSTANCE_ID,
        "--weeks",
        "2",
    ];
    let before = fx.store.list_collections().await.unwrap().len();
    let without = [&base[..], &["--keep-weeks", "4"]].concat();
    assert_usage_error(&fx.db.run(&without), "--keep-weeks needs --keep-fresh");
    let zero = [&base[..], &["--keep-fresh", "--keep-weeks", "0"]].concat();
    assert_usage_error(&fx.db.run(&zero), "--keep-weeks must be at least 1");
    assert_eq!(fx.store.list_collections().await.unwrap().len(), before);

    let made = [&base[..], &["--keep-fresh", "--keep-weeks", "8", "--json"]].concat();
    let created: serde_json::Value = serde_json::from_str(&stdout_of(&fx.db.run(&made))).unwrap();
    assert_eq!(created["keep_fresh"], true);
    let id = created["id"].as_str().unwrap();
    let show: serde_json::Value = serde_json::from_str(&stdout_of(&fx.db.run(&[
        "collection",
        "show",
        id,
        "--json",
    ])))
    .unwrap();
    assert_eq!(show["keep_fresh"], true);
    assert!(show["next_week_due"].is_string());
    let plain = fx.collection_id.to_string();
    let show: serde_json::Value = serde_json::from_str(&stdout_of(&fx.db.run(&[
        "collection",
        "show",
        &plain,
        "--json",
    ])))
    .unwrap();
    assert_eq!(show["keep_fresh"], false);
    assert!(show["next_week_due"].is_null());
}

async fn a_due_week_is_added_once_however_many_processes_add_it_and_never_to_a_paused_collection(
    backend: Backend,
) {
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let backfill = weeks_behind(2, 1);
    let due = amc_collector::store::DueWeeks {
        collection_id: keep_fresh_collection(
            &fx.store,
            &fx.instance,
            &fx.workflow,
            backfill.clone(),
            None,
        )
        .await,
        weeks: vec![backfill[1].next()],
    };
    let now = chrono::Utc::now();
    let (first, second) = tokio::join!(
        fx.store.add_due_weeks(&due, now),
        fx.store.add_due_weeks(&due, now)
    );
    assert_eq!(first.unwrap() + second.unwrap(), 1);
    assert_eq!(weeks(&fx.store, due.collection_id).await.len(), 3);

    let paused = amc_collector::store::DueWeeks {
        collection_id: keep_fresh_collection(
            &fx.store,
            &fx.instance,
            &fx.workflow,
            backfill.clone(),
            None,
        )
        .await,
        weeks: vec![backfill[1].next()],
    };
    fx.store
        .apply_control(paused.collection_id, Control::Pause)
        .await
        .unwrap();
    assert_eq!(fx.store.add_due_weeks(&paused, now).await.unwrap(), 0);
    assert_eq!(weeks(&fx.store, paused.collection_id).await.len(), 2);
}

crate::actix_on_both_backends!(
    a_due_week_is_added_once_however_many_processes_add_it_and_never_to_a_paused_collection,
    a_keep_fresh_collection_gains_each_due_week_and_collects_it,
    a_paused_keep_fresh_collection_gains_no_week,
    keep_weeks_drops_older_weeks_rows_but_keeps_their_ids,
    create_refuses_keep_weeks_without_keep_fresh_or_below_one,
);
