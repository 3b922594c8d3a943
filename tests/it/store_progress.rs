//! The week state machine's writes, on SQLite and Postgres: traceability enforced by the database,
//! stale transitions refused, collection status derived from weeks.

use crate::support;
use crate::support::pipeline::{
    completed_week, drive_to_downloading, fixture, intent, weeks, Fixture,
};
use crate::support::Backend;
use amc_collector::ids::ExecutionId;
use amc_collector::status::{CollectionStatus, ExecutionStatus, WeekStatus};
use amc_collector::store::model::Week;
use amc_collector::store::{
    CompletedWeek, Control, CreateQuota, Failed, Fence, Refused, StatusReport, Store,
    SubmissionIntent, Submitted, Transition, Withdrawn, WorkflowSource,
};

/// Drives one week to `completed` through every transition.
async fn complete_week(fx: &Fixture, week: &Week, amc_id: &str) -> ExecutionId {
    let execution_id = drive_to_downloading(fx, week, amc_id).await;
    fx.store
        .apply_transition(Transition::Completed(
            completed_week(fx, week, execution_id, amc_id).await,
        ))
        .await
        .unwrap()
        .unwrap();
    execution_id
}

async fn execute(store: &Store, sql: &str, week: &Week) -> Result<u64, sqlx::Error> {
    match store {
        Store::Postgres(pool) => sqlx::query(sql)
            .bind(week.id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        Store::Sqlite(pool) => sqlx::query(sql)
            .bind(week.id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    }
}

async fn the_database_refuses_a_completed_week_without_execution_id(backend: Backend) {
    let fx = fixture(backend, 1, WorkflowSource::Sql("SELECT 1".into())).await;
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);

    let result = execute(
        &fx.store,
        "UPDATE report_data_weeks SET status = 'completed', row_count = 1, data_checksum = 'x', \
         amc_execution_id = 'amc-1' WHERE id = $1",
        &week,
    )
    .await;

    assert!(
        result.is_err(),
        "a completed week without execution_id was accepted"
    );
    assert_eq!(
        weeks(&fx.store, fx.collection_id).await[0].status,
        WeekStatus::Pending
    );
}

async fn a_week_walks_the_state_machine_and_keeps_its_execution_uuid(backend: Backend) {
    let fx = fixture(backend, 2, WorkflowSource::Sql("SELECT 1".into())).await;
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);

    let execution_id = complete_week(&fx, &week, "amc-exec-1").await;

    let stored = weeks(&fx.store, fx.collection_id).await.remove(0);
    assert_eq!(stored.status, WeekStatus::Completed);
    assert_eq!(stored.execution_id, Some(execution_id));
    assert_eq!(stored.amc_execution_id.as_deref(), Some("amc-exec-1"));
    assert_eq!(stored.row_count, Some(2));
    assert_eq!(stored.attempts, 1);
    let (_, execution) = fx.store.week_with_execution(week.id).await.unwrap();
    let execution = execution.unwrap();
    assert_eq!(execution.amc_execution_id.as_deref(), Some("amc-exec-1"));
    assert_eq!(execution.status, ExecutionStatus::Succeeded);
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        collection.status,
        CollectionStatus::Running,
        "one of two weeks is not done"
    );
}

