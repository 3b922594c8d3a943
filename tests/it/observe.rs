//! Runtime inspection end to end: the real daemon (in-process, and as the real binary) against
//! the AMC simulator and a real database on both backends, inspected through `/healthz`,
//! `/readyz`, `/metrics`, `/status`, the `status` command and the SIGUSR1 dump.

use std::collections::HashMap;
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::pipeline::{fixture, settings, Fixture, INSTANCE_ID};
use crate::support::{assert_usage_error, binary, wait_until, Backend};
use amc_collector::actors::supervisor::SupervisorEvent;
use amc_collector::app::App;
use amc_collector::observe::TreeStatus;
use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle};
use amc_collector::store::WorkflowSource;
use secrecy::SecretString;

const SQL: &str = "SELECT campaign, SUM(impressions) FROM t WHERE d >= '{{start_date}}' GROUP BY 1";
const TOKEN: &str = "obs-test-token-0123";

async fn start_simulator(running_ms: u64, rate_429: f64) -> SimulatorHandle {
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms,
        publishing_ms: 5,
        rate_429,
        ..SimulatorConfig::default()
    };
    simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

async fn sql_fixture(backend: Backend, weeks: i64) -> Fixture {
    fixture(backend, weeks, WorkflowSource::Sql(SQL.into())).await
}

