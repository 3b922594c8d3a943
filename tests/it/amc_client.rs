//! Wire-level tests of the AMC client against a wiremock stand-in for AMC, LwA and S3.

use std::time::Duration;

use amc_collector::amc::{
    AmcClient, AmcClientConfig, AmcError, CreateExecution, ExecutionStatus, InstanceRef,
    ListFilter, Region, TimeWindow, WorkflowSpec,
};
use amc_collector::config::Settings;
use chrono::{NaiveDate, TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};
use wiremock::matchers::{bearer_token, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, Request, ResponseTemplate};

const SECRET: &str = "client-secret-s3cr3t";
const REFRESH: &str = "Atzr|refresh-token-r3fr3sh";
const ACCESS: &str = "Atza|access-token-4cc3ss";
const EXECUTIONS: &str = "/amc/reporting/amc123/workflowExecutions";

fn config(server: &MockServer) -> AmcClientConfig {
    let mut config = Settings::default().client_config_with(
        "amzn1.application-oa2-client.test",
        SecretString::from(SECRET),
        SecretString::from(REFRESH),
    );
    config.base_url_override = Some(server.uri());
    config.token_url = format!("{}/auth/o2/token", server.uri());
    config.request_timeout = Duration::from_secs(5);
    config.max_retries = 2;
    config.backoff_base = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(5);
    config.max_requests_per_second = 0;
    config
}

async fn setup() -> (MockServer, AmcClient) {
    let server = MockServer::start().await;
    mount_token(&server, ACCESS).await;
    let client = AmcClient::new(config(&server)).unwrap();
    (server, client)
}

async fn mount_token(server: &MockServer, access: &str) {
    Mock::given(method("POST"))
        .and(path("/auth/o2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": access, "refresh_token": REFRESH, "token_type": "bearer", "expires_in": 3600}),
        ))
        .mount(server)
        .await;
}

/// The instance every wiremock test of the client addresses (`amc123`).
pub(crate) fn instance() -> InstanceRef {
    InstanceRef {
        instance_id: "amc123".into(),
        advertiser_id: "ENTITY1".into(),
        marketplace_id: "ATVPDKIKX0DER".into(),
        region: Region::Na,
        credentials: None,
    }
}

