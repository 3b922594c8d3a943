//! Supervision: a collection actor that stops unexpectedly (`StopCollection` sent behind the
//! Supervisor's back looks exactly like a crash to it) is restarted fresh from the database; past
//! `scheduler.restart_intensity` the collection is failed with the reason and the process goes on.

use std::time::Duration;

use amc_collector::actors::collection::StopCollection;
use amc_collector::actors::supervisor::{GetSupervisorStatus, SupervisorEvent};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::WorkflowSource;
use serde_json::json;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, Request, ResponseTemplate};

use super::common::{
    assert_all_completed_as_served, assert_one_create_per_window, count, running_child, shutdown,
    simulator_config, simulator_with, start_daemon, wait_idle, PATIENCE, SQL,
};
use crate::pipeline_wiremock::fake_amc::{executions_path, FakeAmc, Script};
use crate::support::pipeline::{add_collection, fixture, settings, weeks};
use crate::support::{wait_until, Backend};

async fn a_collection_actor_that_stops_unexpectedly_is_restarted_fresh_and_the_collection_completes(
    backend: Backend,
) {
    // Arrange: every week is RUNNING on AMC before the crash, so no create is in flight when the
    // actor dies (a create in flight across a restart is its own test below).
    let fx = fixture(backend, 4, WorkflowSource::Sql(SQL.into())).await;
    // Every week at once: the workflow has run on the instance before (no probing).
    crate::support::pipeline::prove_workflow(&fx).await;
    let id = fx.collection_id;
    let sim = simulator_with(simulator_config(1_000)).await;
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    let mut daemon = start_daemon(&fx.store, &settings, true).await;
    wait_until("every week running", PATIENCE, || async {
        count(&fx.store, id, WeekStatus::Running).await == 4
    })
    .await;
    let first = running_child(&daemon, id, 0).await;
    let first_addr = first.addr.clone().expect("a running child has an address");

    // Act: the Supervisor did not ask for this stop, so it counts as a crash.
    first_addr.do_send(StopCollection);

    // Assert
    let second = running_child(&daemon, id, 1).await;
    assert!(!first_addr.connected(), "the crashed actor must be gone");
    assert!(second.addr.is_some());
    wait_idle(&mut daemon).await;
    let status = daemon.supervisor.send(GetSupervisorStatus).await.unwrap();
    assert!(status.restarts_total >= 1, "{status:?}");
    assert_eq!(status.gave_up_total, 0, "{status:?}");
    shutdown(daemon).await;
    assert_all_completed_as_served(&fx.store, id).await;
    assert_one_create_per_window(&sim.stats(), 4);
}

/// A JSON execution reply that is RUNNING forever (the AMC id is taken from the path).
fn forever_running(request: &Request) -> ResponseTemplate {
    let id = request.url.path().rsplit('/').next().unwrap_or_default();
    ResponseTemplate::new(200)
        .set_body_json(json!({ "workflowExecutionId": id, "status": "RUNNING" }))
}

async fn past_the_restart_intensity_the_collection_is_failed_with_the_reason_and_the_process_goes_on(
    backend: Backend,
) {
    // Arrange: the first collection's three executions (AMC ids ending -1, -2, -3, the first
    // created) stay RUNNING, so only the crashes can end it. Status listings are refused, so
    // that every status is read with a GET (the one the override answers).
    let fx = fixture(backend, 3, WorkflowSource::Sql(SQL.into())).await;
    // Every week at once: the workflow has run on the instance before (no probing).
    crate::support::pipeline::prove_workflow(&fx).await;
    let doomed = fx.collection_id;
    let amc = FakeAmc::start(Script {
        running_polls: 1,
        refuse_status_listings: true,
        ..Script::default()
    })
    .await;
    Mock::given(method("GET"))
        .and(path_regex(format!(
            "^{}/amcexec-[0-9-]+-[123]$",
            executions_path()
        )))
        .respond_with(forever_running)
        .with_priority(1)
        .mount(&amc.server)
        .await;
    let mut settings = settings(&fx.db.url, &amc.base_url(), &amc.token_url());
    settings.scheduler.restart_intensity = 2;
    settings.scheduler.restart_window_seconds = 600;
    // Only the start-up scan and `ScanDue` look for work, so the second collection is picked up
    // exactly when the test says so.
    settings.scheduler.scan_interval_ms = 600_000;
    let daemon = start_daemon(&fx.store, &settings, false).await;
    wait_until("every week running", PATIENCE, || async {
        count(&fx.store, doomed, WeekStatus::Running).await == 3
    })
    .await;

    // Act: three unexpected stops in a row, each of a freshly restarted generation.
    for generation in 0..3 {
        let child = running_child(&daemon, doomed, generation).await;
        child
            .addr
            .expect("running child address")
            .do_send(StopCollection);
    }

    // Assert: given up with the reason, no child left, the process still serving.
    wait_until("the collection marked failed", PATIENCE, || async {
        let collection = fx.store.collection(doomed).await.unwrap().unwrap();
        collection.status == CollectionStatus::Failed
    })
    .await;
    let collection = fx.store.collection(doomed).await.unwrap().unwrap();
    let reason = collection.error_message.unwrap_or_default();
    assert!(
        reason.contains("stopped unexpectedly 3 times"),
        "error_message: {reason}"
    );
    let status = daemon.supervisor.send(GetSupervisorStatus).await.unwrap();
    assert_eq!(status.gave_up_total, 1, "{status:?}");
    assert_eq!(status.restarts_total, 2, "{status:?}");
    assert!(
        status.children.iter().all(|c| c.collection_id != doomed),
        "{status:?}"
    );

    // Act: a second collection on the same instance, in the same running process.
    let other = fx
        .store
        .insert_workflow("other", &WorkflowSource::Sql("SELECT 2".into()))
        .await
        .unwrap();
    let second = add_collection(&fx.store, &fx.instance, &other, 2, "UTC").await;
    daemon
        .supervisor
        .send(SupervisorEvent::ScanDue)
        .await
        .unwrap();

    // Assert
    wait_until("the second collection completed", PATIENCE, || async {
        let collection = fx.store.collection(second).await.unwrap().unwrap();
        collection.status == CollectionStatus::Completed
    })
    .await;
    for week in weeks(&fx.store, second).await {
        assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
        assert_eq!(week.row_count, Some(2), "{week:?}");
    }
    let still_failed = fx.store.collection(doomed).await.unwrap().unwrap();
    assert_eq!(still_failed.status, CollectionStatus::Failed);
    shutdown(daemon).await;
}

