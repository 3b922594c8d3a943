//! Credentials failing is an outage, not a verdict on weeks: while Login-with-Amazon refuses
//! grants (the simulator's "refuses grants for a while" fault), AMC calls wait, no week spends an
//! attempt, `/readyz` answers 503 with the reason, `/status` and metrics show it, the log names
//! the cause without any secret, and the work resumes by itself once a token is granted.
//! Real actor tree (and real binary), simulator on loopback, SQLite and PostgreSQL.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support;
use amc_collector::amc::{AmcClient, InstanceRef, ListFilter, Region};
use amc_collector::app::App;
use amc_collector::config::Settings;
use amc_collector::observe::TreeStatus;
use amc_collector::results::{checksum, parse_results};
use amc_collector::simulator::{self, GrantRefusal, SimulatorConfig, SimulatorHandle};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::model::Week;
use amc_collector::store::WorkflowSource;
use secrecy::SecretString;
use support::pipeline::{
    assert_completed_weeks_are_traceable, fixture, run_until_idle, settings, stored_row_count,
    weeks, Fixture, CLIENT_ID, INSTANCE_ID,
};
use support::{binary, wait_until, Backend};

/// One line, no comment, no trailing semicolon: every SQL normalisation leaves it as it is.
const SQL: &str =
    "SELECT campaign, SUM(impressions) FROM t WHERE d >= '{{start_date}}' AND d <= '{{end_date}}' GROUP BY 1";
const WEEKS: usize = 14;
/// Upper bound of every wait; generous because two cores are shared with other test binaries.
const PATIENCE: Duration = Duration::from_secs(90);

async fn start_simulator(config: SimulatorConfig) -> SimulatorHandle {
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    simulator::start(bind, config).await.unwrap()
}

fn fast(running_ms: u64) -> SimulatorConfig {
    SimulatorConfig {
        pending_ms: 5,
        running_ms,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    }
}

/// Every week completed on its first attempt with the simulator's rows and checksum, one create
/// per week, the collection completed.
async fn assert_all_weeks_completed_on_their_first_attempt(fx: &Fixture, sim: &SimulatorHandle) {
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(stored.len(), WEEKS);
    for week in &stored {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        assert_eq!(
            week.attempts, 1,
            "an attempt was spent on the outage: {week:?}"
        );
        let files = expected_files(week);
        let rows = parse_results(&files, usize::MAX).unwrap().row_count;
        assert_eq!(week.row_count, Some(rows));
        assert_eq!(stored_row_count(&fx.store, week).await, rows);
        assert_eq!(
            week.data_checksum.as_deref(),
            Some(checksum(&files).as_str())
        );
    }
    assert_completed_weeks_are_traceable(&fx.store, fx.collection_id).await;
    assert_eq!(sim.stats().creates_total, WEEKS as u64);
    let collection = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(collection.status, CollectionStatus::Completed);
}

fn expected_files(week: &Week) -> Vec<Vec<u8>> {
    super::expected_files_of(SQL, week)
}

async fn every_week_completes_on_its_first_attempt_when_lwa_refuses_grants_at_start(
    backend: Backend,
) {
    // Arrange: LwA answers invalid_grant for the first 2.5 s; before, every week failed for good.
    let fx = fixture(backend, WEEKS as i64, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        refuse_grants_ms: 2_500,
        refuse_grants_kind: GrantRefusal::InvalidGrant,
        ..fast(30)
    })
    .await;
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());

    // Act
    run_until_idle(&fx.store, &settings, PATIENCE).await;

    // Assert
    assert!(sim.stats().token_refusals > 0, "{:?}", sim.stats());
    assert_all_weeks_completed_on_their_first_attempt(&fx, &sim).await;
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

