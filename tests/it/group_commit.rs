//! Group commit, on SQLite and Postgres: many week transitions in one transaction still get one
//! verdict each, a refused or failing transition does not take its neighbours down, and the
//! instance's slot limit holds inside a batch.

use crate::support::pipeline::{completed_week, drive_to_downloading, fixture, intent, weeks};
use crate::support::Backend;
use amc_collector::ids::ExecutionId;
use amc_collector::status::WeekStatus;
use amc_collector::store::{Refused, StoreError, Submitted, Transition, WorkflowSource};

async fn each_transition_of_a_batch_gets_its_own_verdict(backend: Backend) {
    let fx = fixture(backend, 3, WorkflowSource::Sql("SELECT 1".into())).await;
    let all = weeks(&fx.store, fx.collection_id).await;
    let (first, second) = (ExecutionId::new(), ExecutionId::new());

    let verdicts = fx
        .store
        .apply_transitions(&[
            Transition::Intent(intent(&fx, &all[0], first)),
            Transition::Submitted(Submitted {
                collection_id: fx.collection_id,
                execution_id: ExecutionId::new(),
                amc_execution_id: "amc-unknown".into(),
                fence: fx.fence.clone(),
            }),
            Transition::Intent(intent(&fx, &all[1], second)),
        ])
        .await;

    assert!(matches!(verdicts[0], Ok(Ok(()))), "{:?}", verdicts[0]);
    assert!(
        matches!(verdicts[1], Ok(Err(Refused::Stale(_)))),
        "{:?}",
        verdicts[1]
    );
    assert!(matches!(verdicts[2], Ok(Ok(()))), "{:?}", verdicts[2]);
    let now = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(now[0].status, WeekStatus::Submitting);
    assert_eq!(now[0].execution_id, Some(first));
    assert_eq!(now[1].status, WeekStatus::Submitting);
    assert_eq!(now[1].execution_id, Some(second));
    assert_eq!(now[2].status, WeekStatus::Pending);
}

async fn the_instance_limit_holds_inside_one_batch(backend: Backend) {
    let fx = fixture(backend, 3, WorkflowSource::Sql("SELECT 1".into())).await;
    let all = weeks(&fx.store, fx.collection_id).await;
    let batch: Vec<Transition> = all
        .iter()
        .map(|week| {
            let mut intent = intent(&fx, week, ExecutionId::new());
            intent.max_in_flight = 2;
            Transition::Intent(intent)
        })
        .collect();

    let verdicts = fx.store.apply_transitions(&batch).await;

    assert!(
        matches!(verdicts[..2], [Ok(Ok(())), Ok(Ok(()))]),
        "{verdicts:?}"
    );
    assert!(
        matches!(verdicts[2], Ok(Err(Refused::SlotsFull { in_flight: 2 }))),
        "{verdicts:?}"
    );
    let in_flight = weeks(&fx.store, fx.collection_id)
        .await
        .iter()
        .filter(|week| week.status == WeekStatus::Submitting)
        .count();
    assert_eq!(in_flight, 2);
}

async fn a_failing_transition_does_not_take_its_batch_down(backend: Backend) {
    let fx = fixture(backend, 2, WorkflowSource::Sql("SELECT 1".into())).await;
    let all = weeks(&fx.store, fx.collection_id).await;
    let execution_id = drive_to_downloading(&fx, &all[0], "amc-1").await;
    let done = completed_week(&fx, &all[0], execution_id, "amc-1").await;
    // An intent reusing the execution id of the first week: the executions' primary key refuses
    // the statement, which aborts the whole transaction on Postgres.
    let broken = intent(&fx, &all[1], execution_id);

    let verdicts = fx
        .store
        .apply_transitions(&[Transition::Intent(broken), Transition::Completed(done)])
        .await;

    assert!(
        matches!(verdicts[0], Err(StoreError::Database(_))),
        "{:?}",
        verdicts[0]
    );
    assert!(matches!(verdicts[1], Ok(Ok(()))), "{:?}", verdicts[1]);
    let now = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(now[0].status, WeekStatus::Completed);
    assert_eq!(now[0].row_count, Some(2));
    assert_eq!(now[1].status, WeekStatus::Pending);
    assert_eq!(now[1].execution_id, None);
}

crate::on_both_backends!(
    each_transition_of_a_batch_gets_its_own_verdict,
    the_instance_limit_holds_inside_one_batch,
    a_failing_transition_does_not_take_its_batch_down,
);
