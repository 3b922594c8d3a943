//! The outbox at the store level: concurrent claims never hand one alert to two processes, an
//! expired lease is taken over, an operator's cancel writes its alert in its own transaction, and
//! a reopened collection is reported again when it ends again.

use chrono::{TimeDelta, Utc};

use crate::support::pipeline::fixture;
use crate::support::Backend;
use amc_collector::store::{AlertEvent, Control, NewAlert, WorkflowSource};

const SQL: &str = "SELECT 1";

fn alert(n: usize) -> NewAlert {
    NewAlert {
        event: AlertEvent::CredentialsFailing,
        collection_id: None,
        dedup_key: Some(format!("test:{n}")),
        payload: serde_json::json!({ "n": n }),
    }
}

async fn concurrent_claims_share_the_alerts_without_overlap(backend: Backend) {
    // Arrange
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    for n in 0..10 {
        fx.store.enqueue_alert(&alert(n)).await.unwrap();
    }
    fx.store.enqueue_alert(&alert(0)).await.unwrap(); // the same key again writes nothing
    let until = Utc::now() + TimeDelta::minutes(5);

    // Act
    let other = fx.db.store().await;
    let (a, b) = tokio::join!(
        fx.store.claim_alerts("process-a", until, 6),
        other.claim_alerts("process-b", until, 6)
    );

    // Assert
    let mut ids: Vec<i64> = a
        .unwrap()
        .iter()
        .chain(b.unwrap().iter())
        .map(|x| x.id)
        .collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "an alert was claimed twice");
    assert_eq!(ids.len(), 10);
    assert!(fx
        .store
        .claim_alerts("process-c", until, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn an_expired_claim_is_taken_over_and_a_delivered_alert_never_again(backend: Backend) {
    // Arrange: a process claimed an alert and died (its lease is already over).
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    fx.store.enqueue_alert(&alert(1)).await.unwrap();
    let past = Utc::now() - TimeDelta::seconds(1);
    let first = fx.store.claim_alerts("dead", past, 5).await.unwrap();
    assert_eq!(first.len(), 1);

    // Act
    let until = Utc::now() + TimeDelta::minutes(5);
    let taken = fx.store.claim_alerts("alive", until, 5).await.unwrap();
    fx.store.alert_delivered(taken[0].id).await.unwrap();

    // Assert
    assert_eq!(taken[0].id, first[0].id);
    assert_eq!(fx.store.undelivered_alerts().await.unwrap().count, 0);
    let never = fx
        .store
        .claim_alerts("late", Utc::now() + TimeDelta::minutes(9), 5);
    assert!(never.await.unwrap().is_empty());
}

async fn a_cancelled_collection_writes_its_alert_once(backend: Backend) {
    // Arrange
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;

    // Act
    fx.store
        .apply_control(fx.collection_id, Control::Cancel)
        .await
        .unwrap();
    let again = fx
        .store
        .apply_control(fx.collection_id, Control::Cancel)
        .await;

    // Assert
    assert!(again.is_err());
    let until = Utc::now() + TimeDelta::minutes(5);
    let claimed = fx.store.claim_alerts("p", until, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event, "collection.cancelled");
    assert_eq!(claimed[0].collection_id, Some(fx.collection_id));
}

async fn a_collection_given_up_writes_collection_failed(backend: Backend) {
    // Arrange
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;

    // Act
    fx.store
        .fail_collection(fx.collection_id, "actor kept crashing")
        .await
        .unwrap();
    fx.store
        .fail_collection(fx.collection_id, "actor kept crashing")
        .await
        .unwrap();

    // Assert: once, with the reason.
    let until = Utc::now() + TimeDelta::minutes(5);
    let claimed = fx.store.claim_alerts("p", until, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].event, "collection.failed");
    assert!(claimed[0].payload.contains("actor kept crashing"));

    // A reopened collection that fails again is reported again.
    fx.store
        .apply_control(fx.collection_id, Control::RetryFailed)
        .await
        .unwrap();
    fx.store
        .fail_collection(fx.collection_id, "again")
        .await
        .unwrap();
    let claimed = fx.store.claim_alerts("p", until, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert!(claimed[0].payload.contains("again"));
}

async fn pruning_deletes_only_alerts_delivered_before_the_cutoff(backend: Backend) {
    // Arrange: two alerts, one delivered, one not.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    fx.store.enqueue_alert(&alert(1)).await.unwrap();
    fx.store.enqueue_alert(&alert(2)).await.unwrap();
    let until = Utc::now() + TimeDelta::minutes(5);
    let claimed = fx.store.claim_alerts("p", until, 1).await.unwrap();
    assert_eq!(claimed.len(), 1, "a claim takes at most its limit");
    fx.store.alert_delivered(claimed[0].id).await.unwrap();

    // Act: a cutoff before the delivery deletes nothing; one after it deletes the delivered one.
    let before = Utc::now() - TimeDelta::days(7);
    let none = fx.store.prune_delivered_alerts(before).await.unwrap();
    let after = Utc::now() + TimeDelta::seconds(1);
    let pruned = fx.store.prune_delivered_alerts(after).await.unwrap();

    // Assert: the undelivered alert stays, whatever its age.
    assert_eq!((none, pruned), (0, 1));
    assert_eq!(fx.store.undelivered_alerts().await.unwrap().count, 1);
    let left = fx.store.claim_alerts("q", until, 5).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].id, claimed[0].id);
}

async fn a_claim_takes_at_most_its_limit_of_alerts(backend: Backend) {
    // Arrange
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    for n in 0..5 {
        fx.store.enqueue_alert(&alert(n)).await.unwrap();
    }
    let until = Utc::now() + TimeDelta::minutes(5);

    // Act
    let first = fx.store.claim_alerts("p", until, 2).await.unwrap();
    let rest = fx.store.claim_alerts("q", until, 10).await.unwrap();

    // Assert: Postgres once claimed more than the limit (a re-run `IN (... LIMIT n)` subquery).
    assert_eq!((first.len(), rest.len()), (2, 3));
}

crate::on_both_backends!(
    a_claim_takes_at_most_its_limit_of_alerts,
    pruning_deletes_only_alerts_delivered_before_the_cutoff,
    concurrent_claims_share_the_alerts_without_overlap,
    an_expired_claim_is_taken_over_and_a_delivered_alert_never_again,
    a_cancelled_collection_writes_its_alert_once,
    a_collection_given_up_writes_collection_failed,
);