async fn stale_or_repeated_transitions_change_nothing(backend: Backend) {
    let fx = fixture(backend, 1, WorkflowSource::Sql("SELECT 1".into())).await;
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let stray = ExecutionId::new();

    let early = fx
        .store
        .apply_transition(Transition::Submitted(Submitted {
            collection_id: fx.collection_id,
            execution_id: stray,
            amc_execution_id: "amc-x".into(),
            fence: fx.fence.clone(),
        }))
        .await;
    assert!(matches!(early, Ok(Err(Refused::Stale(_)))), "{early:?}");
    let execution_id = complete_week(&fx, &week, "amc-exec-1").await;
    // The completion repeated (nothing staged again: the message is the same).
    let repeated = CompletedWeek {
        week_id: week.id,
        collection_id: fx.collection_id,
        execution_id,
        amc_execution_id: "amc-exec-1".into(),
        row_count: 2,
        data_checksum: "ab".repeat(32),
        columns: vec!["n".into()],
        column_types: Vec::new(),
        fence: fx.fence.clone(),
    };
    let again = fx
        .store
        .apply_transition(Transition::Completed(repeated))
        .await;
    let resubmit = fx
        .store
        .apply_transition(Transition::Intent(intent(&fx, &week, ExecutionId::new())))
        .await;
    let fail = fx
        .store
        .apply_transition(Transition::Failed(Failed {
            collection_id: fx.collection_id,
            week_id: week.id,
            execution_id: Some(execution_id),
            amc_status: None,
            reason: "late failure".into(),
            retry_at: None,
            fence: fx.fence.clone(),
        }))
        .await;

    assert!(matches!(again, Ok(Err(Refused::Stale(_)))), "{again:?}");
    assert!(
        matches!(resubmit, Ok(Err(Refused::Stale(_)))),
        "{resubmit:?}"
    );
    assert!(matches!(fail, Ok(Err(Refused::Stale(_)))), "{fail:?}");
    let stored = weeks(&fx.store, fx.collection_id).await.remove(0);
    assert_eq!(stored.status, WeekStatus::Completed);
    assert_eq!(stored.execution_id, Some(execution_id));
    assert_eq!(
        support::pipeline::stored_row_count(&fx.store, &stored).await,
        2
    );
}

async fn collection_status_follows_its_weeks(backend: Backend) {
    let fx = fixture(backend, 2, WorkflowSource::Sql("SELECT 1".into())).await;
    let all = weeks(&fx.store, fx.collection_id).await;
    let status = |fx: &Fixture| {
        let store = fx.store.clone();
        let id = fx.collection_id;
        async move { store.collection(id).await.unwrap().unwrap() }
    };
    assert_eq!(status(&fx).await.status, CollectionStatus::Pending);

    complete_week(&fx, &all[0], "amc-1").await;
    let execution_id = ExecutionId::new();
    fx.store
        .apply_transition(Transition::Intent(intent(&fx, &all[1], execution_id)))
        .await
        .unwrap()
        .unwrap();
    let retry_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    fx.store
        .apply_transition(Transition::Failed(Failed {
            collection_id: fx.collection_id,
            week_id: all[1].id,
            execution_id: Some(execution_id),
            amc_status: Some("failed".into()),
            reason: "boom".into(),
            retry_at,
            fence: fx.fence.clone(),
        }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status(&fx).await.status,
        CollectionStatus::Running,
        "a retry is pending"
    );

    fx.store
        .apply_transition(Transition::Failed(Failed {
            collection_id: fx.collection_id,
            week_id: all[1].id,
            execution_id: Some(execution_id),
            amc_status: Some("failed".into()),
            reason: "boom".into(),
            retry_at: None,
            fence: fx.fence.clone(),
        }))
        .await
        .unwrap()
        .unwrap();
    let collection = status(&fx).await;
    assert_eq!(collection.status, CollectionStatus::Failed);
    assert_eq!(
        collection.error_message.as_deref(),
        Some("1 of 2 weeks failed")
    );
}

async fn giving_up_on_a_collection_the_operator_cancelled_keeps_it_cancelled(backend: Backend) {
    // Arrange: the operator cancels while the daemon is about to give up on the collection.
    let fx = fixture(backend, 2, WorkflowSource::Sql("SELECT 1".into())).await;
    fx.store
        .apply_control(fx.collection_id, Control::Cancel)
        .await
        .unwrap();

    // Act
    fx.store
        .fail_collection(fx.collection_id, "actor kept crashing")
        .await
        .unwrap();

    // Assert: still cancelled, not overwritten by the give-up, and unleased.
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Cancelled);
    assert_ne!(
        collection.error_message.as_deref(),
        Some("actor kept crashing")
    );
}

crate::on_both_backends!(
    giving_up_on_a_collection_the_operator_cancelled_keeps_it_cancelled,
    the_database_refuses_a_completed_week_without_execution_id,
    a_week_walks_the_state_machine_and_keeps_its_execution_uuid,
    stale_or_repeated_transitions_change_nothing,
    collection_status_follows_its_weeks,
);