/// Starts the daemon in-process with its endpoint on a free loopback port.
async fn launch(
    fx: &Fixture,
    sim: &SimulatorHandle,
    token: Option<&str>,
    exit_when_idle: bool,
) -> (App, String) {
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.http.token = token.map(SecretString::from);
    settings.scheduler.tree_log_interval_seconds = 0;
    let app = App::build(&settings).store(fx.store.clone()).inspected();
    let daemon = app.exit_when_idle(exit_when_idle).start().await.unwrap();
    let endpoint = daemon.observer().and_then(|observer| observer.http_addr());
    let base = format!("http://{}", endpoint.unwrap());
    (daemon, base)
}

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn get_text(url: &str) -> (u16, String) {
    let response = get(url, None).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `series{labels}` -> value, from the exposition text.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').unwrap();
            (key.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[track_caller]
fn metric(series: &HashMap<String, f64>, key: &str) -> f64 {
    *series
        .get(key)
        .unwrap_or_else(|| panic!("series {key} missing"))
}

/// Polls `/status` until `accept` holds; fails after a generous deadline.
async fn wait_for_tree(base: &str, accept: impl Fn(&TreeStatus) -> bool) -> TreeStatus {
    wait_until("/status matches", Duration::from_secs(60), || async {
        let tree: TreeStatus = get(&format!("{base}/status"), None)
            .await
            .json()
            .await
            .unwrap();
        accept(&tree).then_some(tree)
    })
    .await
}

/// Runs the real binary off the async thread: the in-process daemon must keep answering.
async fn run_binary(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(binary());
        command
            .args(&args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    })
    .await
    .unwrap()
}

async fn metrics_report_weeks_requests_and_durations_after_a_collection_completes(
    backend: Backend,
) {
    let fx = sql_fixture(backend, 3).await;
    let sim = start_simulator(30, 0.2).await;
    let (mut daemon, base) = launch(&fx, &sim, None, true).await;
    tokio::time::timeout(Duration::from_secs(60), &mut daemon.idle)
        .await
        .expect("collection did not finish in time")
        .unwrap();

    let response = get(&format!("{base}/metrics"), None).await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let series = parse_metrics(&response.text().await.unwrap());
    let stats = sim.stats();

    assert_eq!(metric(&series, "amc_collector_database_up"), 1.0);
    assert_eq!(
        metric(&series, r#"amc_collector_weeks{status="completed"}"#),
        3.0
    );
    assert_eq!(
        metric(&series, r#"amc_collector_weeks{status="pending"}"#),
        0.0
    );
    assert_eq!(
        metric(&series, r#"amc_collector_collections{status="completed"}"#),
        1.0
    );
    let creates_ok = r#"amc_collector_amc_requests_total{endpoint="create",class="2xx"}"#;
    assert_eq!(metric(&series, creates_ok), stats.creates_total as f64);
    let gets_ok = r#"amc_collector_amc_requests_total{endpoint="get",class="2xx"}"#;
    assert_eq!(metric(&series, gets_ok), stats.gets as f64);
    let downloads_ok = r#"amc_collector_amc_requests_total{endpoint="download",class="2xx"}"#;
    assert_eq!(metric(&series, downloads_ok), stats.downloads as f64);
    let tokens_ok = r#"amc_collector_amc_requests_total{endpoint="token",class="2xx"}"#;
    assert!(metric(&series, tokens_ok) >= 1.0);
    assert_eq!(
        metric(&series, "amc_collector_amc_rate_limited_total"),
        stats.served_429 as f64
    );
    let in_flight =
        format!(r#"amc_collector_executions_in_flight{{amc_instance="{INSTANCE_ID}"}}"#);
    assert_eq!(metric(&series, &in_flight), 0.0);
    assert_eq!(
        metric(&series, "amc_collector_executions_in_flight_limit"),
        10.0
    );
    assert_eq!(
        metric(
            &series,
            r#"amc_collector_actor_restarts_total{actor="collection"}"#
        ),
        0.0
    );
    assert_eq!(
        metric(&series, "amc_collector_collections_given_up_total"),
        0.0
    );
    assert_eq!(metric(&series, "amc_collector_shutting_down"), 0.0);
    assert!(metric(&series, "amc_collector_amc_token_expiry_timestamp_seconds") > 0.0);
    let histogram = "amc_collector_week_duration_seconds";
    assert_eq!(metric(&series, &format!("{histogram}_count")), 3.0);
    assert_eq!(
        metric(&series, &format!(r#"{histogram}_bucket{{le="+Inf"}}"#)),
        3.0
    );
    assert_eq!(
        metric(&series, &format!(r#"{histogram}_bucket{{le="86400"}}"#)),
        3.0
    );
    let sum = metric(&series, &format!("{histogram}_sum"));
    assert!(
        sum > 0.0 && sum < 600.0,
        "durations of simulated weeks: {sum}"
    );
    daemon.stop().await.unwrap();
}

async fn status_endpoint_and_command_show_collections_slots_and_progress(backend: Backend) {
    let fx = sql_fixture(backend, 2).await;
    // Both weeks at once: the workflow has run on the instance before (no probing).
    crate::support::pipeline::prove_workflow(&fx).await;
    // Executions stay RUNNING for the whole test, so the child and its slots stay visible.
    let sim = start_simulator(600_000, 0.0).await;
    let (daemon, base) = launch(&fx, &sim, None, false).await;
    let tree = wait_for_tree(&base, |tree| {
        let slots = tree.gateway.slots.get(INSTANCE_ID).map_or(0, |s| s.in_use);
        let active = tree
            .supervisor
            .children
            .first()
            .and_then(|c| c.progress.clone());
        let polled = tree.gateway.token_expires_at.is_some() && tree.gateway.requests_total >= 3;
        slots == 2 && active.is_some_and(|p| p.active == 2) && polled
    })
    .await;

    let child = &tree.supervisor.children[0];
    assert_eq!(tree.supervisor.children.len(), 1);
    assert_eq!(child.collection_id, fx.collection_id);
    assert!(child.running);
    assert!(!tree.supervisor.shutting_down);
    assert_eq!(tree.gateway.limit, 10);
    assert_eq!(tree.gateway.rate_limited_total, 0);

    let output = run_binary(vec!["status".into(), "--url".into(), base.clone()], vec![]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("supervisor: 1 collection actor(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("collection {}", fx.collection_id)),
        "{stdout}"
    );
    assert!(stdout.contains("weeks active 2"), "{stdout}");
    assert!(
        stdout.contains(&format!("instance {INSTANCE_ID}  in use 2/10")),
        "{stdout}"
    );
    assert!(stdout.contains("token expires in"), "{stdout}");
    assert!(stdout.contains("write(s) in flight"), "{stdout}");

    let port = base.rsplit(':').next().unwrap().to_string();
    let env = vec![("AMC_COLLECTOR__HTTP__BIND", format!("127.0.0.1:{port}"))];
    let output = run_binary(vec!["status".into(), "--json".into()], env).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: TreeStatus = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        printed.supervisor.children[0].collection_id,
        fx.collection_id
    );
    daemon.stop().await.unwrap();
}

async fn readiness_turns_unavailable_once_shutdown_starts(backend: Backend) {
    let fx = sql_fixture(backend, 1).await;
    let sim = start_simulator(600_000, 0.0).await;
    let (daemon, base) = launch(&fx, &sim, None, false).await;
    assert_eq!(
        get_text(&format!("{base}/readyz")).await,
        (200, "ready\n".into())
    );
    assert_eq!(
        get_text(&format!("{base}/healthz")).await,
        (200, "ok\n".into())
    );

    daemon
        .supervisor
        .send(SupervisorEvent::ShutdownRequested {
            deadline: Duration::from_secs(5),
        })
        .await
        .unwrap();

    let (status, body) = get_text(&format!("{base}/readyz")).await;
    assert_eq!(status, 503);
    assert!(body.contains("shutting down"), "{body}");
    assert_eq!(get_text(&format!("{base}/healthz")).await.0, 200);
    let (_, metrics) = get_text(&format!("{base}/metrics")).await;
    assert_eq!(
        metric(&parse_metrics(&metrics), "amc_collector_shutting_down"),
        1.0
    );
    // The endpoint closes only now, in `stop` (a second shutdown finds nothing left to stop).
    daemon.stop().await.unwrap();
}

async fn every_route_demands_the_bearer_token_when_one_is_configured(backend: Backend) {
    let fx = sql_fixture(backend, 1).await;
    let sim = start_simulator(600_000, 0.0).await;
    let (daemon, base) = launch(&fx, &sim, Some(TOKEN), false).await;
    for path in ["/healthz", "/readyz", "/metrics", "/status", "/unknown"] {
        let url = format!("{base}{path}");
        let anonymous = get(&url, None).await;
        assert_eq!(anonymous.status(), 401, "{path}");
        assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
        assert_eq!(get(&url, Some("wrong-token")).await.status(), 401, "{path}");
        let expected = if path == "/unknown" { 404 } else { 200 };
        assert_eq!(get(&url, Some(TOKEN)).await.status(), expected, "{path}");
    }

    let args = vec!["status".to_string(), "--url".into(), base.clone()];
    let refused = run_binary(args.clone(), vec![]).await;
    assert_usage_error(&refused, "refused the token");
    assert!(!String::from_utf8_lossy(&refused.stderr).contains(TOKEN));
    let mut with_token = args.clone();
    with_token.extend(["--token".into(), TOKEN.into()]);
    let accepted = run_binary(with_token, vec![]).await;
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let from_env = vec![("AMC_COLLECTOR__HTTP__TOKEN", TOKEN.to_string())];
    assert!(run_binary(args, from_env).await.status.success());
    daemon.stop().await.unwrap();
}

crate::actix_on_both_backends!(
    metrics_report_weeks_requests_and_durations_after_a_collection_completes,
    status_endpoint_and_command_show_collections_slots_and_progress,
    readiness_turns_unavailable_once_shutdown_starts,
    every_route_demands_the_bearer_token_when_one_is_configured,
);

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn status_command_exits_1_with_one_line_when_no_daemon_answers() {
    let port = closed_port();
    let url = format!("http://127.0.0.1:{port}");
    let by_flag = run_binary(vec!["status".into(), "--url".into(), url], vec![]).await;
    let env = vec![("AMC_COLLECTOR__HTTP__BIND", format!("127.0.0.1:{port}"))];
    let by_config = run_binary(vec!["status".into()], env).await;
    for output in [by_flag, by_config] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("no daemon answers at"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn status_command_refuses_bad_input_with_exit_2_and_one_line() {
    for url in ["ftp://127.0.0.1:9898", "not a url", "http://"] {
        let output = run_binary(vec!["status".into(), "--url".into(), url.into()], vec![]).await;
        assert_usage_error(&output, "--url");
    }
    let output = run_binary(vec!["status".into(), "--no-such-flag".into()], vec![]).await;
    assert_usage_error(&output, "--no-such-flag");
    let env = vec![("AMC_COLLECTOR__HTTP__BIND", "nowhere".to_string())];
    let output = run_binary(vec!["status".into()], env).await;
    assert_usage_error(&output, "http.bind");
}

#[path = "observe/sigusr1.rs"]
mod sigusr1;
