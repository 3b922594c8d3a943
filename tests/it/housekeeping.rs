//! Housekeeping beside the Supervisor, in-process on SQLite and Postgres: due keep-fresh weeks are
//! added by Housekeeping on its own and reach the collection's running actor through the
//! Supervisor, with no scan of the Supervisor's own; and a graceful shutdown whose deadline passes
//! names, in the log, what is still running (here a cancellation sweep AMC never answers).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amc_collector::actors::housekeeping::RunHousekeeping;
use amc_collector::app::App;
use amc_collector::ids::{CollectionId, ExecutionId};
use amc_collector::simulator::{self, SimulatorConfig};
use amc_collector::status::WeekStatus;
use amc_collector::store::{Control, NewCollection, Store, Submitted, Transition, WorkflowSource};
use amc_collector::weeks::{generate_weeks, Week, WeekRequest, WeekRules, WeekStart};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::pipeline_wiremock::fake_amc::{executions_path, FakeAmc, Script};
use crate::support::pipeline::{fixture, intent, prove_workflow, settings, weeks};
use crate::support::{wait_until, Backend};

const SQL: &str = "SELECT campaign FROM t WHERE d >= '{{start_date}}'";

/// Upper bound of every wait; generous because two cores are shared with other test binaries.
const PATIENCE: Duration = Duration::from_secs(60);

/// The built-in data lag and retention, which the daemon's settings use.
const RULES: WeekRules = WeekRules {
    data_lag_days: 14,
    retention_days: 395,
};

/// Three weeks ending two weeks before the newest due one: two weeks are due once the collection
/// keeps itself fresh.
fn three_weeks_two_behind() -> Vec<Week> {
    let today = chrono::Utc::now().date_naive();
    let end_date = today - chrono::Duration::days(i64::from(RULES.data_lag_days) + 14);
    let request = WeekRequest {
        weeks: 3,
        end_date: Some(end_date),
        week_start: WeekStart::Monday,
    };
    generate_weeks(today, "UTC", &request, RULES).unwrap()
}

/// Turns keep-fresh on behind the daemon's back, as another process's write would.
async fn make_keep_fresh(store: &Store, id: CollectionId) {
    let sql = "UPDATE report_data_collections SET keep_fresh = TRUE WHERE id = $1";
    let changed = match store {
        Store::Postgres(pool) => sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        Store::Sqlite(pool) => sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    };
    let changed = changed.unwrap();
    assert_eq!(changed, 1);
}

async fn in_status(store: &Store, id: CollectionId, statuses: &[WeekStatus]) -> usize {
    weeks(store, id)
        .await
        .iter()
        .filter(|week| statuses.contains(&week.status))
        .count()
}

async fn due_weeks_reach_the_running_actor_through_housekeeping_without_a_scan_of_the_supervisors_own(
    backend: Backend,
) {
    // Arrange: a collection whose three weeks run on AMC for a while, and a Supervisor that never
    // scans on its own after start-up.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    // Every week at once: the workflow has run on the instance before (no probing). The
    // fixture's own collection is paused: no child finishing may make the Supervisor scan.
    prove_workflow(&fx).await;
    fx.store
        .apply_control(fx.collection_id, Control::Pause)
        .await
        .unwrap();
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 8_000,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    };
    let sim = simulator::start(bind, config).await.unwrap();
    let id = fx
        .store
        .create_collection(&NewCollection {
            workflow_id: fx.workflow.id,
            instance_id: fx.instance.id,
            week_start: WeekStart::Monday,
            time_zone: "UTC".into(),
            weeks: three_weeks_two_behind(),
            keep_fresh: None,
            parameters: Default::default(),
        })
        .await
        .unwrap();
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.scheduler.scan_interval_ms = 600_000;
    let daemon = App::build(&settings)
        .store(fx.store.clone())
        .start()
        .await
        .unwrap();
    wait_until("the three weeks running", PATIENCE, || async {
        in_status(&fx.store, id, &[WeekStatus::Running]).await == 3
    })
    .await;

    // Act: the collection now keeps itself fresh; Housekeeping runs a round.
    make_keep_fresh(&fx.store, id).await;
    daemon.housekeeping.send(RunHousekeeping).await.unwrap();

    // Assert: the two due weeks are added and started by the running actor while its first
    // weeks still run on AMC; then everything completes.
    wait_until(
        "the added weeks started beside the running ones",
        PATIENCE,
        || async {
            let stored = weeks(&fx.store, id).await;
            let started = [WeekStatus::Submitting, WeekStatus::Running];
            let added_started = stored.len() == 5
                && stored[3..]
                    .iter()
                    .all(|week| started.contains(&week.status));
            let first_still_running = stored[..3]
                .iter()
                .any(|week| week.status == WeekStatus::Running);
            assert!(
                first_still_running || !added_started,
                "the added weeks waited for the first ones: {stored:?}"
            );
            added_started
        },
    )
    .await;
    wait_until("all five weeks completed", PATIENCE, || async {
        in_status(&fx.store, id, &[WeekStatus::Completed]).await == 5
    })
    .await;
    daemon.stop().await.unwrap();
}

/// The daemon's log lines, written by a subscriber set for the test's thread (the actors run on
/// it).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn a_shutdown_whose_deadline_passes_names_what_is_still_running(backend: Backend) {
    // Arrange: a cancelled week whose execution is on AMC, and an AMC that holds every cancel
    // for two minutes.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    let amc = FakeAmc::start(Script::default()).await;
    Mock::given(method("PUT"))
        .and(path_regex(format!("^{}/.+$", executions_path())))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(120)))
        .with_priority(1)
        .mount(&amc.server)
        .await;
    let execution_id = ExecutionId::new();
    fx.store
        .apply_transition(Transition::Intent(intent(&fx, &week, execution_id)))
        .await
        .unwrap()
        .unwrap();
    fx.store
        .apply_transition(Transition::Submitted(Submitted {
            collection_id: fx.collection_id,
            execution_id,
            amc_execution_id: "amcexec-held".into(),
            fence: fx.fence.clone(),
        }))
        .await
        .unwrap()
        .unwrap();
    fx.store
        .apply_control(fx.collection_id, Control::Cancel)
        .await
        .unwrap();
    let mut settings = settings(&fx.db.url, &amc.base_url(), &amc.token_url());
    settings.scheduler.shutdown_deadline_seconds = 1;
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _capture = tracing::subscriber::set_default(subscriber);
    let daemon = App::build(&settings)
        .store(fx.store.clone())
        .start()
        .await
        .unwrap();
    wait_until("the sweep's cancel reached AMC", PATIENCE, || async {
        let requests = amc.server.received_requests().await.unwrap_or_default();
        requests
            .iter()
            .any(|request| request.method.as_str() == "PUT")
    })
    .await;

    // Act
    let stopping = Instant::now();
    daemon.stop().await.unwrap();

    // Assert: the stop kept to its deadline and said what it left behind.
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "stopping took {:?}",
        stopping.elapsed()
    );
    let text = log.text();
    assert!(
        text.contains("cancellation sweep still running at the shutdown deadline"),
        "{text}"
    );
    assert!(
        !text.contains("group commit of week transitions still running"),
        "{text}"
    );
}

crate::actix_on_both_backends!(
    due_weeks_reach_the_running_actor_through_housekeeping_without_a_scan_of_the_supervisors_own,
    a_shutdown_whose_deadline_passes_names_what_is_still_running,
);
