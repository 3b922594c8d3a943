//! One rule for what a week serves: `collection show` names the execution, row count and
//! checksum of the rows `export` returns, in every state. A rerun that is cancelled or fails for
//! good leaves the week `completed` with its previous execution (the attempt stays in the
//! lineage); a week whose rows retention dropped is never collected again.

use amc_collector::ids::{CollectionId, ExecutionId, WeekId};
use amc_collector::status::WeekStatus;
use amc_collector::store::model::Week;
use amc_collector::store::{Store, Transition, WorkflowSource};
use serde_json::Value;

use crate::support::pipeline::{
    checksum_of, completed_week, drive_to_downloading, fixture, intent, weeks, Fixture, TWO_ROWS,
};
use crate::support::{assert_usage_error, stdout_of, Backend};

const SQL: &str = "SELECT 1 FROM t WHERE d >= '{{start_date}}'";

/// The execution of every row `export` returns for the collection.
async fn exported(store: &Store, id: CollectionId) -> Vec<ExecutionId> {
    let mut rows = Vec::new();
    store
        .export_rows(id, |row| {
            rows.push(row.execution_id);
            Ok(())
        })
        .await
        .unwrap();
    rows
}

/// The week's executions, oldest first: its lineage.
async fn lineage(store: &Store, week: WeekId) -> Vec<ExecutionId> {
    let sql = "SELECT id FROM workflow_executions WHERE week_id = $1 ORDER BY created_at";
    match store {
        Store::Postgres(pool) => sqlx::query_scalar(sql).bind(week).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(week).fetch_all(pool).await,
    }
    .unwrap()
}

/// `collection show --json`'s first week.
fn shown_week(fx: &Fixture) -> Value {
    let id = fx.collection_id.to_string();
    let output = fx.db.run(&["collection", "show", &id, "--json"]);
    let json: Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    json["weeks"][0].clone()
}

/// A completed week (two rows under `amc-old`), then rerun and submitted as `amc-new`.
async fn rerun_running(fx: &Fixture) -> (Week, ExecutionId, ExecutionId) {
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let old = drive_to_downloading(fx, &week, "amc-old").await;
    let done = completed_week(fx, &week, old, "amc-old").await;
    fx.store
        .apply_transition(Transition::Completed(done))
        .await
        .unwrap()
        .unwrap();
    fx.store
        .request_rerun(fx.collection_id, week.week_start_date)
        .await
        .unwrap();
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let new = ExecutionId::new();
    fx.store
        .apply_transition(Transition::Intent(intent(fx, &week, new)))
        .await
        .unwrap()
        .unwrap();
    let submitted = Transition::Submitted(amc_collector::store::Submitted {
        collection_id: fx.collection_id,
        execution_id: new,
        amc_execution_id: "amc-new".into(),
        fence: fx.fence.clone(),
    });
    fx.store.apply_transition(submitted).await.unwrap().unwrap();
    (week, old, new)
}