async fn readiness_and_status_report_an_outage_mid_run_and_work_resumes_after_it(backend: Backend) {
    // Arrange: a running collection with the inspection endpoint.
    let fx = fixture(backend, WEEKS as i64, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(fast(400)).await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.scheduler.tree_log_interval_seconds = 0;
    let app = App::build(&settings).store(fx.store.clone()).inspected();
    let mut running = app.exit_when_idle(true).start().await.unwrap();
    let observer = running.observer().unwrap();
    let base = format!("http://{}", observer.http_addr().unwrap());
    // Mid-run: a token is cached and executions exist on AMC.
    wait_until(
        "executions in flight under a granted token",
        PATIENCE,
        || async {
            let tree = tree(&base).await;
            let created = sim.stats().creates_total > 0;
            (created && tree.gateway.token_expires_at.is_some()).then_some(())
        },
    )
    .await;
    assert_eq!(get(&format!("{base}/readyz")).await.0, 200);

    // Act: the client secret is rotated under the running daemon and its tokens die.
    let control = sim.control();
    control.refuse_grants_for(Duration::from_secs(4), GrantRefusal::InvalidClient);
    control.revoke_access_tokens();

    // Assert: not ready, with the reason, while it lasts…
    let reason = wait_until("/readyz reports the outage", PATIENCE, || async {
        let (status, body) = get(&format!("{base}/readyz")).await;
        (status == 503 && body.contains("credentials failing")).then_some(body)
    })
    .await;
    assert!(reason.contains("http 401 (invalid_client)"), "{reason}");
    let during = tree(&base).await;
    let credentials = &during.gateway.credentials;
    assert!(credentials.failing, "{credentials:?}");
    assert!(credentials.failing_since.is_some() && credentials.next_attempt_at.is_some());
    let metrics = get(&format!("{base}/metrics")).await.1;
    assert!(
        metrics.contains("\namc_collector_credentials_failing 1\n"),
        "{metrics}"
    );
    // …ready again once LwA grants tokens, and the collection finishes by itself.
    wait_until("/readyz recovers", PATIENCE, || async {
        (get(&format!("{base}/readyz")).await.0 == 200).then_some(())
    })
    .await;
    let after = tree(&base).await.gateway.credentials;
    assert!(!after.failing && after.recoveries_total >= 1, "{after:?}");
    assert!(after.last_outage_ms.is_some(), "{after:?}");
    let metrics = get(&format!("{base}/metrics")).await.1;
    assert!(
        metrics.contains("\namc_collector_credentials_failing 0\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("\namc_collector_amc_token_failures_total 0\n"),
        "{metrics}"
    );
    tokio::time::timeout(PATIENCE, &mut running.idle)
        .await
        .expect("collection did not finish")
        .expect("idle signal");
    running.stop().await.unwrap();
    assert!(sim.stats().token_refusals > 0);
    assert!(sim.stats().served_401 > 0);
    assert_all_weeks_completed_on_their_first_attempt(&fx, &sim).await;
}

crate::actix_on_both_backends!(
    every_week_completes_on_its_first_attempt_when_lwa_refuses_grants_at_start,
    readiness_and_status_report_an_outage_mid_run_and_work_resumes_after_it,
);

#[actix_rt::test]
async fn a_waiting_call_proceeds_once_lwa_grants_again_and_the_outage_is_recorded() {
    // Arrange: LwA is down (503) for 300 ms.
    let sim = start_simulator(SimulatorConfig {
        refuse_grants_ms: 300,
        refuse_grants_kind: GrantRefusal::Unavailable,
        ..fast(30)
    })
    .await;
    let (client_id, secret, refresh) = sim.credentials();
    let mut config = Settings::default().client_config_with(
        client_id,
        SecretString::from(secret),
        SecretString::from(refresh),
    );
    config.base_url_override = Some(sim.base_url());
    config.token_url = sim.token_url();
    config.backoff_base = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(50);
    config.max_retries = 0;
    let client = AmcClient::new(config).unwrap();
    let instance = InstanceRef {
        instance_id: INSTANCE_ID.into(),
        advertiser_id: "ENTITYPIPE".into(),
        marketplace_id: "ATVPDKIKX0DER".into(),
        region: Region::Na,
        credentials: None,
    };

    // Act: with no retries allowed, only waiting can make this call succeed.
    let listed = client
        .list_executions(&instance, &ListFilter::default())
        .await;

    // Assert
    assert!(listed.unwrap().is_empty());
    let credentials = client.credentials();
    assert!(!credentials.failing, "{credentials:?}");
    assert!(credentials.failures_total >= 1, "{credentials:?}");
    assert_eq!(credentials.recoveries_total, 1);
    assert!(credentials.last_outage_ms.is_some());
    assert!(sim.stats().token_refusals >= 1);
    assert_eq!(sim.stats().token_refreshes, 1);
}

const SECRET: &str = "cs-outage-91c2e7f0";
const REFRESH_TAIL: &str = "rt-outage-3d5a8b6e";

#[actix_rt::test]
async fn the_outage_log_names_the_cause_once_per_step_and_never_a_secret() {
    // Arrange: our own secrets; LwA refuses them with invalid_grant for 1.5 s.
    let fx = fixture(Backend::Sqlite, 2, WorkflowSource::Sql(SQL.into())).await;
    let refresh = format!("Atzr|{REFRESH_TAIL}");
    let sim = start_simulator(SimulatorConfig {
        refuse_grants_ms: 1_500,
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(SECRET),
        refresh_token: SecretString::from(refresh.clone()),
        ..fast(30)
    })
    .await;

    // Act: the real binary at debug level.
    let output = tokio::process::Command::new(binary())
        .args(["run", "--exit-when-idle", "--log-format", "json"])
        .current_dir(fx.db.dir.path())
        .env("RUST_LOG", "debug")
        .env("AMC_COLLECTOR__HTTP__BIND", "127.0.0.1:0")
        .env("AMC_COLLECTOR__DATABASE__URL", &fx.db.url)
        .env("AMC_COLLECTOR__AMC__BASE_URL", sim.base_url())
        .env("AMC_COLLECTOR__AMC__TOKEN_URL", sim.token_url())
        .env("AMC_COLLECTOR__AMC__CLIENT_ID", CLIENT_ID)
        .env("AMC_COLLECTOR__AMC__CLIENT_SECRET", SECRET)
        .env("AMC_COLLECTOR__AMC__REFRESH_TOKEN", &refresh)
        .env("AMC_COLLECTOR__AMC__POLL_INTERVAL_MS", "50")
        .env("AMC_COLLECTOR__AMC__BACKOFF_BASE_MS", "50")
        .env("AMC_COLLECTOR__AMC__BACKOFF_MAX_MS", "100")
        .env("AMC_COLLECTOR__AMC__MAX_REQUESTS_PER_SECOND", "0")
        .env("AMC_COLLECTOR__RETRY__BACKOFF_BASE_MS", "50")
        .env("AMC_COLLECTOR__SCHEDULER__SCAN_INTERVAL_MS", "100")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, output)
        .await
        .expect("the daemon did not finish in time")
        .expect("run amc-collector");

    // Assert
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    let outage_lines: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("Credentials failing"))
        .collect();
    let refusals = sim.stats().token_refusals as usize;
    assert!(refusals > 0);
    assert_eq!(outage_lines.len(), refusals, "one line per backoff step");
    for line in &outage_lines {
        assert!(line.contains("\"level\":\"ERROR\""), "{line}");
        assert!(line.contains("http 400 (invalid_grant)"), "{line}");
    }
    assert!(text.contains("credentials recovered"), "{text}");
    for secret in [SECRET, REFRESH_TAIL, "Atza|", "Atza%7C", "Bearer "] {
        assert!(!text.contains(secret), "the daemon printed {secret}");
    }
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert!(stored
        .iter()
        .all(|w| w.status == WeekStatus::Completed && w.attempts == 1));
}
