//! Credential sets: one Login-with-Amazon login per advertiser, one token per set. A set that
//! fails (LwA revoked its refresh token) or cannot be read (its variable unset at `run`) holds
//! only the instances linked to it, and says so in `/status`, `/readyz`, `/metrics` and a
//! `credentials.failing` alert naming it, while the other instances' collections run to the end.
//! Real actor tree, simulator on loopback, SQLite and PostgreSQL; the CLI side is in `cli`.

mod cli;

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::pipeline::{add_collection, settings};
use crate::support::{wait_until, Backend, TestDb};
use amc_collector::amc::CredentialSetState;
use amc_collector::app::App;
use amc_collector::config::Settings;
use amc_collector::ids::CollectionId;
use amc_collector::observe::TreeStatus;
use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::{CredentialSetRow, Instance, Workflow};
use amc_collector::store::{NewInstance, Store, WorkflowSource};
use secrecy::SecretString;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SQL: &str =
    "SELECT campaign, SUM(impressions) FROM t WHERE d >= '{{start_date}}' AND d <= '{{end_date}}' GROUP BY 1";
const TOKEN_A: &str = "Atzr|brand-a-7f3e1c05";
const TOKEN_B: &str = "Atzr|brand-b-9d2a4b17";
/// Never set by anything: the set naming it is unavailable.
const UNSET_VARIABLE: &str = "AMC_COLLECTOR_TEST_NEVER_SET_RT_B";
/// Upper bound of every wait; generous because two cores are shared with other test binaries.
const PATIENCE: Duration = Duration::from_secs(90);

async fn start_simulator(running_ms: u64) -> SimulatorHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms,
        publishing_ms: 5,
        extra_refresh_tokens: vec![SecretString::from(TOKEN_A), SecretString::from(TOKEN_B)],
        ..SimulatorConfig::default()
    };
    simulator::start(bind, config).await.unwrap()
}

/// An instance linked to `set` (`None`: the `[amc]` set).
async fn instance(store: &Store, id: &str, set: Option<&str>) -> Instance {
    let new = NewInstance {
        instance_id: id.into(),
        instance_name: id.into(),
        region: "na".into(),
        advertiser_id: format!("ENTITY{id}"),
        marketplace_id: "ATVPDKIKX0DER".into(),
    };
    store
        .insert_instance_with_credentials(&new, set)
        .await
        .unwrap()
}

/// A set whose refresh token is read from a file of the test's directory.
async fn set_from_file(db: &TestDb, store: &Store, name: &str, token: &str) {
    let file = db.dir.path().join(format!("{name}.token"));
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let row = CredentialSetRow {
        refresh_token_file: Some(file.to_str().unwrap().into()),
        ..CredentialSetRow::default()
    };
    store.insert_credential_set(name, &row).await.unwrap();
}

async fn workflow(store: &Store) -> Workflow {
    store
        .insert_workflow("weekly", &WorkflowSource::Sql(SQL.into()))
        .await
        .unwrap()
}

/// Settings with the inspection endpoint on a free port and alerts posted to `hook`.
fn inspected(db: &TestDb, sim: &SimulatorHandle, hook: &MockServer) -> Settings {
    let mut settings = settings(&db.url, &sim.base_url(), &sim.token_url());
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.scheduler.tree_log_interval_seconds = 0;
    settings.alerts.webhook_url = Some(format!("{}/hook", hook.uri()));
    settings.alerts.poll_interval_ms = 20;
    settings.alerts.backoff_base_ms = 20;
    settings.alerts.backoff_max_ms = 100;
    settings
}

