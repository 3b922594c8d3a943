//! Submitting and following executions: the create wire format, create faults the client rides
//! out, adoption of an execution whose create reply had no id, and wrapped reply shapes.

use std::collections::HashMap;

use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::Week;
use serde_json::Value;

use super::fake_amc::{executions_path, CreateFault, FakeAmc, Script, ACCESS_TOKEN};
use super::harness::{
    assert_completed_with, collection_status, header, run, script, sql_fixture, SQL,
};
use crate::support::pipeline::{
    add_collection, assert_completed_weeks_are_traceable, stored_row_count, weeks, CLIENT_ID,
};
use crate::support::Backend;

/// GET requests to the list endpoint (`.../workflowExecutions?...`).
/// Listings that searched for an execution to adopt (the gateway's status listings, which ask
/// for a page size, are left out).
async fn list_requests(amc: &FakeAmc) -> Vec<wiremock::Request> {
    let mut found = amc.requests().await;
    found.retain(|r| r.method.as_str() == "GET" && r.url.path() == executions_path());
    found.retain(|r| !r.url.query_pairs().any(|(k, _)| k == "limit"));
    found
}

async fn a_two_week_collection_completes_with_one_explicit_create_per_week(backend: Backend) {
    // Arrange
    let (fx, stored) = sql_fixture(backend, 2).await;
    let amc = FakeAmc::start(script()).await;

    // Act
    run(&fx, &amc).await;

    // Assert: the stored weeks.
    for week in &weeks(&fx.store, fx.collection_id).await {
        assert_completed_with(week, &amc, 2);
        assert_eq!(week.attempts, 1);
        assert_eq!(stored_row_count(&fx.store, week).await, 2);
        let checksum = week.data_checksum.clone().unwrap();
        assert!(checksum.len() == 64 && checksum == checksum.to_ascii_lowercase());
    }
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
    assert_eq!(collection_status(&fx).await.0, CollectionStatus::Completed);

    // Assert: exactly one create per week, in the documented wire format.
    let all_creates = amc
        .requests()
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == executions_path())
        .count();
    assert_eq!(all_creates, 2);
    for week in &stored {
        let creates = amc.creates_for(week.week_start_date).await;
        assert_eq!(creates.len(), 1, "creates for {}", week.week_start_date);
        let create = &creates[0];
        let body: Value = create.body_json().unwrap();
        let end = week.week_end_date + chrono::Duration::days(1);
        assert_eq!(body["timeWindowType"], "EXPLICIT");
        assert_eq!(
            body["timeWindowStart"],
            format!("{}T00:00:00", week.week_start_date)
        );
        assert_eq!(body["timeWindowEnd"], format!("{end}T00:00:00"));
        assert_eq!(body["timeWindowTimeZone"], "UTC");
        let sql = amc_collector::actors::collection::prepare_sql(
            SQL,
            week.week_start_date,
            week.week_end_date,
        )
        .unwrap();
        assert_eq!(body["workflow"]["sqlQuery"], sql.as_str());
        let bearer = format!("Bearer {ACCESS_TOKEN}");
        assert_eq!(header(create, "authorization"), Some(bearer.as_str()));
        assert_eq!(
            header(create, "amazon-advertising-api-clientid"),
            Some(CLIENT_ID)
        );
        assert_eq!(
            header(create, "amazon-advertising-api-advertiserid"),
            Some(fx.instance.advertiser_id.as_str())
        );
        assert_eq!(
            header(create, "amazon-advertising-api-marketplaceid"),
            Some(fx.instance.marketplace_id.as_str())
        );
    }

    // Assert: the status was polled past RUNNING, and the downloads carried no AMC credentials.
    for week in &stored {
        let amc_id = amc.amc_ids_for(week.week_start_date).pop().unwrap();
        let looks = amc.looks_at(&amc_id);
        assert!(looks >= 2, "RUNNING then SUCCEEDED: {looks}");
    }
    let downloads = amc.downloads().await;
    assert_eq!(downloads.len(), 2);
    for download in &downloads {
        assert_eq!(header(download, "authorization"), None);
        assert_eq!(header(download, "amazon-advertising-api-clientid"), None);
    }
}

/// Two weeks whose first create (per window) gets `fault`: both complete with one execution each.
async fn assert_create_fault_is_survived(backend: Backend, fault: CreateFault) {
    // Arrange
    let (fx, stored) = sql_fixture(backend, 2).await;
    let amc = FakeAmc::start(Script {
        create_faults: vec![fault],
        ..script()
    })
    .await;

    // Act
    run(&fx, &amc).await;

    // Assert
    for week in &weeks(&fx.store, fx.collection_id).await {
        assert_completed_with(week, &amc, 2);
        assert_eq!(week.attempts, 1, "the fault must not cost an attempt");
    }
    for week in &stored {
        assert_eq!(
            amc.creates_for(week.week_start_date).await.len(),
            2,
            "one refused and one successful create"
        );
        assert_eq!(amc.amc_ids_for(week.week_start_date).len(), 1);
    }
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
}

async fn a_create_throttled_with_retry_after_zero_is_resent_and_completes(backend: Backend) {
    assert_create_fault_is_survived(backend, CreateFault::Throttled).await;
}