async fn a_writer_that_lost_its_lease_is_fenced_out(backend: Backend) {
    // Arrange: process "a" claims the collection, its lease expires, process "b" takes it over.
    let fx = fixture(backend, 1, WorkflowSource::Sql("SELECT 1".into())).await;
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let lease = std::time::Duration::from_secs(30);
    let claimed_a = fx.store.claim_collections("a", lease, 10).await.unwrap();
    assert_eq!(claimed_a.len(), 1);
    let expire = "UPDATE report_data_collections SET lease_expires_at = '2000-01-01T00:00:00Z'";
    match &fx.store {
        Store::Postgres(pool) => sqlx::query(expire).execute(pool).await.map(|_| ()).unwrap(),
        Store::Sqlite(pool) => sqlx::query(expire).execute(pool).await.map(|_| ()).unwrap(),
    }
    let claimed_b = fx.store.claim_collections("b", lease, 10).await.unwrap();
    assert_eq!(claimed_b.len(), 1);
    assert!(
        claimed_b[0].1 > claimed_a[0].1,
        "the epoch grows on takeover"
    );

    // Act: the stale writer tries to submit.
    let mut stale = intent(&fx, &week, ExecutionId::new());
    stale.fence = Fence::lease("a", claimed_a[0].1);
    let refused = fx
        .store
        .apply_transition(Transition::Intent(stale.clone()))
        .await;
    let mut current = intent(&fx, &week, ExecutionId::new());
    current.fence = Fence::lease("b", claimed_b[0].1);
    let accepted = fx
        .store
        .apply_transition(Transition::Intent(current.clone()))
        .await;

    // Assert
    assert!(
        matches!(refused, Ok(Err(Refused::LeaseLost { collection_id })) if collection_id == fx.collection_id),
        "{refused:?}"
    );
    accepted.unwrap().unwrap();
    let stored = weeks(&fx.store, fx.collection_id).await.remove(0);
    assert_eq!(stored.execution_id, Some(current.execution_id));
    assert_eq!(fx.store.renew_leases("a", lease).await.unwrap(), vec![]);
    assert_eq!(
        fx.store.renew_leases("b", lease).await.unwrap(),
        vec![fx.collection_id]
    );
}

async fn the_instance_limit_holds_across_writers_in_the_database(backend: Backend) {
    let fx = fixture(backend, 3, WorkflowSource::Sql("SELECT 1".into())).await;
    let all = weeks(&fx.store, fx.collection_id).await;
    let with_limit = |week: &Week| SubmissionIntent {
        max_in_flight: 2,
        ..intent(&fx, week, ExecutionId::new())
    };

    fx.store
        .apply_transition(Transition::Intent(with_limit(&all[0])))
        .await
        .unwrap()
        .unwrap();
    fx.store
        .apply_transition(Transition::Intent(with_limit(&all[1])))
        .await
        .unwrap()
        .unwrap();
    let third = fx
        .store
        .apply_transition(Transition::Intent(with_limit(&all[2])))
        .await;

    assert!(
        matches!(third, Ok(Err(Refused::SlotsFull { in_flight: 2 }))),
        "{third:?}"
    );
    assert_eq!(
        weeks(&fx.store, fx.collection_id).await[2].status,
        WeekStatus::Pending
    );
}

