//! Query parameters: `collection create --param` fills a workflow's `{{name}}` placeholders with
//! escaped literals in the `sqlQuery` AMC receives, or sends them to a saved workflow as
//! `parameterValues`; an execution with other parameters is never adopted for a week; bad
//! parameters exit 2 and write nothing.

mod adoption;
mod bad_input;

use std::net::SocketAddr;
use std::time::Duration;

use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle};
use amc_collector::status::WeekStatus;
use serde_json::{json, Value};

use crate::support::pipeline::{run_until_idle, settings, weeks, INSTANCE_ID};
use crate::support::{stdout_of, Backend, TestDb};

/// Inline SQL with two parameters besides the dates (and a comment, removed before sending).
const SQL: &str = "-- brand report\n\
    SELECT asin, SUM(impressions) AS impressions\nFROM t\n\
    WHERE brand = {{brand}} AND asin IN ({{ asins }})\n\
    AND d >= '{{start_date}}' AND d <= '{{end_date}}'\nGROUP BY 1;\n";

/// A brand that tries to close its literal and comment out the rest of the query.
const BRAND: &str = "O'Brien --";

async fn start_simulator() -> SimulatorHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 30,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    };
    simulator::start(bind, config).await.unwrap()
}

/// A database with the pipeline's instance and a workflow `name` made by the real binary, and a
/// list file of three ASINs (one with a quote, blank lines and spaces around).
async fn catalog(backend: Backend, workflow: &[&str]) -> TestDb {
    let db = TestDb::new(backend).await;
    std::fs::write(db.path("weekly.sql"), SQL).unwrap();
    std::fs::write(db.path("asins.txt"), "B0001\n\n  B0002 \nit's\n").unwrap();
    stdout_of(
        &db.run_async(&[
            "instance",
            "add",
            "--instance-id",
            INSTANCE_ID,
            "--advertiser-id",
            "ENTITYPIPE",
            "--marketplace-id",
            "ATVPDKIKX0DER",
        ])
        .await,
    );
    let mut args = vec!["workflow", "add", "--name", "branded"];
    args.extend_from_slice(workflow);
    stdout_of(&db.run_async(&args).await);
    db
}

/// `collection create` of two weeks with `params`; its `--json` output.
async fn create(db: &TestDb, params: &[&str]) -> Value {
    let mut args = vec![
        "collection",
        "create",
        "--workflow",
        "branded",
        "--instance",
        INSTANCE_ID,
        "--weeks",
        "2",
        "--json",
    ];
    for param in params {
        args.extend_from_slice(&["--param", param]);
    }
    serde_json::from_str(&stdout_of(&db.run_async(&args).await)).unwrap()
}

/// Runs the daemon in-process until every collection is done; every week must be completed.
async fn collect(db: &TestDb, sim: &SimulatorHandle, collection: &Value) {
    let store = db.store().await;
    let settings = settings(&db.url, &sim.base_url(), &sim.token_url());
    run_until_idle(&store, &settings, Duration::from_secs(60)).await;
    let id = collection["id"].as_str().unwrap().parse().unwrap();
    for week in weeks(&store, id).await {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
    }
}

async fn inline_sql_reaches_amc_with_each_parameter_an_escaped_literal(backend: Backend) {
    // Arrange
    let db = catalog(backend, &["--sql-file", "weekly.sql"]).await;
    let sim = start_simulator().await;
    let brand = format!("brand={BRAND}");
    let collection = create(&db, &[&brand, "asins=@asins.txt"]).await;
    let stored = json!({"asins": ["B0001", "B0002", "it's"], "brand": BRAND});
    assert_eq!(collection["parameters"], stored);

    // Act
    collect(&db, &sim, &collection).await;

    // Assert: AMC received the query with the literals quoted and their quotes doubled, the
    // dates of each week, no comment, and no parameterValues.
    let received = sim.received();
    assert_eq!(received.len(), 2, "{received:?}");
    for execution in &received {
        let start =
            chrono::NaiveDate::parse_from_str(&execution.time_window_start[..10], "%F").unwrap();
        let end = start + chrono::Duration::days(6);
        let expected = format!(
            "SELECT asin, SUM(impressions) AS impressions FROM t \
             WHERE brand = 'O''Brien --' AND asin IN ('B0001', 'B0002', 'it''s') \
             AND d >= '{start}' AND d <= '{end}' GROUP BY 1"
        );
        assert_eq!(execution.sql_query.as_deref(), Some(expected.as_str()));
        assert_eq!(execution.parameter_values, None);
    }

    // `collection show` names them, in JSON and in text.
    let id = collection["id"].as_str().unwrap();
    let show = db.run_async(&["collection", "show", id, "--json"]).await;
    let show: Value = serde_json::from_str(&stdout_of(&show)).unwrap();
    assert_eq!(show["parameters"], stored);
    let text = stdout_of(&db.run_async(&["collection", "show", id]).await);
    assert!(
        text.contains(r#"parameters {"asins":["B0001","B0002","it's"],"brand":"O'Brien --"}"#),
        "{text}"
    );
}

async fn a_saved_workflow_receives_the_parameters_as_parameter_values(backend: Backend) {
    // Arrange
    let db = catalog(backend, &["--amc-workflow-id", "saved_brand_report"]).await;
    let sim = start_simulator().await;
    let collection = create(&db, &["region=US", "asins=@asins.txt"]).await;

    // Act
    collect(&db, &sim, &collection).await;

    // Assert: each week created once, with the workflow's id, the window and the parameters.
    let received = sim.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let mut windows: Vec<&str> = received
        .iter()
        .map(|e| e.time_window_start.as_str())
        .collect();
    windows.dedup();
    assert_eq!(windows.len(), 2, "{received:?}");
    for execution in &received {
        assert_eq!(execution.workflow_id, "saved_brand_report");
        assert_eq!(execution.sql_query, None);
        assert_eq!(
            execution.parameter_values,
            Some(json!({"asins": ["B0001", "B0002", "it's"], "region": "US"}))
        );
    }
}

crate::actix_on_both_backends!(
    inline_sql_reaches_amc_with_each_parameter_an_escaped_literal,
    a_saved_workflow_receives_the_parameters_as_parameter_values,
);
