//! Operators' controls racing from several processes (each its own connection pool): every
//! round ends in a state one of them asked for, and the one that lost is told the truth.

use amc_collector::ids::CollectionId;
use amc_collector::status::CollectionStatus;
use amc_collector::status::WeekStatus;
use amc_collector::store::{Control, Store, StoreError, Transition, WorkflowSource};

use crate::support::pipeline::{completed_week, drive_to_downloading, fixture, weeks};
use crate::support::Backend;

const SQL: &str = "SELECT 1 FROM t WHERE d >= '{{start_date}}'";
const ROUNDS: usize = 30;

/// Puts the collection back to `running` between rounds (what the daemon's first intent does).
async fn set_running(store: &Store, id: CollectionId) {
    let sql = "UPDATE report_data_collections SET status = 'running' WHERE id = $1";
    match store {
        Store::Postgres(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(drop),
        Store::Sqlite(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(drop),
    }
    .unwrap();
}

async fn status(store: &Store, id: CollectionId) -> CollectionStatus {
    store.collection(id).await.unwrap().unwrap().status
}

async fn pause_and_retry_failed_at_once_never_undo_the_pause(backend: Backend) {
    // Arrange: two "processes", each with a pool of its own.
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let (first, second) = (fx.db.store().await, fx.db.store().await);
    let id = fx.collection_id;
    for round in 0..ROUNDS {
        set_running(&fx.store, id).await;

        // Act
        let (paused, retried) = tokio::join!(
            first.apply_control(id, Control::Pause),
            second.apply_control(id, Control::RetryFailed),
        );

        // Assert: whatever the order, a pause that succeeded holds (retry-failed keeps a
        // paused collection paused).
        paused.unwrap_or_else(|e| panic!("round {round}: pause refused: {e}"));
        retried.unwrap_or_else(|e| panic!("round {round}: retry-failed refused: {e}"));
        assert_eq!(
            status(&fx.store, id).await,
            CollectionStatus::Paused,
            "round {round}"
        );
    }
}

async fn the_loser_of_two_cancels_is_told_the_collection_is_cancelled(backend: Backend) {
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let (first, second) = (fx.db.store().await, fx.db.store().await);
    let id = fx.collection_id;
    for round in 0..ROUNDS {
        set_running(&fx.store, id).await;

        // Act
        let (a, b) = tokio::join!(
            first.apply_control(id, Control::Cancel),
            second.apply_control(id, Control::Cancel),
        );

        // Assert: one cancel applied; the other says why it cannot (not "try again").
        let (won, lost): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(Result::is_ok);
        assert_eq!(won.len(), 1, "round {round}: {won:?} {lost:?}");
        match &lost[0] {
            Err(StoreError::InvalidTransition(message)) => {
                assert!(
                    message.contains("it is cancelled"),
                    "round {round}: {message}"
                );
                assert!(!message.contains("try again"), "round {round}: {message}");
            }
            other => panic!("round {round}: {other:?}"),
        }
        assert_eq!(status(&fx.store, id).await, CollectionStatus::Cancelled);
    }
}

async fn a_rerun_racing_a_cancel_never_leaves_a_pending_week_in_a_cancelled_collection(
    backend: Backend,
) {
    for round in 0..10 {
        // Arrange: a running collection with one completed week, and two "processes".
        let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
        let week = weeks(&fx.store, fx.collection_id).await.remove(0);
        let execution = drive_to_downloading(&fx, &week, "amc-done").await;
        let done = completed_week(&fx, &week, execution, "amc-done").await;
        fx.store
            .apply_transition(Transition::Completed(done))
            .await
            .unwrap()
            .unwrap();
        let (first, second) = (fx.db.store().await, fx.db.store().await);
        let id = fx.collection_id;

        // Act
        let (_rerun, cancel) = tokio::join!(
            first.request_rerun(id, week.week_start_date),
            second.apply_control(id, Control::Cancel),
        );

        // Assert: the cancel holds; no week waits to be collected in the cancelled collection
        // (a rerun that came first was cancelled back to its completed execution).
        cancel.unwrap_or_else(|e| panic!("round {round}: cancel refused: {e}"));
        assert_eq!(status(&fx.store, id).await, CollectionStatus::Cancelled);
        let after = weeks(&fx.store, id).await;
        assert!(
            after.iter().all(|w| w.status != WeekStatus::Pending),
            "round {round}: {after:?}"
        );
        assert_eq!(after[0].status, WeekStatus::Completed, "round {round}");
    }
}

crate::actix_on_both_backends!(
    a_rerun_racing_a_cancel_never_leaves_a_pending_week_in_a_cancelled_collection,
    pause_and_retry_failed_at_once_never_undo_the_pause,
    the_loser_of_two_cancels_is_told_the_collection_is_cancelled,
);
