//! A collection left by its process with an execution in flight on AMC is taken over by a process
//! that already runs `scheduler.max_collections` collections: its execution holds one of the
//! instance's slots for every process, so leaving it unclaimed until there is room could starve
//! the instance for good.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::pipeline::{add_collection, finish, fixture, settings, weeks};
use crate::support::{wait_until, Backend};
use amc_collector::app::App;
use amc_collector::simulator::{self, SimulatorConfig};
use amc_collector::status::WeekStatus;
use amc_collector::store::{Control, WorkflowSource};

async fn a_collection_left_with_an_execution_in_flight_is_taken_over_by_a_process_at_its_cap(
    backend: Backend,
) {
    // Arrange: collection `older` (paused) and `left`, on one instance of one slot.
    let fx = fixture(
        backend,
        1,
        WorkflowSource::Sql("SELECT 1 AS older WHERE '{{start_date}}' > ''".into()),
    )
    .await;
    let older = fx.collection_id;
    fx.store.apply_control(older, Control::Pause).await.unwrap();
    let other = fx
        .store
        .insert_workflow(
            "left",
            &WorkflowSource::Sql("SELECT 2 AS left_behind WHERE '{{start_date}}' > ''".into()),
        )
        .await
        .unwrap();
    let left = add_collection(&fx.store, &fx.instance, &other, 1, "UTC").await;
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sim = simulator::start(
        bind,
        SimulatorConfig {
            pending_ms: 5,
            running_ms: 1_500,
            publishing_ms: 5,
            ..SimulatorConfig::default()
        },
    )
    .await
    .unwrap();
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.amc.max_in_flight_per_instance = 1;
    settings.scheduler.max_collections = 1;
    // A first process submits `left`'s week and stops while it runs on AMC (its lease is given
    // back; a killed process's would expire: the claim treats both alike).
    let first = App::build(&settings)
        .store(fx.store.clone())
        .start()
        .await
        .unwrap();
    wait_until(
        "`left`'s week runs on AMC",
        Duration::from_secs(30),
        || async {
            weeks(&fx.store, left)
                .await
                .iter()
                .any(|w| w.status == WeekStatus::Running)
        },
    )
    .await;
    first.stop().await.unwrap();
    fx.store
        .apply_control(older, Control::Resume)
        .await
        .unwrap();

    // Act: a second process whose cap of one collection the older `older` would fill.
    let second = App::build(&settings)
        .store(fx.store.clone())
        .exit_when_idle(true)
        .start()
        .await
        .unwrap();

    // Assert: `left` was taken over (its execution adopted, not resubmitted), and `older` ran.
    finish(second, Duration::from_secs(60)).await;
    for id in [older, left] {
        let stored = weeks(&fx.store, id).await;
        assert!(
            stored.iter().all(|w| w.status == WeekStatus::Completed),
            "{stored:?}"
        );
    }
    let stats = sim.stats();
    assert_eq!(stats.creates_total, 2, "one create per week");
    assert_eq!(
        stats.max_in_flight_per_instance.values().max(),
        Some(&1),
        "the slot limit held"
    );
}

crate::actix_on_both_backends!(
    a_collection_left_with_an_execution_in_flight_is_taken_over_by_a_process_at_its_cap
);