fn ny_week() -> TimeWindow {
    let day = |d| {
        NaiveDate::from_ymd_opt(2024, 1, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    };
    TimeWindow {
        start: day(1),
        end: day(8),
        time_zone: chrono_tz::America::New_York,
    }
}

fn saved(workflow_id: &str) -> CreateExecution {
    CreateExecution {
        window: ny_week(),
        workflow: WorkflowSpec::Saved {
            workflow_id: workflow_id.into(),
        },
        parameter_values: None,
    }
}

fn execution(id: &str, status: &str, start: &str, end: &str) -> Value {
    json!({"workflowExecutionId": id, "workflowId": "wf", "status": status,
           "createTime": "2024-02-01T10:00:00Z", "timeWindowStart": start, "timeWindowEnd": end})
}

async fn requests_to(server: &MockServer, wanted: &str) -> Vec<Request> {
    let all = server.received_requests().await.unwrap();
    all.into_iter().filter(|r| r.url.path() == wanted).collect()
}

fn get_one() -> MockBuilder {
    Mock::given(method("GET")).and(path(format!("{EXECUTIONS}/e1")))
}

#[tokio::test]
async fn create_sends_the_amc_headers_and_an_explicit_window_for_a_saved_workflow() {
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path(EXECUTIONS))
        .and(bearer_token(ACCESS))
        .and(header(
            "Amazon-Advertising-API-ClientId",
            "amzn1.application-oa2-client.test",
        ))
        .and(header("Amazon-Advertising-API-AdvertiserId", "ENTITY1"))
        .and(header(
            "Amazon-Advertising-API-MarketplaceId",
            "ATVPDKIKX0DER",
        ))
        .and(header("Content-Type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "workflowExecutionId": "e1", "status": "PENDING", "unknownField": [1, 2]})))
        .expect(1)
        .mount(&server)
        .await;

    let info = client
        .create_execution(&instance(), &saved("wf"))
        .await
        .unwrap();

    assert_eq!(info.workflow_execution_id.as_deref(), Some("e1"));
    assert_eq!(info.status, ExecutionStatus::Pending);
    let body: Value = requests_to(&server, EXECUTIONS).await[0]
        .body_json()
        .unwrap();
    assert_eq!(body["timeWindowType"], "EXPLICIT");
    assert_eq!(body["timeWindowStart"], "2024-01-01T00:00:00");
    assert_eq!(body["timeWindowEnd"], "2024-01-08T00:00:00");
    assert_eq!(body["timeWindowTimeZone"], "America/New_York");
    assert_eq!(body["workflowId"], "wf");
    assert!(body.get("workflow").is_none() && body.get("parameterValues").is_none());
    assert!(!body.to_string().contains(SECRET) && !body.to_string().contains(ACCESS));
}

#[tokio::test]
async fn create_inline_sends_the_sql_query_and_parses_the_wrapped_reply() {
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path(EXECUTIONS))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"workflowExecution": {
            "workflowExecutionId": "e2", "workflowId": "transient_1", "status": "RUNNING",
            "timeWindowStart": "2024-01-01T05:00:00Z", "timeWindowEnd": "2024-01-08T05:00:00Z"}})),
        )
        .mount(&server)
        .await;
    let mut params = serde_json::Map::new();
    params.insert("lookback".into(), json!(7));
    let request = CreateExecution {
        window: ny_week(),
        workflow: WorkflowSpec::Inline {
            sql_query: "SELECT 1".into(),
        },
        parameter_values: Some(params),
    };

    let info = client
        .create_execution(&instance(), &request)
        .await
        .unwrap();

    assert_eq!(info.workflow_execution_id.as_deref(), Some("e2"));
    assert_eq!(info.status, ExecutionStatus::Running);
    assert_eq!(
        info.window_start_utc,
        Some(Utc.with_ymd_and_hms(2024, 1, 1, 5, 0, 0).unwrap())
    );
    let body: Value = requests_to(&server, EXECUTIONS).await[0]
        .body_json()
        .unwrap();
    assert_eq!(body["workflow"]["sqlQuery"], "SELECT 1");
    assert_eq!(body["parameterValues"]["lookback"], 7);
    assert!(body.get("workflowId").is_none());
}

#[tokio::test]
async fn create_reply_without_execution_id_is_accepted() {
    let (server, client) = setup().await;
    Mock::given(method("POST"))
        .and(path(EXECUTIONS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "PENDING"})))
        .mount(&server)
        .await;

    let info = client
        .create_execution(&instance(), &saved("wf"))
        .await
        .unwrap();

    assert_eq!(info.workflow_execution_id, None);
}

#[tokio::test]
async fn create_that_times_out_is_not_resent() {
    let server = MockServer::start().await;
    mount_token(&server, ACCESS).await;
    let mut config = config(&server);
    config.request_timeout = Duration::from_millis(200);
    let client = AmcClient::new(config).unwrap();
    Mock::given(method("POST"))
        .and(path(EXECUTIONS))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;

    let err = client
        .create_execution(&instance(), &saved("wf"))
        .await
        .unwrap_err();

    assert!(matches!(err, AmcError::Timeout), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(requests_to(&server, EXECUTIONS).await.len(), 1);
}

#[tokio::test]
async fn unknown_status_is_tolerated() {
    let (server, client) = setup().await;
    get_one()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "workflowExecutionId": "e1", "status": "WARMING_UP", "outputChannels": {"x": 1}})))
        .mount(&server)
        .await;

    let info = client.get_execution(&instance(), "e1").await.unwrap();

    assert_eq!(info.status, ExecutionStatus::Unknown("WARMING_UP".into()));
    assert!(!info.status.is_terminal());
    assert_eq!(info.status.as_str(), "WARMING_UP");
}

