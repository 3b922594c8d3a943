//! Alerts end to end: the real actor tree against the simulator on loopback, a real
//! database (SQLite file and PostgreSQL) and a local webhook receiver (wiremock): each event
//! delivered with a signature the receiver can check, delivery retried after the receiver was
//! down (then delivered exactly once), and alerts left undelivered by a stopped daemon delivered
//! by the next one.

mod observed;
mod outbox;

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::pipeline::{fixture, settings, weeks, Fixture};
use crate::support::Backend;
use amc_collector::alerts::SIGNATURE_HEADER;
use amc_collector::app::App;
use amc_collector::config::Settings;
use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle};
use amc_collector::status::CollectionStatus;
use amc_collector::store::{Store, WorkflowSource};
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use serde_json::Value;
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SQL: &str = "SELECT campaign FROM t WHERE d >= '{{start_date}}'";
const SECRET: &str = "webhook-signing-secret";
/// Upper bound of every wait (two cores are shared with other test binaries).
const PATIENCE: Duration = Duration::from_secs(60);

async fn start_simulator(config: SimulatorConfig) -> SimulatorHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    simulator::start(bind, config).await.unwrap()
}

fn quick() -> SimulatorConfig {
    SimulatorConfig {
        pending_ms: 5,
        running_ms: 30,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    }
}

/// A receiver answering 200 to every POST on /hook.
async fn receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

fn alert_settings(fx: &Fixture, sim: &SimulatorHandle, webhook: &str) -> Settings {
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.alerts.webhook_url = Some(webhook.to_string());
    settings.alerts.secret = Some(SecretString::from(SECRET));
    settings.alerts.poll_interval_ms = 20;
    settings.alerts.backoff_base_ms = 20;
    settings.alerts.backoff_max_ms = 100;
    settings.alerts.timeout_ms = 2_000;
    settings
}

/// Waits until `check` holds, for at most `PATIENCE`.
async fn wait_until<Fut>(what: &str, check: impl FnMut() -> Fut)
where
    Fut: std::future::Future<Output = bool>,
{
    crate::support::wait_until(what, PATIENCE, check).await
}

/// Runs the daemon until its collections are finished and `done` holds of the outbox, then stops
/// it (supervisor, then alerter).
async fn run_until<F, Fut>(store: &Store, settings: &Settings, what: &str, done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut app = App::build(settings)
        .store(store.clone())
        .exit_when_idle(true)
        .start()
        .await
        .unwrap();
    assert!(app.alerter.is_some(), "a webhook is configured");
    tokio::time::timeout(PATIENCE, &mut app.idle)
        .await
        .expect("collections did not finish in time")
        .expect("idle signal");
    wait_until(what, done).await;
    // Stops the supervisor, then the alerter (its last round), then the writer.
    app.stop().await.unwrap();
}

async fn undelivered(store: &Store) -> i64 {
    store.undelivered_alerts().await.unwrap().count
}

/// The receiver's view: each request's JSON body, after checking its signature.
async fn signed_bodies(server: &MockServer) -> Vec<Value> {
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    requests
        .iter()
        .map(|request| {
            let header = request
                .headers
                .get(SIGNATURE_HEADER)
                .expect("signature header")
                .to_str()
                .unwrap();
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(&request.body);
            let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            assert_eq!(header, expected, "signature over the exact body");
            let text = String::from_utf8(request.body.clone()).unwrap();
            assert!(!text.contains(SECRET), "the secret travels in no body");
            serde_json::from_str(&text).unwrap()
        })
        .collect()
}

fn events(bodies: &[Value]) -> Vec<String> {
    let mut events: Vec<String> = bodies
        .iter()
        .map(|body| body["event"].as_str().unwrap().to_string())
        .collect();
    events.sort();
    events
}

