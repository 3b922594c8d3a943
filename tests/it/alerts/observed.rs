//! Alerts the alerter observes rather than reads from a transition (credentials failing and
//! recovering, a collection held back by the daily limit), and undelivered alerts in `/status`
//! and `/metrics`.

use amc_collector::app::App;
use amc_collector::config::AlertFormat;
use amc_collector::simulator::{GrantRefusal, SimulatorConfig};
use amc_collector::store::{AlertEvent, Control, NewAlert, WorkflowSource};
use serde_json::Value;

use super::{
    alert_settings, events, quick, receiver, run_until, signed_bodies, start_simulator,
    undelivered, wait_until, SQL,
};
use crate::support::pipeline::fixture;
use crate::support::Backend;

async fn failing_then_recovered_credentials_are_posted(backend: Backend) {
    // Arrange: Login-with-Amazon refuses grants for a while at start.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        refuse_grants_ms: 1_500,
        refuse_grants_kind: GrantRefusal::InvalidGrant,
        ..quick()
    })
    .await;
    let hook = receiver().await;
    let mut settings = alert_settings(&fx, &sim, &format!("{}/hook", hook.uri()));
    settings.alerts.format = AlertFormat::Json;

    // Act
    run_until(&fx.store, &settings, "three deliveries", || async {
        undelivered(&fx.store).await == 0 && hook.received_requests().await.unwrap().len() >= 3
    })
    .await;

    // Assert
    let bodies = signed_bodies(&hook).await;
    assert_eq!(
        events(&bodies),
        [
            "collection.completed",
            "credentials.failing",
            "credentials.recovered"
        ]
    );
    let failing = bodies
        .iter()
        .find(|b| b["event"] == "credentials.failing")
        .unwrap();
    assert_eq!(failing["collection_id"], Value::Null);
    assert!(failing["reason"]
        .as_str()
        .unwrap()
        .contains("invalid_grant"));
    let text = failing.to_string();
    assert!(!text.contains(crate::support::pipeline::REFRESH_TOKEN));
    assert!(!text.contains(crate::support::pipeline::CLIENT_SECRET));
}

async fn a_collection_held_back_by_the_daily_limit_past_the_threshold_is_posted(backend: Backend) {
    // Arrange: one create allowed per day, three weeks; a wait of a second is worth an alert.
    let fx = fixture(backend, 3, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(quick()).await;
    let hook = receiver().await;
    let mut settings = alert_settings(&fx, &sim, &format!("{}/hook", hook.uri()));
    settings.amc.max_creates_per_day = 1;
    settings.alerts.quota_waiting_after_seconds = 1;

    // Act
    let app = App::build(&settings)
        .store(fx.store.clone())
        .start()
        .await
        .unwrap();
    wait_until("the quota.waiting alert", || async {
        let requests = hook.received_requests().await.unwrap();
        requests
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("quota.waiting"))
    })
    .await;
    app.stop().await.unwrap();

    // Assert: one alert for the wait, naming the collection and when the wait ends.
    let bodies = signed_bodies(&hook).await;
    let waiting: Vec<&Value> = bodies
        .iter()
        .filter(|b| b["event"] == "quota.waiting")
        .collect();
    assert_eq!(waiting.len(), 1, "{bodies:?}");
    assert_eq!(waiting[0]["collection_id"], fx.collection_id.to_string());
    assert!(waiting[0]["waiting_until"].is_string());
}

async fn status_and_metrics_show_undelivered_alerts(backend: Backend) {
    // Arrange: two alerts waiting, the receiver down.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    fx.store
        .apply_control(fx.collection_id, Control::Pause)
        .await
        .unwrap();
    fx.store
        .apply_control(fx.collection_id, Control::Cancel)
        .await
        .unwrap();
    let recovered = NewAlert {
        event: AlertEvent::CredentialsRecovered,
        collection_id: None,
        dedup_key: None,
        payload: serde_json::json!({}),
    };
    fx.store.enqueue_alert(&recovered).await.unwrap();
    let sim = start_simulator(quick()).await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut settings = alert_settings(&fx, &sim, &format!("http://{dead}/hook"));
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.scheduler.tree_log_interval_seconds = 0;

    // Act
    let app = App::build(&settings)
        .store(fx.store.clone())
        .inspected()
        .start()
        .await
        .unwrap();
    let endpoint = app.observer().and_then(|observer| observer.http_addr());
    let base = format!("http://{}", endpoint.unwrap());
    wait_until("a failed delivery", || async {
        fx.store.undelivered_alerts().await.unwrap().retrying >= 1
    })
    .await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tree: Value = reqwest::get(format!("{base}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    app.stop().await.unwrap();

    // Assert
    assert!(
        metrics.contains("\namc_collector_alerts_undelivered 2\n"),
        "{metrics}"
    );
    assert_eq!(tree["alerts"]["count"], 2, "{tree}");
    assert!(tree["alerts"]["oldest_at"].is_string());
}

crate::actix_on_both_backends!(
    failing_then_recovered_credentials_are_posted,
    a_collection_held_back_by_the_daily_limit_past_the_threshold_is_posted,
    status_and_metrics_show_undelivered_alerts,
);