/// Ignored (src bug): `AmcGateway`'s `SubmitExecution` future keeps retrying the create after the
/// actor that asked for it is gone, while the restarted actor lists, finds nothing, and creates
/// again: two AMC executions for one week.
async fn a_create_still_retried_by_the_gateway_when_its_actor_restarts_is_not_sent_twice(
    backend: Backend,
) {
    // Arrange: AMC throttles the first create for 2 s; the create future lives in the gateway,
    // not in the collection actor, so it outlives the actor that asked for it.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let id = fx.collection_id;
    let amc = FakeAmc::start(Script {
        running_polls: 1,
        ..Script::default()
    })
    .await;
    Mock::given(method("POST"))
        .and(path_regex(format!("^{}$", executions_path())))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "2")
                .set_body_json(json!({ "code": 429, "message": "Too Many Requests" })),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&amc.server)
        .await;
    let mut settings = settings(&fx.db.url, &amc.base_url(), &amc.token_url());
    // Lets the client honour the whole Retry-After (it is capped at 4 x backoff_max).
    settings.amc.backoff_max_ms = 1_000;
    let mut daemon = start_daemon(&fx.store, &settings, true).await;
    let creates = || async {
        let requests = amc.requests().await;
        requests
            .iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path() == executions_path())
            .count()
    };
    wait_until("the throttled create", PATIENCE, || async {
        creates().await == 1
    })
    .await;
    let first = running_child(&daemon, id, 0).await;

    // Act: the actor dies while its create waits out the Retry-After inside the gateway.
    first
        .addr
        .expect("running child address")
        .do_send(StopCollection);
    running_child(&daemon, id, 1).await;
    wait_idle(&mut daemon).await;
    // The throttled create would be re-sent 2 s after the 429; look past that moment. A fixed
    // sleep on purpose: what is asserted is that nothing happens, which no condition can show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    shutdown(daemon).await;

    // Assert
    let stored = weeks(&fx.store, id).await;
    assert_eq!(stored[0].status, WeekStatus::Completed, "{:?}", stored[0]);
    assert_eq!(
        amc.execution_count(),
        1,
        "AMC executions created for one week ({} create requests)",
        creates().await
    );
}

crate::actix_on_both_backends!(
    a_collection_actor_that_stops_unexpectedly_is_restarted_fresh_and_the_collection_completes,
    past_the_restart_intensity_the_collection_is_failed_with_the_reason_and_the_process_goes_on,
);

mod a_create_still_retried_by_the_gateway_when_its_actor_restarts_is_not_sent_twice {
    use crate::support::Backend;

    #[actix_rt::test]
    async fn on_sqlite() {
        super::a_create_still_retried_by_the_gateway_when_its_actor_restarts_is_not_sent_twice(
            Backend::Sqlite,
        )
        .await
    }

    #[actix_rt::test]
    async fn on_postgres() {
        super::a_create_still_retried_by_the_gateway_when_its_actor_restarts_is_not_sent_twice(
            Backend::Postgres,
        )
        .await
    }
}

/// sqlx panics when a pool connection is dropped while the runtime is being torn down; an
/// unclosed pool or a database future still pending at shutdown did that in about 3 runs in 10.
#[tokio::test]
async fn twenty_start_stop_cycles_on_postgres_never_print_a_panic() {
    let db = crate::support::TestDb::new(Backend::Postgres).await;
    db.run(&["migrate"]);
    for cycle in 0..20 {
        let output = db
            .run_with_env_async(
                &["run", "--exit-when-idle"],
                &[
                    ("AMC_COLLECTOR__AMC__CLIENT_ID", "client"),
                    ("AMC_COLLECTOR__AMC__CLIENT_SECRET", "secret"),
                    ("AMC_COLLECTOR__AMC__REFRESH_TOKEN", "refresh"),
                    ("AMC_COLLECTOR__AMC__BASE_URL", "http://127.0.0.1:9"),
                    ("AMC_COLLECTOR__AMC__TOKEN_URL", "http://127.0.0.1:9/token"),
                    ("AMC_COLLECTOR__HTTP__BIND", "127.0.0.1:0"),
                ],
            )
            .await;
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "cycle {cycle}: {printed}");
        assert!(!printed.contains("panicked"), "cycle {cycle}: {printed}");
    }
}
