//! The gateway's status board against a wiremock AMC: one listing of an instance answers every
//! week waiting on it, a run that ended is told at the instance's next listing rather than at
//! its own next poll, and what a listing cannot show is read with its own GET.

use std::time::{Duration, Instant};

use actix::prelude::*;
use amc_collector::actors::gateway::{AmcGateway, AwaitExecution, Watch};
use amc_collector::amc::{AmcClient, ExecutionInfo, ExecutionStatus};
use amc_collector::config::Settings;
use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::amc_client::instance;

const EXECUTIONS: &str = "/amc/reporting/amc123/workflowExecutions";
const GAP: Duration = Duration::from_millis(50);

async fn gateway() -> (MockServer, Addr<AmcGateway>) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth/o2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "Atza|a", "token_type": "bearer", "expires_in": 3600})))
        .mount(&server)
        .await;
    let mut config = Settings::default().client_config_with(
        "amzn1.application-oa2-client.test",
        SecretString::from("secret"),
        SecretString::from("Atzr|r"),
    );
    config.base_url_override = Some(server.uri());
    config.token_url = format!("{}/auth/o2/token", server.uri());
    config.max_retries = 0;
    config.max_requests_per_second = 0;
    let client = AmcClient::new(config).expect("loopback client");
    let gateway = AmcGateway::new(client, 10).with_listing_gap(GAP).start();
    (server, gateway)
}

fn execution(id: &str, status: &str) -> Value {
    json!({"workflowExecutionId": id, "workflowId": "wf", "status": status,
           "createTime": "2026-12-07T10:00:00Z"})
}

fn created() -> Option<chrono::DateTime<Utc>> {
    Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).single()
}

async fn mount_listing(server: &MockServer, executions: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "executions": executions })))
        .mount(server)
        .await;
}