async fn the_daily_limit_holds_across_writers_and_a_refused_create_is_not_counted(
    backend: Backend,
) {
    let fx = fixture(backend, 3, WorkflowSource::Sql("SELECT 1".into())).await;
    let all = weeks(&fx.store, fx.collection_id).await;
    let quota = CreateQuota {
        max_creates: 2,
        window: chrono::TimeDelta::hours(1),
    };
    let with_quota = |week: &Week| SubmissionIntent {
        quota,
        ..intent(&fx, week, ExecutionId::new())
    };
    let first = with_quota(&all[0]);
    let before = chrono::Utc::now();
    fx.store
        .apply_transition(Transition::Intent(first.clone()))
        .await
        .unwrap()
        .unwrap();
    let second = with_quota(&all[1]);
    fx.store
        .apply_transition(Transition::Intent(second.clone()))
        .await
        .unwrap()
        .unwrap();

    // The third create would be over the limit: refused with the time the window frees.
    let third = fx
        .store
        .apply_transition(Transition::Intent(with_quota(&all[2])))
        .await;
    let Ok(Err(Refused::QuotaFull { limit: 2, until })) = third else {
        panic!("{third:?}");
    };
    assert!(until > before + chrono::TimeDelta::hours(1), "{until}");
    assert!(until < before + chrono::TimeDelta::hours(2), "{until}");
    // `collection show` says the collection waits, and until when.
    let shown = fx.db.run_with_env(
        &["collection", "show", &fx.collection_id.to_string()],
        &[
            ("AMC_COLLECTOR__AMC__MAX_CREATES_PER_DAY", "2"),
            ("AMC_COLLECTOR__AMC__QUOTA_WINDOW_SECONDS", "3600"),
        ],
    );
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("waiting for the daily limit until") && shown.contains("2 of 2 executions"),
        "{shown}"
    );

    // AMC refused the second create for its limit: the week waits, keeps its attempts, and the
    // refused execution no longer counts.
    let retry_at = chrono::Utc::now() + chrono::TimeDelta::minutes(30);
    fx.store
        .apply_transition(Transition::Withdrawn(Withdrawn {
            collection_id: fx.collection_id,
            week_id: all[1].id,
            execution_id: second.execution_id,
            reason: "waiting for AMC's daily limit".into(),
            until: retry_at,
            fence: fx.fence.clone(),
        }))
        .await
        .unwrap()
        .unwrap();
    let withdrawn = weeks(&fx.store, fx.collection_id).await[1].clone();
    assert_eq!(withdrawn.status, WeekStatus::Pending);
    assert_eq!(withdrawn.attempts, 0);
    assert_eq!(withdrawn.execution_id, None);
    assert!(withdrawn.next_attempt_at.is_some());
    fx.store
        .apply_transition(Transition::Intent(with_quota(&all[2])))
        .await
        .unwrap()
        .unwrap();
}

async fn a_cancelled_week_holds_its_slot_until_amc_confirms_its_execution_ended(backend: Backend) {
    // Two collections on one instance with a limit of one execution in flight.
    let fx = fixture(backend, 1, WorkflowSource::Sql("SELECT 1".into())).await;
    let other =
        support::pipeline::add_collection(&fx.store, &fx.instance, &fx.workflow, 1, "UTC").await;
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let other_week = weeks(&fx.store, other).await.remove(0);
    let limit_one = |intent: SubmissionIntent| SubmissionIntent {
        max_in_flight: 1,
        ..intent
    };
    let execution_id = ExecutionId::new();
    fx.store
        .apply_transition(Transition::Intent(limit_one(intent(
            &fx,
            &week,
            execution_id,
        ))))
        .await
        .unwrap()
        .unwrap();
    fx.store
        .apply_transition(Transition::Submitted(Submitted {
            collection_id: fx.collection_id,
            execution_id,
            amc_execution_id: "amc-1".into(),
            fence: fx.fence.clone(),
        }))
        .await
        .unwrap()
        .unwrap();
    fx.store
        .apply_control(fx.collection_id, Control::Cancel)
        .await
        .unwrap();
    let other_fence = fx.store.test_fence(other).await.unwrap();
    let other_intent = || {
        limit_one(SubmissionIntent {
            collection_id: other,
            fence: other_fence.clone(),
            ..intent(&fx, &other_week, ExecutionId::new())
        })
    };

    // Cancelled by the operator, but still running on AMC: the slot is not free.
    let refused = fx
        .store
        .apply_transition(Transition::Intent(other_intent()))
        .await;
    assert!(
        matches!(refused, Ok(Err(Refused::SlotsFull { in_flight: 1 }))),
        "{refused:?}"
    );

    // AMC confirmed the cancel: now it is.
    fx.store
        .apply_transition(Transition::ExecutionStatus(StatusReport {
            execution_id,
            status: ExecutionStatus::Cancelled,
            status_reason: Some("cancelled by the operator".into()),
        }))
        .await
        .unwrap()
        .unwrap();
    fx.store
        .apply_transition(Transition::Intent(other_intent()))
        .await
        .unwrap()
        .unwrap();
}

crate::on_both_backends!(
    a_writer_that_lost_its_lease_is_fenced_out,
    the_instance_limit_holds_across_writers_in_the_database,
    the_daily_limit_holds_across_writers_and_a_refused_create_is_not_counted,
    a_cancelled_week_holds_its_slot_until_amc_confirms_its_execution_ended,
);