async fn a_create_answered_500_is_resent_and_completes(backend: Backend) {
    assert_create_fault_is_survived(backend, CreateFault::ServerError).await;
}

async fn a_create_reply_without_an_id_is_adopted_from_the_list_without_a_second_create(
    backend: Backend,
) {
    // Arrange
    let (fx, stored) = sql_fixture(backend, 2).await;
    let amc = FakeAmc::start(Script {
        omit_create_id: true,
        ..script()
    })
    .await;

    // Act
    run(&fx, &amc).await;

    // Assert
    for week in &weeks(&fx.store, fx.collection_id).await {
        assert_completed_with(week, &amc, 2);
    }
    for week in &stored {
        assert_eq!(amc.creates_for(week.week_start_date).await.len(), 1);
        assert_eq!(amc.amc_ids_for(week.week_start_date).len(), 1);
    }
    let lists = list_requests(&amc).await;
    assert!(!lists.is_empty(), "the executions were never listed");
    for list in &lists {
        let query: HashMap<_, _> = list.url.query_pairs().into_owned().collect();
        assert_eq!(
            query.get("includeWorkflow").map(String::as_str),
            Some("true")
        );
    }
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
}

async fn adoption_tells_apart_the_same_dates_submitted_in_two_time_zones(backend: Backend) {
    // Arrange: the same SQL and dates in UTC and in New York; AMC lists both executions.
    let (fx, _) = sql_fixture(backend, 2).await;
    let new_york =
        add_collection(&fx.store, &fx.instance, &fx.workflow, 2, "America/New_York").await;
    let dates = |w: Vec<Week>| w.iter().map(|w| w.week_start_date).collect::<Vec<_>>();
    assert_eq!(
        dates(weeks(&fx.store, fx.collection_id).await),
        dates(weeks(&fx.store, new_york).await),
        "the two collections must share their dates for this test to mean anything"
    );
    let amc = FakeAmc::start(Script {
        omit_create_id: true,
        ..script()
    })
    .await;

    // Act
    run(&fx, &amc).await;

    // Assert: each week adopted the execution submitted in its own zone.
    for (collection, zone) in [(fx.collection_id, "UTC"), (new_york, "America/New_York")] {
        for week in weeks(&fx.store, collection).await {
            assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
            let amc_id = week.amc_execution_id.clone().unwrap();
            assert_eq!(amc.zone_of(&amc_id).as_deref(), Some(zone), "{week:?}");
        }
        assert_completed_weeks_are_traceable(&fx.store, collection).await;
    }
    assert_eq!(amc.execution_count(), 4, "one create per week and zone");
}

async fn wrapped_execution_replies_on_create_and_get_are_understood(backend: Backend) {
    // Arrange
    let (fx, _) = sql_fixture(backend, 2).await;
    // Status listings refused, so that each status is read with a GET.
    let amc = FakeAmc::start(Script {
        wrap_replies: true,
        refuse_status_listings: true,
        ..script()
    })
    .await;

    // Act
    run(&fx, &amc).await;

    // Assert: completed (so the wrapped GET status was read) without adoption by listing (so
    // the wrapped create's id was read).
    for week in &weeks(&fx.store, fx.collection_id).await {
        assert_completed_with(week, &amc, 2);
        assert_eq!(amc.creates_for(week.week_start_date).await.len(), 1);
    }
    assert!(list_requests(&amc).await.is_empty());
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
}

crate::actix_on_both_backends!(
    a_two_week_collection_completes_with_one_explicit_create_per_week,
    a_create_throttled_with_retry_after_zero_is_resent_and_completes,
    a_create_answered_500_is_resent_and_completes,
    a_create_reply_without_an_id_is_adopted_from_the_list_without_a_second_create,
    adoption_tells_apart_the_same_dates_submitted_in_two_time_zones,
    wrapped_execution_replies_on_create_and_get_are_understood,
);

/// Fails today (src bug): once `ADOPTION_LOOKUPS` listings miss the execution, `week_flow::submit`
/// creates again although AMC acknowledged the first create with a 2xx.
async fn a_create_acknowledged_without_an_id_is_not_resent_while_the_list_lags(backend: Backend) {
    // Arrange: the execution exists from the first create but shows only in the fourth listing.
    let (fx, stored) = sql_fixture(backend, 1).await;
    let amc = FakeAmc::start(Script {
        omit_create_id: true,
        list_lag: 3,
        ..script()
    })
    .await;

    // Act
    run(&fx, &amc).await;

    // Assert
    assert_eq!(
        amc.amc_ids_for(stored[0].week_start_date),
        amc.amc_ids_for(stored[0].week_start_date)[..1],
        "a duplicate AMC execution was created"
    );
    assert_completed_with(&weeks(&fx.store, fx.collection_id).await[0], &amc, 2);
}

mod a_create_acknowledged_without_an_id_is_not_resent_while_the_list_lags {
    #[actix_rt::test]
    async fn on_sqlite() {
        super::a_create_acknowledged_without_an_id_is_not_resent_while_the_list_lags(
            crate::support::Backend::Sqlite,
        )
        .await
    }

    #[actix_rt::test]
    async fn on_postgres() {
        super::a_create_acknowledged_without_an_id_is_not_resent_while_the_list_lags(
            crate::support::Backend::Postgres,
        )
        .await
    }
}
