//! A week whose create's reply was lost (the daemon stopped in `submitting`) adopts only an
//! execution of its own parameters: executions of the same saved workflow and window with other
//! parameters, or none, are AMC's too, and never taken for the week's.

use std::time::Duration;

use amc_collector::actors::collection::{build_request, idempotency_key};
use amc_collector::actors::gateway::instance_ref;
use amc_collector::amc::{AmcClient, CreateExecution};
use amc_collector::ids::ExecutionId;
use amc_collector::query_params::{ParamValue, QueryParams};
use amc_collector::status::WeekStatus;
use amc_collector::store::{
    CreateQuota, NewInstance, SubmissionIntent, Transition, WorkflowSource,
};
use serde_json::json;

use super::start_simulator;
use crate::support::pipeline::{
    add_collection_with, assert_completed_weeks_are_traceable, run_until_idle, settings, weeks,
    INSTANCE_ID,
};
use crate::support::{Backend, TestDb};

async fn an_execution_with_other_parameters_is_never_adopted_for_a_week(backend: Backend) {
    // Arrange: a collection of a saved workflow with region=US, its week stopped in `submitting`
    // (intent stored, the create's reply never heard).
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let instance = store
        .insert_instance(&NewInstance {
            instance_id: INSTANCE_ID.into(),
            instance_name: "pipeline".into(),
            region: "na".into(),
            advertiser_id: "ENTITYPIPE".into(),
            marketplace_id: "ATVPDKIKX0DER".into(),
        })
        .await
        .unwrap();
    let workflow = store
        .insert_workflow("saved", &WorkflowSource::Saved("saved_report".into()))
        .await
        .unwrap();
    let mut params = QueryParams::default();
    params
        .insert("region", ParamValue::One("US".into()))
        .unwrap();
    let id = add_collection_with(&store, &instance, &workflow, 1, "UTC", &params).await;
    let week = weeks(&store, id).await.remove(0);
    let request = build_request(
        &workflow,
        &params,
        week.week_start_date,
        week.week_end_date,
        "UTC",
    )
    .unwrap();
    let intent = SubmissionIntent {
        week_id: week.id,
        collection_id: id,
        instance_id: instance.id,
        execution_id: ExecutionId::new(),
        idempotency_key: idempotency_key(&instance, &request),
        window_start: format!("{}T00:00:00", week.week_start_date),
        window_end: format!(
            "{}T00:00:00",
            week.week_end_date + chrono::Duration::days(1)
        ),
        time_zone: "UTC".into(),
        parameters: Some(params.to_json()),
        max_in_flight: 10,
        quota: CreateQuota::UNLIMITED,
        collection_may_be_pending: true,
        fence: store.test_fence(id).await.unwrap(),
    };
    store
        .apply_transition(Transition::Intent(intent))
        .await
        .unwrap()
        .unwrap();
    // On AMC, the same workflow and window run with region=EU and with no parameters at all.
    let sim = start_simulator().await;
    let settings = settings(&db.url, &sim.base_url(), &sim.token_url());
    let client = AmcClient::new(settings.client_config().unwrap()).unwrap();
    let amc_instance = instance_ref(&instance).unwrap();
    let mut others = Vec::new();
    for parameter_values in [json!({"region": "EU"}).as_object().cloned(), None] {
        let other = CreateExecution {
            parameter_values,
            ..request.clone()
        };
        let created = client
            .create_execution(&amc_instance, &other)
            .await
            .unwrap();
        others.push(created.workflow_execution_id.unwrap());
    }

    // Act: the daemon resumes the week, lists AMC's executions for the window, and creates.
    run_until_idle(&store, &settings, Duration::from_secs(60)).await;

    // Assert: the week is stored from an execution of region=US, neither of the others.
    let week = weeks(&store, id).await.remove(0);
    assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
    let amc_id = week.amc_execution_id.clone().unwrap();
    assert!(
        !others.contains(&amc_id),
        "adopted {amc_id}, one of {others:?}"
    );
    let received = sim.received();
    assert_eq!(received.len(), 3, "{received:?}");
    let own = received
        .iter()
        .find(|e| e.workflow_execution_id == amc_id)
        .unwrap();
    assert_eq!(own.parameter_values, Some(json!({"region": "US"})));
    assert_completed_weeks_are_traceable(&store, id).await;
}

crate::actix_on_both_backends!(an_execution_with_other_parameters_is_never_adopted_for_a_week);