async fn a_completed_collection_is_posted_once_signed(backend: Backend) {
    // Arrange
    let fx = fixture(backend, 3, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(quick()).await;
    let hook = receiver().await;
    let settings = alert_settings(&fx, &sim, &format!("{}/hook", hook.uri()));

    // Act
    run_until(&fx.store, &settings, "delivery", || async {
        undelivered(&fx.store).await == 0 && !hook.received_requests().await.unwrap().is_empty()
    })
    .await;

    // Assert
    let bodies = signed_bodies(&hook).await;
    assert_eq!(events(&bodies), ["collection.completed"]);
    assert_eq!(bodies[0]["collection_id"], fx.collection_id.to_string());
    assert!(bodies[0]["occurred_at"].is_string());
}

async fn a_week_failed_for_good_and_its_failed_collection_are_posted(backend: Backend) {
    // Arrange: one window AMC always fails, one attempt per week.
    let fx = fixture(backend, 3, WorkflowSource::Sql(SQL.into())).await;
    let doomed = weeks(&fx.store, fx.collection_id).await[1].clone();
    let sim = start_simulator(SimulatorConfig {
        fail_windows: vec![doomed.week_start_date],
        ..quick()
    })
    .await;
    let hook = receiver().await;
    let mut settings = alert_settings(&fx, &sim, &format!("{}/hook", hook.uri()));
    settings.retry.max_attempts = 1;

    // Act
    run_until(&fx.store, &settings, "two deliveries", || async {
        undelivered(&fx.store).await == 0 && hook.received_requests().await.unwrap().len() >= 2
    })
    .await;

    // Assert
    let bodies = signed_bodies(&hook).await;
    assert_eq!(events(&bodies), ["collection.failed", "week.failed"]);
    let week = bodies.iter().find(|b| b["event"] == "week.failed").unwrap();
    let stored = weeks(&fx.store, fx.collection_id).await;
    let failed = stored.iter().find(|w| w.id == doomed.id).unwrap();
    assert_eq!(week["collection_id"], fx.collection_id.to_string());
    assert_eq!(week["week_id"], doomed.id.to_string());
    assert_eq!(
        week["execution_id"],
        failed.execution_id.unwrap().to_string()
    );
    assert_eq!(week["week_start_date"], doomed.week_start_date.to_string());
    assert!(week["reason"]
        .as_str()
        .unwrap()
        .contains("simulated failure"));
    let collection = bodies
        .iter()
        .find(|b| b["event"] == "collection.failed")
        .unwrap();
    assert_eq!(collection["detail"], "1 of 3 weeks failed");
}

async fn an_alert_is_retried_while_the_receiver_fails_then_delivered_exactly_once(
    backend: Backend,
) {
    // Arrange: the receiver answers 503 three times, then 200.
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(quick()).await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&hook)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&hook)
        .await;
    let settings = alert_settings(&fx, &sim, &format!("{}/hook", hook.uri()));

    // Act
    run_until(&fx.store, &settings, "delivery after the 503s", || async {
        undelivered(&fx.store).await == 0 && hook.received_requests().await.unwrap().len() >= 4
    })
    .await;

    // Assert: three refused attempts and one accepted, of the same alert.
    let bodies = signed_bodies(&hook).await;
    assert_eq!(bodies.len(), 4, "{bodies:?}");
    assert!(bodies.iter().all(|b| b["event"] == "collection.completed"));
    assert!(bodies
        .iter()
        .all(|b| b["alert_id"] == bodies[0]["alert_id"]));
}

async fn alerts_left_undelivered_by_a_stopped_daemon_are_delivered_by_the_next(backend: Backend) {
    // Arrange: the first daemon's receiver is down (nothing listens on its port).
    let fx = fixture(backend, 2, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(quick()).await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let down = alert_settings(&fx, &sim, &format!("http://{dead}/hook"));
    run_until(&fx.store, &down, "a failed delivery", || async {
        fx.store.undelivered_alerts().await.unwrap().retrying == 1
    })
    .await;
    assert_eq!(undelivered(&fx.store).await, 1);

    // Act: a new daemon (a restart) with the receiver up.
    let hook = receiver().await;
    let up = alert_settings(&fx, &sim, &format!("{}/hook", hook.uri()));
    run_until(&fx.store, &up, "delivery after the restart", || async {
        undelivered(&fx.store).await == 0 && !hook.received_requests().await.unwrap().is_empty()
    })
    .await;

    // Assert
    let bodies = signed_bodies(&hook).await;
    assert_eq!(events(&bodies), ["collection.completed"]);
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Completed);
}

crate::actix_on_both_backends!(
    a_completed_collection_is_posted_once_signed,
    a_week_failed_for_good_and_its_failed_collection_are_posted,
    an_alert_is_retried_while_the_receiver_fails_then_delivered_exactly_once,
    alerts_left_undelivered_by_a_stopped_daemon_are_delivered_by_the_next,
);