async fn mount_get(server: &MockServer, id: &str, status: &str) {
    Mock::given(method("GET"))
        .and(path(format!("{EXECUTIONS}/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(execution(id, status)))
        .mount(server)
        .await;
}

async fn requests(server: &MockServer) -> (Vec<Request>, Vec<Request>) {
    let all = server.received_requests().await.unwrap_or_default();
    let lists = all.iter().filter(|r| r.url.path() == EXECUTIONS).cloned();
    let gets = all
        .iter()
        .filter(|r| r.url.path().starts_with(&format!("{EXECUTIONS}/")));
    (lists.collect(), gets.cloned().collect())
}

fn wait_for(
    gateway: &Addr<AmcGateway>,
    id: &str,
    due_in: Duration,
    watching: bool,
    created: Option<chrono::DateTime<Utc>>,
) -> impl std::future::Future<Output = ExecutionInfo> {
    let now = Instant::now();
    let request = AwaitExecution {
        instance: instance(),
        amc_execution_id: id.into(),
        created,
        due: now + due_in,
        watch: watching.then_some(Watch {
            from: now,
            every: GAP,
        }),
    };
    let sent = gateway.send(request);
    async move { sent.await.expect("gateway alive").expect("status read") }
}

#[actix_rt::test]
async fn a_run_that_ended_is_told_at_the_instances_next_listing_not_at_its_own_next_poll() {
    let (server, gateway) = gateway().await;
    mount_listing(
        &server,
        vec![
            execution("ended", "SUCCEEDED"),
            execution("near", "RUNNING"),
        ],
    )
    .await;
    // "near" is likely ending now, so its instance is listed; "ended" would poll in a minute.
    let started = Instant::now();
    let near = wait_for(&gateway, "near", Duration::from_secs(60), true, created());
    let ended = wait_for(&gateway, "ended", Duration::from_secs(60), false, created());
    let ended = tokio::time::timeout(Duration::from_secs(10), ended)
        .await
        .expect("the ended run is told long before its own poll");
    assert_eq!(ended.status, ExecutionStatus::Succeeded);
    assert!(started.elapsed() < Duration::from_secs(10));

    let (lists, gets) = requests(&server).await;
    assert!(!lists.is_empty(), "the instance was listed");
    assert!(
        gets.is_empty(),
        "no execution was read on its own: {gets:?}"
    );
    let since = lists[0]
        .url
        .query_pairs()
        .find(|(k, _)| k == "minCreationTime")
        .map(|(_, v)| v.into_owned());
    assert_eq!(since.as_deref(), Some("2026-12-07T09:59:59"));
    drop(near);
}

#[actix_rt::test]
async fn one_listing_answers_every_week_of_the_instance_that_is_due() {
    let (server, gateway) = gateway().await;
    let ids: Vec<String> = (0..10).map(|i| format!("run{i}")).collect();
    mount_listing(
        &server,
        ids.iter().map(|id| execution(id, "RUNNING")).collect(),
    )
    .await;
    let waits: Vec<_> = ids
        .iter()
        .map(|id| wait_for(&gateway, id, Duration::ZERO, false, created()))
        .collect();
    for info in futures::future::join_all(waits).await {
        assert_eq!(info.status, ExecutionStatus::Running);
    }
    let (lists, gets) = requests(&server).await;
    assert_eq!(lists.len(), 1, "one listing for ten weeks");
    assert!(gets.is_empty());
}

#[actix_rt::test]
async fn a_run_the_listing_does_not_show_or_of_unknown_creation_is_read_with_its_own_get_once_due()
{
    let (server, gateway) = gateway().await;
    // AMC lists new executions with a lag, and leaves cancelled ones out.
    mount_listing(&server, vec![]).await;
    mount_get(&server, "lagging", "RUNNING").await;
    mount_get(&server, "resumed", "SUCCEEDED").await;
    let lagging = wait_for(&gateway, "lagging", Duration::ZERO, false, created()).await;
    assert_eq!(lagging.status, ExecutionStatus::Running);
    let resumed = wait_for(&gateway, "resumed", Duration::ZERO, false, None).await;
    assert_eq!(resumed.status, ExecutionStatus::Succeeded);
    let (lists, gets) = requests(&server).await;
    assert_eq!(
        lists.len(),
        1,
        "only the run with a known creation time was listed"
    );
    assert_eq!(gets.len(), 2);
}

#[actix_rt::test]
async fn an_instance_whose_listing_amc_refuses_is_read_one_get_per_run_without_listing_again() {
    let (server, gateway) = gateway().await;
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .and(query_param("includeCancelled", "false"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "forbidden"})))
        .mount(&server)
        .await;
    mount_get(&server, "a", "RUNNING").await;
    for _ in 0..3 {
        let info = wait_for(&gateway, "a", Duration::ZERO, true, created()).await;
        assert_eq!(info.status, ExecutionStatus::Running);
    }
    let (lists, gets) = requests(&server).await;
    assert_eq!(
        lists.len(),
        1,
        "listing is not tried again after AMC refused it"
    );
    assert_eq!(gets.len(), 3);
}

#[actix_rt::test]
async fn a_week_not_yet_due_is_not_answered_with_a_status_that_is_still_running() {
    let (server, gateway) = gateway().await;
    mount_listing(
        &server,
        vec![execution("soon", "RUNNING"), execution("later", "RUNNING")],
    )
    .await;
    let soon = wait_for(&gateway, "soon", Duration::ZERO, false, created());
    let later = wait_for(&gateway, "later", Duration::from_secs(2), false, created());
    let started = Instant::now();
    assert_eq!(soon.await.status, ExecutionStatus::Running);
    let later = later.await;
    assert_eq!(later.status, ExecutionStatus::Running);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "answered at its own time, not at the first listing: {:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn a_listing_answered_with_a_proxys_html_page_falls_back_to_gets_and_is_tried_again() {
    let (server, gateway) = gateway().await;
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "text/html",
        ))
        .mount(&server)
        .await;
    mount_get(&server, "a", "RUNNING").await;
    for _ in 0..2 {
        let info = wait_for(&gateway, "a", Duration::ZERO, false, created()).await;
        assert_eq!(info.status, ExecutionStatus::Running);
    }
    let (lists, gets) = requests(&server).await;
    assert_eq!(
        lists.len(),
        2,
        "a garbled listing is not a refusal: listed again"
    );
    assert_eq!(gets.len(), 2);
}
