//! Black-box tests of the AMC simulator over real loopback HTTP with reqwest.

use std::time::{Duration, Instant};

use amc_collector::simulator::{self, expected_result_files, SimulatorConfig, SimulatorHandle};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use crate::support::wait_until;

const INSTANCE: &str = "amc1234abcd";

struct Sim {
    handle: SimulatorHandle,
    client: reqwest::Client,
    token: String,
}

fn fast_config() -> SimulatorConfig {
    SimulatorConfig {
        pending_ms: 5,
        running_ms: 30,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    }
}

async fn spawn(config: SimulatorConfig) -> Sim {
    let handle = simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let (client_id, client_secret, refresh_token) = handle.credentials();
    let reply: Value = client
        .post(handle.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reply["access_token"].as_str().unwrap().to_owned();
    Sim {
        handle,
        client,
        token,
    }
}

fn week(start: &str, end: &str) -> Value {
    json!({
        "timeWindowType": "EXPLICIT",
        "timeWindowStart": format!("{start}T00:00:00"),
        "timeWindowEnd": format!("{end}T00:00:00"),
        "timeWindowTimeZone": "UTC",
        "workflowId": "weekly_sales",
    })
}

/// The execution object whatever the reply shape.
fn object(reply: Value) -> Value {
    match reply.get("workflowExecution") {
        Some(inner) => inner.clone(),
        None => reply,
    }
}

impl Sim {
    fn amc(&self, method: Method, path: &str) -> RequestBuilder {
        let (client_id, _, _) = self.handle.credentials();
        self.client
            .request(
                method,
                format!("{}/amc/reporting/{INSTANCE}{path}", self.handle.base_url()),
            )
            .bearer_auth(&self.token)
            .header("Amazon-Advertising-API-ClientId", client_id)
            .header("Amazon-Advertising-API-AdvertiserId", "ENTITY123")
            .header("Amazon-Advertising-API-MarketplaceId", "ATVPDKIKX0DER")
    }

    async fn create(&self, body: &Value) -> reqwest::Response {
        self.amc(Method::POST, "/workflowExecutions")
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn create_id(&self, body: &Value) -> String {
        let reply = self.create(body).await;
        assert_eq!(reply.status(), StatusCode::OK);
        let execution = object(reply.json().await.unwrap());
        execution["workflowExecutionId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn execution(&self, id: &str) -> Value {
        let reply = self
            .amc(Method::GET, &format!("/workflowExecutions/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        object(reply.json().await.unwrap())
    }

    /// Polls until the execution reaches `status`, failing after a generous deadline.
    async fn wait_for(&self, id: &str, status: &str) -> Value {
        let what = format!("execution {id} is {status}");
        wait_until(what, Duration::from_secs(10), || async {
            let execution = self.execution(id).await;
            (execution["status"] == status).then_some(execution)
        })
        .await
    }

    async fn download_urls(&self, id: &str) -> reqwest::Response {
        self.amc(
            Method::GET,
            &format!("/workflowExecutions/{id}/downloadUrls"),
        )
        .send()
        .await
        .unwrap()
    }

    async fn urls_of_succeeded(&self, id: &str) -> Vec<String> {
        self.wait_for(id, "SUCCEEDED").await;
        let reply: Value = self.download_urls(id).await.json().await.unwrap();
        reply["downloadUrls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|url| url.as_str().unwrap().to_owned())
            .collect()
    }

    async fn list(&self, query: &str) -> Value {
        let reply = self
            .amc(Method::GET, &format!("/workflowExecutions?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        reply.json().await.unwrap()
    }
}

#[tokio::test]
async fn token_endpoint_refuses_wrong_credentials_with_oauth_errors() {
    let sim = spawn(fast_config()).await;
    let (client_id, client_secret, _) = sim.handle.credentials();
    let wrong_grant = sim
        .client
        .post(sim.handle.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "Atzr|stolen"),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_grant.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        wrong_grant.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    let wrong_client = sim
        .client
        .post(sim.handle.token_url())
        .form(&[("grant_type", "refresh_token"), ("client_id", "someone")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_client.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong_client.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    assert!(sim.token.starts_with("Atza|"));
    assert_eq!(sim.handle.stats().token_refreshes, 1);
}

#[tokio::test]
async fn wrong_or_revoked_token_is_answered_401() {
    let mut sim = spawn(fast_config()).await;
    let good = sim.list("").await;
    assert_eq!(good["executions"], json!([]));

    let real = std::mem::replace(&mut sim.token, "Atza|forged".into());
    let reply = sim
        .amc(Method::GET, "/workflowExecutions")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json::<Value>().await.unwrap()["code"], "401");

    sim.token = real;
    sim.handle.control().revoke_access_tokens();
    let reply = sim
        .amc(Method::GET, "/workflowExecutions")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.handle.stats().served_401, 2);
}

#[tokio::test]
async fn missing_marketplace_header_is_400_and_foreign_client_id_is_403() {
    let sim = spawn(fast_config()).await;
    let url = format!(
        "{}/amc/reporting/{INSTANCE}/workflowExecutions",
        sim.handle.base_url()
    );
    let (client_id, _, _) = sim.handle.credentials();
    let no_marketplace = sim
        .client
        .get(&url)
        .bearer_auth(&sim.token)
        .header("Amazon-Advertising-API-ClientId", &client_id)
        .header("Amazon-Advertising-API-AdvertiserId", "ENTITY123")
        .send()
        .await
        .unwrap();
    assert_eq!(no_marketplace.status(), StatusCode::BAD_REQUEST);

    let foreign = sim
        .client
        .get(&url)
        .bearer_auth(&sim.token)
        .header(
            "Amazon-Advertising-API-ClientId",
            "amzn1.application-oa2-client.other",
        )
        .header("Amazon-Advertising-API-AdvertiserId", "ENTITY123")
        .header("Amazon-Advertising-API-MarketplaceId", "ATVPDKIKX0DER")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn eleventh_execution_stays_pending_while_ten_run_and_takes_a_cancelled_slot() {
    let sim = spawn(SimulatorConfig {
        pending_ms: 0,
        running_ms: 60_000,
        ..fast_config()
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..11 {
        let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Days::new(7 * n);
        let end = start + chrono::Days::new(7);
        ids.push(
            sim.create_id(&week(&start.to_string(), &end.to_string()))
                .await,
        );
    }
    for id in &ids[..10] {
        assert_eq!(sim.execution(id).await["status"], "RUNNING");
    }
    assert_eq!(sim.execution(&ids[10]).await["status"], "PENDING");

    let cancel = sim
        .amc(Method::PUT, &format!("/workflowExecutions/{}", ids[0]))
        .json(&json!({"status": "CANCELLED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), StatusCode::OK);
    assert_eq!(cancel.bytes().await.unwrap().len(), 0);
    let cancelled = sim.execution(&ids[0]).await;
    assert_eq!(cancelled["status"], "CANCELLED");
    assert!(cancelled["statusReason"].is_string());
    assert_eq!(sim.execution(&ids[10]).await["status"], "RUNNING");

    let stats = sim.handle.stats();
    assert_eq!(stats.max_running_per_instance[INSTANCE], 10);
    assert_eq!(stats.max_in_flight_per_instance[INSTANCE], 11);
    assert_eq!(stats.cancels, 1);
}

#[tokio::test]
async fn execution_succeeds_and_its_files_match_the_expected_deterministic_csv() {
    let sim = spawn(fast_config()).await;
    let id = sim.create_id(&week("2024-03-04", "2024-03-11")).await;
    let urls = sim.urls_of_succeeded(&id).await;

    let expected = expected_result_files(
        INSTANCE,
        "weekly_sales",
        "2024-03-04T00:00:00",
        "2024-03-11T00:00:00",
        1.0,
    );
    assert_eq!(urls.len(), expected.len());
    for (url, expected_file) in urls.iter().zip(&expected) {
        let reply = sim.client.get(url).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        assert_eq!(reply.headers()["content-type"], "text/csv");
        let body = reply.bytes().await.unwrap();
        assert_eq!(&body[..], &expected_file[..]);
        let records: Vec<csv::StringRecord> = csv::Reader::from_reader(&body[..])
            .records()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(records.iter().all(|record| record.len() == 5));
        let parsed = records.len();
        let expected_rows = csv::Reader::from_reader(&expected_file[..])
            .records()
            .count();
        assert_eq!(parsed, expected_rows);
    }
    assert_eq!(sim.handle.stats().downloads, urls.len() as u64);
}

#[tokio::test]
async fn download_urls_before_success_are_refused_as_unavailable() {
    let sim = spawn(SimulatorConfig {
        running_ms: 60_000,
        ..fast_config()
    })
    .await;
    let id = sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    let reply = sim.download_urls(&id).await;
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    let details = reply.json::<Value>().await.unwrap()["details"].clone();
    assert_eq!(
        details,
        format!("Execution with ID {id} is unavailable for download")
    );
}

#[tokio::test]
async fn expired_download_url_is_refused_with_403_access_denied() {
    let sim = spawn(fast_config()).await;
    let id = sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    let urls = sim.urls_of_succeeded(&id).await;
    sim.handle.control().expire_urls_after(Duration::ZERO);

    let reply = sim.client.get(&urls[0]).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    let body = reply.text().await.unwrap();
    assert!(body.contains("<Code>AccessDenied</Code>") && body.contains("Request has expired"));
    assert_eq!(sim.handle.stats().served_403_download, 1);
}

#[tokio::test]
async fn authorization_header_on_a_presigned_download_is_refused_with_400() {
    let sim = spawn(fast_config()).await;
    let id = sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    let urls = sim.urls_of_succeeded(&id).await;
    let reply = sim
        .client
        .get(&urls[0])
        .bearer_auth(&sim.token)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn list_pages_with_next_token_and_filters_by_min_creation_time() {
    let sim = spawn(fast_config()).await;
    let mut created = Vec::new();
    for start in [
        "2024-01-01",
        "2024-01-08",
        "2024-01-15",
        "2024-01-22",
        "2024-01-29",
    ] {
        created.push(sim.create_id(&week(start, "2024-02-05")).await);
    }

    let mut seen = Vec::new();
    let mut query = "limit=2&sortAscending=true".to_owned();
    let mut pages = 0;
    loop {
        let page = sim.list(&query).await;
        pages += 1;
        for execution in page["executions"].as_array().unwrap() {
            seen.push(
                execution["workflowExecutionId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        match page["nextToken"].as_str() {
            Some(token) => query = format!("limit=2&sortAscending=true&nextToken={token}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, created);

    let newest_first = sim.list("limit=3").await;
    let newest: Vec<&str> = newest_first["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|execution| execution["workflowExecutionId"].as_str().unwrap())
        .collect();
    assert_eq!(newest, [&created[4], &created[3], &created[2]]);
    let token = newest_first["nextToken"].as_str().unwrap();
    let rest = sim.list(&format!("limit=3&nextToken={token}")).await;
    assert_eq!(rest["executions"].as_array().unwrap().len(), 2);
    assert!(rest.get("nextToken").is_none());

    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S");
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S");
    let all = sim.list(&format!("minCreationTime={past}&limit=100")).await;
    assert_eq!(all["executions"].as_array().unwrap().len(), 5);
    assert!(all.get("nextToken").is_none());
    let none = sim.list(&format!("minCreationTime={future}")).await;
    assert_eq!(none["executions"], json!([]));
}

#[tokio::test]
async fn cancelling_a_succeeded_execution_is_refused_with_400() {
    let sim = spawn(fast_config()).await;
    let id = sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    sim.wait_for(&id, "SUCCEEDED").await;
    let reply = sim
        .amc(Method::PUT, &format!("/workflowExecutions/{id}"))
        .json(&json!({"status": "CANCELLED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn create_reply_may_omit_the_id_but_the_execution_is_listed() {
    let sim = spawn(SimulatorConfig {
        omit_id_rate: 1.0,
        ..fast_config()
    })
    .await;
    let reply = sim.create(&week("2024-01-01", "2024-01-08")).await;
    assert_eq!(reply.status(), StatusCode::OK);
    let execution = object(reply.json().await.unwrap());
    assert!(execution.get("workflowExecutionId").is_none());
    assert_eq!(execution["status"], "PENDING");

    let listed = sim.list("").await;
    let executions = listed["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 1);
    assert_eq!(
        executions[0]["timeWindowStartOriginal"],
        "2024-01-01T00:00:00"
    );
    assert!(executions[0]["workflowExecutionId"].is_string());
    assert_eq!(sim.handle.stats().omitted_ids, 1);
}

#[tokio::test]
async fn throttled_create_answers_429_with_retry_after_and_creates_nothing() {
    let sim = spawn(SimulatorConfig {
        rate_429: 1.0,
        retry_after_secs: 7,
        ..fast_config()
    })
    .await;
    let reply = sim.create(&week("2024-01-01", "2024-01-08")).await;
    assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers()["retry-after"], "7");

    sim.handle.control().set_rate_429(0.0);
    assert_eq!(sim.list("").await["executions"], json!([]));
    let stats = sim.handle.stats();
    assert_eq!((stats.creates_total, stats.served_429), (0, 1));
}

#[tokio::test]
async fn server_faults_rotate_through_500_502_503() {
    let sim = spawn(SimulatorConfig {
        rate_5xx: 1.0,
        ..fast_config()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = sim
            .amc(Method::GET, "/workflowExecutions")
            .send()
            .await
            .unwrap();
        statuses.push(reply.status().as_u16());
    }
    assert_eq!(statuses, [500, 502, 503]);
}

#[tokio::test]
async fn fail_and_reject_windows_end_failed_and_rejected_with_a_reason() {
    let sim = spawn(SimulatorConfig {
        fail_windows: vec!["2024-01-01".parse().unwrap()],
        ..fast_config()
    })
    .await;
    sim.handle
        .control()
        .reject_window("2024-01-08".parse().unwrap());
    let failed = sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    let rejected = sim.create_id(&week("2024-01-08", "2024-01-15")).await;

    let failed = sim.wait_for(&failed, "FAILED").await;
    assert!(failed["statusReason"]
        .as_str()
        .unwrap()
        .contains("Query failed"));
    let rejected = sim.wait_for(&rejected, "REJECTED").await;
    assert!(rejected["statusReason"]
        .as_str()
        .unwrap()
        .contains("same or overlapping time windows"));
}

#[tokio::test]
async fn stats_count_creates_per_window_and_can_be_read_and_reset_over_http() {
    let sim = spawn(fast_config()).await;
    sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    let mut inline = week("2024-01-08", "2024-01-15");
    inline.as_object_mut().unwrap().remove("workflowId");
    inline["workflow"] = json!({"sqlQuery": "SELECT 1 AS one"});
    let transient = sim.create(&inline).await;
    let transient = object(transient.json().await.unwrap());
    assert!(transient["workflowId"]
        .as_str()
        .unwrap()
        .starts_with("transient_"));

    let stats: Value = sim
        .client
        .get(format!("{}/__sim/stats", sim.handle.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = format!("{INSTANCE}|weekly_sales|2024-01-01T00:00:00|2024-01-08T00:00:00|UTC");
    assert_eq!(stats["creates_per_window"][&key], 2);
    assert_eq!(stats["creates_total"], 3);
    let sql_key = format!(
        "{INSTANCE}|{}|2024-01-08T00:00:00|2024-01-15T00:00:00|UTC",
        simulator::sql_workflow_key("SELECT 1 AS one")
    );
    assert_eq!(stats["creates_per_window"][&sql_key], 1);

    let reset = sim
        .client
        .post(format!("{}/__sim/reset-stats", sim.handle.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::OK);
    assert_eq!(sim.handle.stats().creates_total, 0);
}

#[tokio::test]
async fn invalid_create_requests_are_refused_with_400() {
    let sim = spawn(fast_config()).await;
    let mut bodies = Vec::new();
    let mut body = week("2024-01-01", "2024-01-08");
    body["timeWindowType"] = json!("MOST_RECENT_DAY");
    bodies.push(body);
    let mut body = week("2024-01-01", "2024-01-08");
    body["timeWindowStart"] = json!("2024-01-01");
    bodies.push(body);
    bodies.push(week("2024-01-08", "2024-01-01"));
    let mut body = week("2024-01-01", "2024-01-08");
    body["timeWindowTimeZone"] = json!("Mars/Olympus_Mons");
    bodies.push(body);
    let mut body = week("2024-01-01", "2024-01-08");
    body["workflow"] = json!({"sqlQuery": "SELECT 1"});
    bodies.push(body);
    let mut body = week("2024-01-01", "2024-01-08");
    body.as_object_mut().unwrap().remove("workflowId");
    body["workflow"] = json!({"sqlQuery": "SELECT 1\nFROM t"});
    bodies.push(body);

    for body in &bodies {
        let reply = sim.create(body).await;
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(sim.handle.stats().creates_total, 0);
}

fn inline(start: &str, end: &str, sql: &str) -> Value {
    let mut body = week(start, end);
    body.as_object_mut().unwrap().remove("workflowId");
    body["workflow"] = json!({ "sqlQuery": sql });
    body
}

#[tokio::test]
async fn a_single_line_query_that_a_comment_or_open_literal_cuts_short_is_refused_as_amc_would() {
    let sim = spawn(fast_config()).await;
    let folded = "-- notes SELECT campaign FROM t WHERE d >= '2024-01-01'";
    let open = "SELECT campaign FROM t WHERE tag = 'a  b";

    let folded_reply = sim
        .create(&inline("2024-01-01", "2024-01-08", folded))
        .await;
    let open_reply = sim.create(&inline("2024-01-01", "2024-01-08", open)).await;
    let kept = sim
        .create(&inline(
            "2024-01-01",
            "2024-01-08",
            "SELECT '-- text' /* a block comment */ FROM t",
        ))
        .await;

    assert_eq!(folded_reply.status(), StatusCode::BAD_REQUEST);
    let message = folded_reply.text().await.unwrap();
    assert!(message.contains("comments out the rest"), "{message}");
    assert_eq!(open_reply.status(), StatusCode::BAD_REQUEST);
    let message = open_reply.text().await.unwrap();
    assert!(message.contains("unterminated string literal"), "{message}");
    assert_eq!(kept.status(), StatusCode::OK);
    assert_eq!(sim.handle.stats().creates_total, 1);
}

#[tokio::test]
async fn the_reformatted_echo_fault_changes_only_the_whitespace_of_sql_query() {
    let sim = spawn(SimulatorConfig {
        echo_sql_reformatted: true,
        ..fast_config()
    })
    .await;
    let sql = "SELECT campaign, 'a  b' AS \"my tag\" FROM t WHERE d >= '2024-01-01'";
    let id = sim
        .create_id(&inline("2024-01-01", "2024-01-08", sql))
        .await;
    let get = |id: String| {
        let request = sim.amc(
            Method::GET,
            &format!("/workflowExecutions/{id}?includeWorkflow=true"),
        );
        async move { object(request.send().await.unwrap().json().await.unwrap()) }
    };

    let got = get(id.clone()).await;
    let listed = sim.list("includeWorkflow=true").await;
    sim.handle.control().set_echo_sql_reformatted(false);
    let plain = get(id.clone()).await;

    let echo = got["sqlQuery"].as_str().unwrap();
    assert_ne!(echo, sql);
    assert_eq!(amc_collector::sql::single_line(echo).unwrap(), sql);
    assert_eq!(listed["executions"][0]["sqlQuery"], echo);
    assert_eq!(plain["sqlQuery"], sql);
    let stats = sim.handle.stats();
    assert_eq!(stats.echoed_sql_reformatted, 2);
    // Results stay keyed by the submitted text.
    let key = format!(
        "{INSTANCE}|{}|2024-01-01T00:00:00|2024-01-08T00:00:00|UTC",
        simulator::sql_workflow_key(sql)
    );
    assert_eq!(stats.creates_per_window.get(&key), Some(&1));
}

#[tokio::test]
async fn windows_are_echoed_in_utc_with_the_submitted_originals() {
    let sim = spawn(SimulatorConfig {
        reply_shape: simulator::ReplyShape::Wrapped,
        ..fast_config()
    })
    .await;
    let mut body = week("2024-01-01", "2024-01-08");
    body["timeWindowTimeZone"] = json!("America/New_York");
    let reply: Value = sim.create(&body).await.json().await.unwrap();
    let execution = &reply["workflowExecution"];
    assert_eq!(execution["timeWindowStart"], "2024-01-01T05:00:00Z");
    assert_eq!(execution["timeWindowEnd"], "2024-01-08T05:00:00Z");
    assert_eq!(execution["timeWindowStartOriginal"], "2024-01-01T00:00:00");
    assert_eq!(execution["timeWindowTimeZoneOriginal"], "America/New_York");
    assert_eq!(execution["outputS3URI"], "N/A");
    assert!(execution["createTime"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn unknown_paths_and_executions_are_404_json() {
    let sim = spawn(fast_config()).await;
    let reply = sim
        .client
        .get(format!("{}/nowhere", sim.handle.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    assert_eq!(reply.json::<Value>().await.unwrap()["code"], "404");
    let reply = sim
        .amc(Method::GET, "/workflowExecutions/0000")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn simulator_runs_under_the_actix_runtime_and_stops_gracefully() {
    let sim = spawn(fast_config()).await;
    let id = sim.create_id(&week("2024-01-01", "2024-01-08")).await;
    sim.wait_for(&id, "SUCCEEDED").await;
    let addr = sim.handle.addr();
    let started = Instant::now();
    drop(sim.client);
    sim.handle.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test]
async fn concurrent_creates_on_several_instances_never_exceed_the_slot_limit() {
    let sim = spawn(SimulatorConfig {
        pending_ms: 0,
        running_ms: 10,
        publishing_ms: 0,
        max_running_per_instance: 4,
        duration_jitter_pct: 50.0,
        ..fast_config()
    })
    .await;
    let (client_id, _, _) = sim.handle.credentials();
    let creates = (0..200).map(|n| {
        let request = sim
            .client
            .post(format!(
                "{}/amc/reporting/amc{}/workflowExecutions",
                sim.handle.base_url(),
                n % 4
            ))
            .bearer_auth(&sim.token)
            .header("Amazon-Advertising-API-ClientId", &client_id)
            .header("Amazon-Advertising-API-AdvertiserId", "ENTITY123")
            .header("Amazon-Advertising-API-MarketplaceId", "ATVPDKIKX0DER")
            .json(&week("2024-01-01", "2024-01-08"));
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures::future::join_all(creates).await;
    assert!(statuses.iter().all(|status| *status == StatusCode::OK));

    let stats = sim.handle.stats();
    assert_eq!(stats.creates_total, 200);
    for n in 0..4 {
        let instance = format!("amc{n}");
        // The limit is what matters; how close a loaded machine gets to it is timing.
        let running = stats.max_running_per_instance[&instance];
        assert!(
            (1..=4).contains(&running),
            "{instance}: {running} running at once"
        );
        let key = format!("{instance}|weekly_sales|2024-01-01T00:00:00|2024-01-08T00:00:00|UTC");
        assert_eq!(stats.creates_per_window[&key], 50);
    }
}

mod download_faults;