#[tokio::test]
async fn throttled_call_waits_for_retry_after_then_succeeds() {
    let (server, client) = setup().await;
    get_one()
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    get_one()
        .respond_with(ResponseTemplate::new(200).set_body_json(execution(
            "e1",
            "SUCCEEDED",
            "",
            "",
        )))
        .mount(&server)
        .await;

    let info = client.get_execution(&instance(), "e1").await.unwrap();

    assert!(info.status.is_success());
    assert_eq!(
        requests_to(&server, &format!("{EXECUTIONS}/e1"))
            .await
            .len(),
        2
    );
    let stats = client.stats();
    assert_eq!(
        (stats.rate_limited, stats.retries, stats.get.requests),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn server_error_is_retried_then_succeeds() {
    let (server, client) = setup().await;
    get_one()
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    get_one()
        .respond_with(ResponseTemplate::new(200).set_body_json(execution("e1", "RUNNING", "", "")))
        .mount(&server)
        .await;

    let info = client.get_execution(&instance(), "e1").await.unwrap();

    assert_eq!(info.status, ExecutionStatus::Running);
    assert_eq!(client.stats().get.status_5xx, 1);
}

#[tokio::test]
async fn bad_request_is_not_retried_and_carries_the_amc_message() {
    let (server, client) = setup().await;
    get_one()
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"code": "400", "details": "bad id"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let err = client.get_execution(&instance(), "e1").await.unwrap_err();

    match &err {
        AmcError::Http {
            status: 400,
            message,
            ..
        } => assert_eq!(message, "bad id"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!err.is_transient());
}

#[tokio::test]
async fn rejected_token_is_refreshed_once_and_the_call_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth/o2/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "old", "expires_in": 3600})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_token(&server, "new").await;
    get_one()
        .and(bearer_token("old"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    get_one()
        .and(bearer_token("new"))
        .respond_with(ResponseTemplate::new(200).set_body_json(execution("e1", "RUNNING", "", "")))
        .mount(&server)
        .await;
    let client = AmcClient::new(config(&server)).unwrap();

    client.get_execution(&instance(), "e1").await.unwrap();

    assert_eq!(requests_to(&server, "/auth/o2/token").await.len(), 2);
    assert_eq!(client.stats().token_refreshes, 2);
}

#[tokio::test]
async fn second_rejection_after_a_refresh_is_an_http_error() {
    let (server, client) = setup().await;
    get_one()
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;

    let err = client.get_execution(&instance(), "e1").await.unwrap_err();

    assert!(matches!(err, AmcError::Http { status: 401, .. }), "{err:?}");
    assert_eq!(
        requests_to(&server, &format!("{EXECUTIONS}/e1"))
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn access_token_is_cached_across_calls() {
    let (server, client) = setup().await;
    get_one()
        .respond_with(ResponseTemplate::new(200).set_body_json(execution("e1", "RUNNING", "", "")))
        .mount(&server)
        .await;
    assert_eq!(client.token_expires_at(), None);

    let instance = instance();
    let calls = (0..5).map(|_| client.get_execution(&instance, "e1"));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }

    assert_eq!(requests_to(&server, "/auth/o2/token").await.len(), 1);
    let expires_in = client.token_expires_at().unwrap() - Utc::now();
    assert!(expires_in > chrono::TimeDelta::minutes(55));
}

#[tokio::test]
async fn html_body_on_success_is_a_decode_error_after_retries() {
    let (server, client) = setup().await;
    get_one()
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>gateway</html>"))
        .mount(&server)
        .await;

    let err = client.get_execution(&instance(), "e1").await.unwrap_err();

    assert!(matches!(err, AmcError::Decode(_)), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(
        requests_to(&server, &format!("{EXECUTIONS}/e1"))
            .await
            .len(),
        3
    );
}

async fn mount_urls(server: &MockServer, files: &[&str], times: Option<u64>) {
    let urls: Vec<String> = files
        .iter()
        .map(|f| format!("{}/s3/{f}?X-Amz-Signature=abc", server.uri()))
        .collect();
    let mock = Mock::given(method("GET"))
        .and(path(format!("{EXECUTIONS}/e1/downloadUrls")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"downloadUrls": urls})));
    match times {
        Some(n) => mock.up_to_n_times(n).with_priority(1).mount(server).await,
        None => mock.mount(server).await,
    }
}

async fn mount_file(server: &MockServer, name: &str, status: u16, body: &str) {
    Mock::given(method("GET"))
        .and(path(format!("/s3/{name}")))
        .respond_with(ResponseTemplate::new(status).set_body_string(body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn download_results_fetches_every_file_in_order_without_amc_headers() {
    let (server, client) = setup().await;
    mount_urls(&server, &["part-1.csv", "part-0.csv"], None).await;
    mount_file(&server, "part-0.csv", 200, "a,b\n1,2\n").await;
    mount_file(&server, "part-1.csv", 200, "a,b\n").await;

    let files = client.download_results(&instance(), "e1").await.unwrap();

    assert_eq!(files, vec![&b"a,b\n"[..], &b"a,b\n1,2\n"[..]]);
    for request in requests_to(&server, "/s3/part-0.csv").await {
        assert!(request.headers.get("authorization").is_none());
        assert!(request
            .headers
            .get("amazon-advertising-api-clientid")
            .is_none());
    }
}

#[tokio::test]
async fn expired_download_url_is_renewed_and_the_download_resumes() {
    let (server, client) = setup().await;
    mount_urls(&server, &["old.csv"], Some(1)).await;
    mount_urls(&server, &["new.csv"], None).await;
    mount_file(
        &server,
        "old.csv",
        403,
        "<Error>Request has expired</Error>",
    )
    .await;
    mount_file(&server, "new.csv", 200, "x\n").await;

    let files = client.download_results(&instance(), "e1").await.unwrap();

    assert_eq!(files, vec![&b"x\n"[..]]);
    assert_eq!(
        requests_to(&server, &format!("{EXECUTIONS}/e1/downloadUrls"))
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn results_larger_than_the_limit_are_refused() {
    let server = MockServer::start().await;
    mount_token(&server, ACCESS).await;
    let mut config = config(&server);
    config.max_result_bytes = 6;
    let client = AmcClient::new(config).unwrap();
    mount_urls(&server, &["a.csv", "b.csv"], None).await;
    mount_file(&server, "a.csv", 200, "1234").await;
    mount_file(&server, "b.csv", 200, "5678").await;

    let err = client
        .download_results(&instance(), "e1")
        .await
        .unwrap_err();

    assert!(
        matches!(err, AmcError::ResultTooLarge { limit: 6 }),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn download_urls_before_results_exist_is_not_ready() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path(format!("{EXECUTIONS}/e1/downloadUrls")))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(
                json!({"message": "Execution with ID e1 is unavailable for download."}),
            ),
        )
        .mount(&server)
        .await;

    let err = client.download_urls(&instance(), "e1").await.unwrap_err();

    assert!(matches!(err, AmcError::NotReady), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn find_execution_matches_the_utc_echo_and_ignores_a_failed_twin() {
    let (server, client) = setup().await;
    let (start, end) = ("2024-01-01T05:00:00Z", "2024-01-08T05:00:00Z");
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .and(query_param("minCreationTime", "2024-02-01T09:55:00"))
        .and(query_param("workflowId", "wf"))
        .and(query_param("includeCancelled", "false"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"executions": [
            execution("failed", "FAILED", start, end),
            execution("other-week", "SUCCEEDED", "2024-01-08T05:00:00Z", "2024-01-15T05:00:00Z"),
            execution("naive-utc", "SUCCEEDED", "2024-01-01T00:00:00Z", "2024-01-08T00:00:00Z"),
            execution("live", "RUNNING", start, end),
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let created_after = Utc.with_ymd_and_hms(2024, 2, 1, 10, 0, 0).unwrap();

    let found = client
        .find_execution(
            &instance(),
            &saved("wf"),
            created_after,
            &["failed".to_string()],
        )
        .await
        .unwrap();

    assert_eq!(
        found.unwrap().workflow_execution_id.as_deref(),
        Some("live")
    );
}

#[tokio::test]
async fn find_execution_does_not_adopt_an_earlier_attempts_failed_execution() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"executions": [
            execution("failed", "REJECTED", "2024-01-01T05:00:00Z", "2024-01-08T05:00:00Z")]})),
        )
        .mount(&server)
        .await;

    let earlier = client
        .find_execution(
            &instance(),
            &saved("wf"),
            Utc::now(),
            &["failed".to_string()],
        )
        .await
        .unwrap();
    let this_attempt = client
        .find_execution(&instance(), &saved("wf"), Utc::now(), &[])
        .await
        .unwrap();

    assert!(earlier.is_none());
    // An unknown execution that already ended is this attempt's: adopting it avoids a second create.
    assert_eq!(
        this_attempt.unwrap().workflow_execution_id.as_deref(),
        Some("failed")
    );
}

#[tokio::test]
async fn find_execution_matches_an_sql_echo_that_differs_only_in_whitespace_and_comments() {
    let (server, client) = setup().await;
    let (start, end) = ("2024-01-01T05:00:00Z", "2024-01-08T05:00:00Z");
    let with_sql = |id: &str, sql: &str| {
        let mut item = execution(id, "SUCCEEDED", start, end);
        item["sqlQuery"] = json!(sql);
        item
    };
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .and(query_param("includeWorkflow", "true"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"executions": [
                // Same tokens, but the literal's two spaces became one: another query.
                with_sql("other-literal", "SELECT tag FROM t WHERE tag = 'a b'"),
                with_sql("unlexable", "SELECT tag FROM t WHERE tag = 'a  b"),
                with_sql("reformatted", "SELECT  tag\n\tFROM t /* echo */ WHERE tag = 'a  b' ;"),
            ]})),
        )
        .mount(&server)
        .await;
    let request = CreateExecution {
        window: ny_week(),
        workflow: WorkflowSpec::Inline {
            sql_query: "SELECT tag FROM t WHERE tag = 'a  b'".into(),
        },
        parameter_values: None,
    };

    let found = client
        .find_execution(&instance(), &request, Utc::now(), &[])
        .await
        .unwrap();

    assert_eq!(
        found.unwrap().workflow_execution_id.as_deref(),
        Some("reformatted")
    );
}

#[tokio::test]
async fn list_paging_follows_next_token() {
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .and(query_param("nextToken", "page2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"executions": [execution("b", "PENDING", "", "")]})),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(EXECUTIONS))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "executions": [execution("a", "RUNNING", "", "")], "nextToken": "page2"})))
        .mount(&server)
        .await;

    let listed = client
        .list_executions(&instance(), &ListFilter::default())
        .await
        .unwrap();

    let ids: Vec<_> = listed
        .iter()
        .filter_map(|i| i.workflow_execution_id.as_deref())
        .collect();
    assert_eq!(ids, ["a", "b"]);
}

#[tokio::test]
async fn cancel_puts_the_cancelled_status() {
    let (server, client) = setup().await;
    Mock::given(method("PUT"))
        .and(path(format!("{EXECUTIONS}/e1")))
        .and(body_string_contains("\"status\":\"CANCELLED\""))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    client.cancel_execution(&instance(), "e1").await.unwrap();
}

#[tokio::test]
async fn errors_and_debug_output_never_contain_secrets() {
    let server = MockServer::start().await;
    // A hostile token endpoint echoing the credentials it received.
    Mock::given(method("POST"))
        .and(path("/auth/o2/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": format!("{REFRESH} {SECRET} {ACCESS}")})))
        .mount(&server)
        .await;
    let config = config(&server);
    let client = AmcClient::new(config.clone()).unwrap();

    // The refusal is an outage: the call waits for a token instead of failing.
    let target = instance();
    let call = client.get_execution(&target, "e1");
    let waited = tokio::time::timeout(Duration::from_millis(300), call).await;

    assert!(waited.is_err(), "the call did not wait: {waited:?}");
    let credentials = client.credentials();
    assert!(credentials.failing, "{credentials:?}");
    let cause = credentials.describe().unwrap();
    assert!(cause.ends_with("http 400 (invalid_grant)"), "{cause}");
    let (server2, client2) = setup().await;
    get_one()
        .respond_with(ResponseTemplate::new(401))
        .mount(&server2)
        .await;
    let http_err = client2.get_execution(&instance(), "e1").await.unwrap_err();
    let outputs = [
        format!("{config:?}"),
        format!("{client:?}"),
        format!("{cause} {credentials:?}"),
        format!("{http_err} {http_err:?}"),
    ];
    for text in outputs {
        for secret in [SECRET, REFRESH, ACCESS] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}

#[tokio::test]
async fn token_endpoint_server_error_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth/o2/token"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_token(&server, ACCESS).await;
    get_one()
        .and(bearer_token(ACCESS))
        .respond_with(ResponseTemplate::new(200).set_body_json(execution("e1", "RUNNING", "", "")))
        .mount(&server)
        .await;
    let client = AmcClient::new(config(&server)).unwrap();

    client.get_execution(&instance(), "e1").await.unwrap();

    assert_eq!(requests_to(&server, "/auth/o2/token").await.len(), 2);
    assert_eq!(client.stats().token.status_5xx, 1);
}

#[test]
fn client_and_its_futures_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>(_: &T) {}
    fn assert_send<T: Send>(_: T) {}
    let config = Settings::default().client_config_with(
        "id",
        SecretString::from("s"),
        SecretString::from("r"),
    );
    let client = AmcClient::new(config).unwrap();
    assert_send_sync(&client);
    let instance = instance();
    let request = saved("wf");
    assert_send(client.create_execution(&instance, &request));
    assert_send(client.find_execution(&instance, &request, Utc::now(), &[]));
    assert_send(client.download_results(&instance, "e1"));
    assert_send(client.cancel_execution(&instance, "e1"));
}

#[test]
fn region_parses_case_insensitively_and_displays_lowercase() {
    assert_eq!("EU".parse::<Region>().unwrap(), Region::Eu);
    assert_eq!(Region::Fe.to_string(), "fe");
    assert_eq!(serde_json::to_string(&Region::Na).unwrap(), "\"na\"");
    assert_eq!(
        serde_json::from_str::<Region>("\"FE\"").unwrap(),
        Region::Fe
    );
    assert!("us".parse::<Region>().is_err());
    assert_eq!(
        Region::Eu.base_url(),
        "https://advertising-api-eu.amazon.com"
    );
}

mod download_faults;

#[tokio::test]
async fn an_api_reply_larger_than_its_cap_is_refused_instead_of_buffered() {
    // Arrange: a 9 MiB downloadUrls reply (the cap is 8 MiB).
    let (server, client) = setup().await;
    let huge = format!(
        "{{\"downloadUrls\": [\"{}\"]}}",
        "x".repeat(9 * 1024 * 1024)
    );
    Mock::given(method("GET"))
        .and(path(format!("{EXECUTIONS}/e1/downloadUrls")))
        .respond_with(ResponseTemplate::new(200).set_body_string(huge))
        .mount(&server)
        .await;

    // Act
    let error = client.download_urls(&instance(), "e1").await.unwrap_err();

    // Assert: a transient decode error (retried, bounded), never the 9 MiB parsed.
    assert!(matches!(error, AmcError::Decode(_)), "{error:?}");
    assert!(error.to_string().contains("larger than"), "{error}");
}

#[tokio::test]
async fn a_download_url_that_is_plain_http_to_another_host_is_refused_without_a_request() {
    // Arrange
    let (server, client) = setup().await;
    Mock::given(method("GET"))
        .and(path(format!("{EXECUTIONS}/e1/downloadUrls")))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"downloadUrls": ["http://bucket.example.com/f.csv?X-Amz-Signature=secret"]}"#,
        ))
        .mount(&server)
        .await;

    // Act
    let error = client
        .download_results(&instance(), "e1")
        .await
        .unwrap_err();

    // Assert: refused for good, and the signed query never appears in the error.
    assert!(matches!(error, AmcError::InsecureUrl(_)), "{error:?}");
    assert!(!error.is_transient());
    let text = error.to_string();
    assert!(text.contains("http://bucket.example.com"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}