/// The week serves `old` (two rows, the fixture's checksum), and show and the console say so.
async fn assert_serves_old(fx: &Fixture, old: ExecutionId, shown: &Value) {
    assert_eq!(exported(&fx.store, fx.collection_id).await, vec![old, old]);
    let console = fx
        .store
        .week_details(fx.collection_id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(console.serves_execution_id, Some(old), "{console:?}");
    assert_eq!(console.serves_row_count, Some(2), "{console:?}");
    let two_rows = checksum_of(TWO_ROWS);
    assert_eq!(console.serves_data_checksum, Some(two_rows.clone()));
    assert_eq!(shown["serves"]["execution_id"], old.to_string(), "{shown}");
    assert_eq!(shown["serves"]["amc_execution_id"], "amc-old", "{shown}");
    assert_eq!(shown["serves"]["row_count"], 2, "{shown}");
    assert_eq!(shown["serves"]["data_checksum"], two_rows, "{shown}");
}

async fn a_rerun_cancelled_while_running_leaves_the_week_completed_with_its_previous_execution(
    backend: Backend,
) {
    // Arrange: a week being collected again, its new execution running on AMC.
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let (week, old, new) = rerun_running(&fx).await;
    let during = shown_week(&fx);
    assert_eq!(during["status"], "running", "{during}");
    assert_serves_old(&fx, old, &during).await;
    let id = fx.collection_id.to_string();
    let text = stdout_of(&fx.db.run(&["collection", "show", &id]));
    assert!(
        text.contains(&format!(
            "export serves execution {old} (AMC id amc-old): 2 rows"
        )),
        "{text}"
    );

    // Act
    stdout_of(&fx.db.run(&["collection", "cancel", &id]));

    // Assert: completed by the old execution, which export still serves and show names; the
    // cancelled attempt stays in the lineage, and its AMC run is among those to cancel.
    let after = weeks(&fx.store, fx.collection_id).await.remove(0);
    assert_eq!(after.status, WeekStatus::Completed, "{after:?}");
    assert_eq!(after.execution_id, Some(old));
    assert_eq!(after.amc_execution_id.as_deref(), Some("amc-old"));
    assert_eq!(after.row_count, Some(2));
    let shown = shown_week(&fx);
    assert_eq!(shown["execution_id"], old.to_string(), "{shown}");
    assert!(shown["error_message"]
        .as_str()
        .unwrap()
        .contains("rerun cancelled"));
    assert_serves_old(&fx, old, &shown).await;
    assert_eq!(lineage(&fx.store, week.id).await, vec![old, new]);
    let to_cancel = fx.store.executions_to_cancel().await.unwrap();
    assert!(to_cancel.iter().any(|e| e.id == new), "{to_cancel:?}");
}

async fn a_rerun_whose_new_execution_fails_leaves_the_week_completed_with_its_previous_execution(
    backend: Backend,
) {
    // Arrange
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let (week, old, new) = rerun_running(&fx).await;

    // Act: AMC's verdict on the new execution, with no attempt left.
    let failed = Transition::Failed(amc_collector::store::Failed {
        collection_id: fx.collection_id,
        week_id: week.id,
        execution_id: Some(new),
        amc_status: Some("failed".into()),
        reason: "query timed out".into(),
        retry_at: None,
        fence: fx.fence.clone(),
    });
    fx.store.apply_transition(failed).await.unwrap().unwrap();

    // Assert
    let after = weeks(&fx.store, fx.collection_id).await.remove(0);
    assert_eq!(after.status, WeekStatus::Completed, "{after:?}");
    assert_eq!(after.execution_id, Some(old));
    let shown = shown_week(&fx);
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(shown["row_count"], 2, "{shown}");
    let message = shown["error_message"].as_str().unwrap();
    assert!(
        message.contains("rerun failed (query timed out)"),
        "{message}"
    );
    assert_serves_old(&fx, old, &shown).await;
    assert_eq!(lineage(&fx.store, week.id).await, vec![old, new]);
}

async fn a_week_whose_rows_retention_dropped_is_not_rerun_and_show_marks_it(backend: Backend) {
    // Arrange: a completed week whose rows `keep_weeks` dropped.
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let old = drive_to_downloading(&fx, &week, "amc-old").await;
    let done = completed_week(&fx, &week, old, "amc-old").await;
    fx.store
        .apply_transition(Transition::Completed(done))
        .await
        .unwrap()
        .unwrap();
    let drop = "UPDATE report_data_weeks SET rows_dropped_at = CURRENT_TIMESTAMP WHERE id = $1";
    let rows = "DELETE FROM report_data_rows WHERE week_id = $1";
    for sql in [drop, rows] {
        match &fx.store {
            Store::Postgres(pool) => sqlx::query(sql)
                .bind(week.id)
                .execute(pool)
                .await
                .map(drop_),
            Store::Sqlite(pool) => sqlx::query(sql)
                .bind(week.id)
                .execute(pool)
                .await
                .map(drop_),
        }
        .unwrap();
    }

    // Act
    let id = fx.collection_id.to_string();
    let day = week.week_start_date.to_string();
    let rerun = fx.db.run(&["collection", "rerun", &id, "--week", &day]);

    // Assert: refused (exit 2), nothing changed; show marks the week and serves nothing.
    assert_usage_error(&rerun, "rows were dropped by keep_weeks");
    let after = weeks(&fx.store, fx.collection_id).await.remove(0);
    assert_eq!(after.status, WeekStatus::Completed);
    assert_eq!(after.execution_id, Some(old));
    let text = stdout_of(&fx.db.run(&["collection", "show", &id]));
    let line = text
        .lines()
        .find(|l| l.starts_with(&day))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("rows dropped"), "{line}");
    assert_eq!(shown_week(&fx)["serves"], Value::Null);
    assert!(exported(&fx.store, fx.collection_id).await.is_empty());
}

fn drop_<T>(_: T) {}

crate::actix_on_both_backends!(
    a_rerun_cancelled_while_running_leaves_the_week_completed_with_its_previous_execution,
    a_rerun_whose_new_execution_fails_leaves_the_week_completed_with_its_previous_execution,
    a_week_whose_rows_retention_dropped_is_not_rerun_and_show_marks_it,
);