async fn receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::Client::new().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn tree(base: &str) -> TreeStatus {
    let (status, body) = get(&format!("{base}/status")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn status_of(store: &Store, id: CollectionId) -> CollectionStatus {
    store.collection(id).await.unwrap().unwrap().status
}

/// The held collection: no week failed or completed, and none has an AMC execution unless
/// `created_before` (it was revoked mid-run).
async fn assert_held(store: &Store, id: CollectionId, created_before: bool) {
    let weeks = store.weeks_of(id).await.unwrap();
    for week in &weeks {
        assert_ne!(week.status, WeekStatus::Failed, "{week:?}");
        assert_ne!(week.status, WeekStatus::Completed, "{week:?}");
        if !created_before {
            assert!(week.amc_execution_id.is_none(), "{week:?}");
        }
    }
    assert_ne!(status_of(store, id).await, CollectionStatus::Completed);
}

/// The alert bodies posted so far, as text.
async fn posted(hook: &MockServer) -> Vec<String> {
    hook.received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| String::from_utf8_lossy(&request.body).into_owned())
        .collect()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [
        TOKEN_A,
        TOKEN_B,
        "brand-a-7f3e1c05",
        "brand-b-9d2a4b17",
        "Atza|",
    ] {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

async fn revoking_one_credential_set_holds_only_its_instances_while_the_other_runs_to_the_end(
    backend: Backend,
) {
    // Arrange: two sets on the simulator, one instance and one collection each.
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    set_from_file(&db, &store, "brand-a", TOKEN_A).await;
    set_from_file(&db, &store, "brand-b", TOKEN_B).await;
    let a = instance(&store, "amcbranda", Some("brand-a")).await;
    let b = instance(&store, "amcbrandb", Some("brand-b")).await;
    let workflow = workflow(&store).await;
    let collection_a = add_collection(&store, &a, &workflow, 8, "UTC").await;
    let collection_b = add_collection(&store, &b, &workflow, 8, "UTC").await;
    let sim = start_simulator(300).await;
    let hook = receiver().await;
    let settings = inspected(&db, &sim, &hook);
    let app = App::build(&settings).store(store.clone()).inspected();
    let running = app.start().await.unwrap();
    let base = format!(
        "http://{}",
        running.observer().unwrap().http_addr().unwrap()
    );
    wait_until("brand-b's executions on AMC", PATIENCE, || async {
        let weeks = store.weeks_of(collection_b).await.unwrap();
        weeks
            .iter()
            .any(|w| w.amc_execution_id.is_some())
            .then_some(())
    })
    .await;

    // Act: the advertiser behind brand-b withdraws its consent.
    sim.control().revoke_refresh_token(TOKEN_B);

    // Assert: brand-a's collection runs to the end…
    wait_until("brand-a's collection completes", PATIENCE, || async {
        (status_of(&store, collection_a).await == CollectionStatus::Completed).then_some(())
    })
    .await;
    let during = wait_until("brand-b is failing", PATIENCE, || async {
        let tree = tree(&base).await;
        let failing = tree
            .gateway
            .credential_sets
            .iter()
            .any(|set| set.name == "brand-b" && set.state == CredentialSetState::Failing);
        failing.then_some(tree)
    })
    .await;
    // …while brand-b holds its instance only, and says why everywhere.
    assert_held(&store, collection_b, true).await;
    let sets = &during.gateway.credential_sets;
    let set_b = sets.iter().find(|s| s.name == "brand-b").unwrap();
    let set_a = sets.iter().find(|s| s.name == "brand-a").unwrap();
    assert_eq!(set_a.state, CredentialSetState::Ok);
    assert_eq!(set_a.instances, ["amcbranda"]);
    assert_eq!(set_b.instances, ["amcbrandb"]);
    let reason = set_b.credentials.last_error.clone().unwrap();
    assert!(reason.contains("http 400 (invalid_grant)"), "{reason}");
    assert!(
        !during.gateway.credentials.failing,
        "the [amc] set is not failing"
    );
    let (ready, readyz) = get(&format!("{base}/readyz")).await;
    assert_eq!(ready, 200, "{readyz}");
    assert!(
        readyz.contains("credential set brand-b failing since"),
        "{readyz}"
    );
    let metrics = get(&format!("{base}/metrics")).await.1;
    assert!(
        metrics
            .contains("amc_collector_credential_set_failing{set=\"brand-b\",state=\"failing\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("amc_collector_credential_set_failing{set=\"brand-a\",state=\"ok\"} 0"),
        "{metrics}"
    );
    let alerts = wait_until("the credentials.failing alert", PATIENCE, || async {
        let bodies = posted(&hook).await;
        bodies
            .iter()
            .any(|b| b.contains("credentials.failing") && b.contains("\"set\":\"brand-b\""))
            .then_some(bodies)
    })
    .await;
    assert!(
        !alerts
            .iter()
            .any(|b| b.contains("credentials.failing") && b.contains("brand-a")),
        "{alerts:?}"
    );
    let status_text = get(&format!("{base}/status")).await.1;
    for (what, text) in [
        ("status", &status_text),
        ("metrics", &metrics),
        ("readyz", &readyz),
        ("alerts", &alerts.join("\n")),
    ] {
        assert_no_secret(what, text);
    }
    running.stop().await.unwrap();
}

async fn a_set_whose_variable_is_unset_at_run_holds_its_instances_with_that_reason_and_the_others_run(
    backend: Backend,
) {
    // Arrange: the [amc] set's instance, and one whose set reads a variable nobody set.
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let row = CredentialSetRow {
        refresh_token_env: Some(UNSET_VARIABLE.into()),
        ..CredentialSetRow::default()
    };
    store.insert_credential_set("brand-b", &row).await.unwrap();
    let a = instance(&store, "amcdefault", None).await;
    let b = instance(&store, "amcbrandb", Some("brand-b")).await;
    let workflow = workflow(&store).await;
    let collection_a = add_collection(&store, &a, &workflow, 3, "UTC").await;
    let collection_b = add_collection(&store, &b, &workflow, 3, "UTC").await;
    let sim = start_simulator(30).await;
    let hook = receiver().await;
    let settings = inspected(&db, &sim, &hook);

    // Act
    let app = App::build(&settings).store(store.clone()).inspected();
    let running = app.start().await.unwrap();
    let base = format!(
        "http://{}",
        running.observer().unwrap().http_addr().unwrap()
    );
    wait_until("the [amc] set's collection completes", PATIENCE, || async {
        (status_of(&store, collection_a).await == CollectionStatus::Completed).then_some(())
    })
    .await;

    // Assert
    let tree = tree(&base).await;
    let set_b = tree
        .gateway
        .credential_sets
        .iter()
        .find(|s| s.name == "brand-b")
        .unwrap()
        .clone();
    assert_eq!(set_b.state, CredentialSetState::Unavailable, "{set_b:?}");
    assert_eq!(
        set_b.credentials.last_error.as_deref(),
        Some(format!("environment variable {UNSET_VARIABLE} is unset").as_str())
    );
    let default = &tree.gateway.credential_sets[0];
    assert_eq!(default.name, "default");
    assert_eq!(default.state, CredentialSetState::Ok);
    assert_held(&store, collection_b, false).await;
    assert_eq!(
        sim.stats().creates_total,
        3,
        "only the [amc] set's weeks ran"
    );
    let (ready, readyz) = get(&format!("{base}/readyz")).await;
    assert_eq!(ready, 200, "{readyz}");
    assert!(
        readyz.contains("credential set brand-b unavailable"),
        "{readyz}"
    );
    assert!(readyz.contains(UNSET_VARIABLE), "{readyz}");
    wait_until("the credentials.failing alert", PATIENCE, || async {
        posted(&hook)
            .await
            .iter()
            .any(|b| b.contains("credentials.failing") && b.contains(UNSET_VARIABLE))
            .then_some(())
    })
    .await;
    running.stop().await.unwrap();
}

crate::actix_on_both_backends!(
    revoking_one_credential_set_holds_only_its_instances_while_the_other_runs_to_the_end,
    a_set_whose_variable_is_unset_at_run_holds_its_instances_with_that_reason_and_the_others_run,
);
