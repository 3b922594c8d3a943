//! `collection rerun ID --week DATE`: a completed week is collected again under a new execution
//! UUID; its old rows stay readable until the new ones are stored, then are replaced in one
//! commit; both executions stay in `workflow_executions`. On SQLite and Postgres.

use std::time::Duration;

use crate::support::pipeline::{
    completed_week, drive_to_downloading, fixture, run_until_idle, settings, staged_week,
    stored_row_count, weeks, Fixture,
};
use crate::support::{assert_usage_error, stdout_of, Backend};
use amc_collector::ids::{CollectionId, ExecutionId, WeekId};
use amc_collector::simulator::{self, SimulatorConfig};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::Week;
use amc_collector::store::Transition;
use amc_collector::store::{Store, WorkflowSource};

const SQL: &str = "SELECT campaign, SUM(impressions) FROM t WHERE d >= '{{start_date}}' GROUP BY 1";

/// (execution, data) of every exported row of the collection, in export order.
async fn exported(store: &Store, id: CollectionId) -> Vec<(ExecutionId, serde_json::Value)> {
    let mut rows = Vec::new();
    store
        .export_rows(id, |row| {
            rows.push((row.execution_id, row.data.0));
            Ok(())
        })
        .await
        .unwrap();
    rows
}

/// The executions recorded for a week, oldest first: the week's lineage.
async fn executions_of(store: &Store, week: WeekId) -> Vec<(ExecutionId, String)> {
    let sql = "SELECT id, status FROM workflow_executions WHERE week_id = $1 ORDER BY created_at";
    match store {
        Store::Postgres(pool) => sqlx::query_as(sql).bind(week).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_as(sql).bind(week).fetch_all(pool).await,
    }
    .unwrap()
}

async fn complete(fx: &Fixture, week: &Week, amc_id: &str) -> ExecutionId {
    let execution = drive_to_downloading(fx, week, amc_id).await;
    fx.store
        .apply_transition(Transition::Completed(
            completed_week(fx, week, execution, amc_id).await,
        ))
        .await
        .unwrap()
        .unwrap();
    execution
}

async fn a_rerun_keeps_the_old_rows_until_the_new_execution_completes_then_replaces_them(
    backend: Backend,
) {
    // Arrange: a completed collection of two weeks, two rows each.
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let stored = weeks(&fx.store, fx.collection_id).await;
    let (week, other) = (&stored[0], &stored[1]);
    let old = complete(&fx, week, "amc-old").await;
    complete(&fx, other, "amc-other").await;

    // Act: ask for the rerun.
    let requested = fx
        .store
        .request_rerun(fx.collection_id, week.week_start_date)
        .await
        .unwrap();

    // Assert: the week waits for a new execution; its rows are still the ones exported.
    assert_eq!(requested.previous_execution_id, old);
    let now = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(now[0].status, WeekStatus::Pending);
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Running);
    let before = exported(&fx.store, fx.collection_id).await;
    assert_eq!(before.iter().filter(|(e, _)| *e == old).count(), 2);
    assert_eq!(before.len(), 4);

    // Act: the daemon's steps for the new execution, up to the moment before completion,
    // including the cleanup every download starts with.
    let new = drive_to_downloading(&fx, &now[0], "amc-new").await;
    assert_ne!(new, old);
    assert_eq!(fx.store.clear_staged_rows(week.id).await.unwrap(), 0);

    // Assert: still the old rows while the new execution downloads.
    assert_eq!(exported(&fx.store, fx.collection_id).await, before);

    // Act: the new execution completes with three rows (same file and row numbers as the old).
    let result = staged_week(&fx, &now[0], new, "amc-new", "n\nnew-0\nnew-1\nnew-2\n").await;
    fx.store
        .apply_transition(Transition::Completed(result.clone()))
        .await
        .unwrap()
        .unwrap();

    // Assert: only the new rows remain for the week, and the lineage holds both executions.
    let after = exported(&fx.store, fx.collection_id).await;
    let of_week: Vec<_> = after.iter().filter(|(e, _)| *e == new).collect();
    assert_eq!(of_week.len(), 3, "{after:?}");
    assert!(after.iter().all(|(e, _)| *e != old), "{after:?}");
    assert_eq!(stored_row_count(&fx.store, &now[0]).await, 3);
    let done = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(done[0].status, WeekStatus::Completed);
    assert_eq!(done[0].execution_id, Some(new));
    let lineage = executions_of(&fx.store, week.id).await;
    assert_eq!(
        lineage,
        vec![(old, "succeeded".into()), (new, "succeeded".into())]
    );
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Completed);
}

async fn the_daemon_collects_a_rerun_week_again_under_a_new_execution(backend: Backend) {
    // Arrange: a collection the daemon completed against the simulator.
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 20,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    };
    let sim = simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;
    let first = weeks(&fx.store, fx.collection_id).await;
    assert!(first.iter().all(|w| w.status == WeekStatus::Completed));
    let day = first[1].week_start_date + chrono::Duration::days(3);

    // Act: the operator's command, then the daemon again.
    let output = fx.db.run(&[
        "collection",
        "rerun",
        &fx.collection_id.to_string(),
        "--week",
        &day.to_string(),
    ]);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout_of(&output).contains("collected again"));
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert: a new execution completed the week; its rows are the only ones of the week.
    let second = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(second[1].status, WeekStatus::Completed, "{second:?}");
    assert_ne!(second[1].execution_id, first[1].execution_id);
    assert_eq!(second[0].execution_id, first[0].execution_id);
    assert_eq!(
        stored_row_count(&fx.store, &second[1]).await,
        second[1].row_count.unwrap()
    );
    let lineage = executions_of(&fx.store, second[1].id).await;
    assert_eq!(lineage.len(), 2, "{lineage:?}");
    assert_eq!(Some(lineage[0].0), first[1].execution_id);
    assert_eq!(Some(lineage[1].0), second[1].execution_id);
    assert_eq!(sim.stats().creates_total, 3);
}

async fn rerun_refuses_unknown_collections_days_outside_it_and_unfinished_weeks(backend: Backend) {
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let stored = weeks(&fx.store, fx.collection_id).await;
    complete(&fx, &stored[0], "amc-done").await;
    let id = fx.collection_id.to_string();
    let rerun = |id: &str, week: &str| fx.db.run(&["collection", "rerun", id, "--week", week]);

    let unknown = CollectionId::new().to_string();
    assert_usage_error(&rerun(&unknown, "2026-01-05"), "not found");
    let outside = stored[0].week_start_date - chrono::Duration::days(1);
    assert_usage_error(&rerun(&id, &outside.to_string()), "in no week");
    let pending = stored[1].week_start_date.to_string();
    assert_usage_error(&rerun(&id, &pending), "only a completed week");
    assert_usage_error(&rerun(&id, "2026-13-01"), "not a YYYY-MM-DD date");

    // Nothing was written: the completed week is still completed by its execution.
    let after = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(after[0].status, WeekStatus::Completed);
    assert_eq!(after[1].status, WeekStatus::Pending);
}

crate::actix_on_both_backends!(
    a_rerun_keeps_the_old_rows_until_the_new_execution_completes_then_replaces_them,
    the_daemon_collects_a_rerun_week_again_under_a_new_execution,
    rerun_refuses_unknown_collections_days_outside_it_and_unfinished_weeks,
);
