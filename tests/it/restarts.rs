//! The gateway and the database writer are restarted in place when they stop (actix Supervisor),
//! and the collections using them carry on to the end.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::pipeline::{fixture, settings, weeks};
use crate::support::{wait_until, Backend};
use amc_collector::actors::db_writer::RestartWriter;
use amc_collector::actors::gateway::RestartGateway;
use amc_collector::app::App;
use amc_collector::simulator::{self, SimulatorConfig};
use amc_collector::status::WeekStatus;
use amc_collector::store::WorkflowSource;

async fn the_gateway_and_the_writer_restart_and_the_collection_completes(backend: Backend) {
    // Arrange
    let fx = fixture(
        backend,
        6,
        WorkflowSource::Sql("SELECT 1 WHERE '{{start_date}}' > ''".into()),
    )
    .await;
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 300,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    };
    let sim = simulator::start(bind, config).await.unwrap();
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.amc.max_in_flight_per_instance = 3;
    let app = App::build(&settings).store(fx.store.clone());
    let mut running = app.exit_when_idle(true).start().await.unwrap();
    wait_until("a week runs", Duration::from_secs(30), || async {
        weeks(&fx.store, fx.collection_id)
            .await
            .iter()
            .any(|w| w.status == WeekStatus::Running)
    })
    .await;

    // Act: both restart while executions are in flight.
    running.gateway.send(RestartGateway).await.unwrap();
    running.db.send(RestartWriter).await.unwrap();

    // Assert
    tokio::time::timeout(Duration::from_secs(60), &mut running.idle)
        .await
        .unwrap()
        .unwrap();
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert!(
        stored.iter().all(|w| w.status == WeekStatus::Completed),
        "{stored:?}"
    );
    let stats = sim.stats();
    assert_eq!(stats.creates_total, 6);
    assert!(stats.creates_per_window.values().all(|n| *n == 1));
    assert!(running.gateway.connected() && running.db.connected());
}

crate::actix_on_both_backends!(the_gateway_and_the_writer_restart_and_the_collection_completes);
