//! An execution AMC no longer has (its downloadUrls answer 404 although it SUCCEEDED) is not the
//! end of its week: the week is submitted again as a new attempt and completes.

use std::net::SocketAddr;
use std::time::Duration;

use amc_collector::simulator::{self, SimulatorConfig};
use amc_collector::status::WeekStatus;
use amc_collector::store::{Store, WorkflowSource};

use crate::support::pipeline::{fixture, run_until_idle, settings, weeks};
use crate::support::Backend;

const SQL: &str = "SELECT campaign, SUM(impressions) FROM t WHERE d >= '{{start_date}}' GROUP BY 1";

async fn a_succeeded_execution_amc_lost_is_submitted_again_and_the_week_completes(
    backend: Backend,
) {
    // Arrange: AMC loses the first execution whose results are asked for.
    let fx = fixture(backend, 1, WorkflowSource::Sql(SQL.into())).await;
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 20,
        publishing_ms: 5,
        lost_executions: 1,
        ..SimulatorConfig::default()
    };
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sim = simulator::start(bind, config).await.unwrap();

    // Act
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert: completed by a second execution; the lost one stays in the lineage, not succeeded.
    let week = weeks(&fx.store, fx.collection_id).await.remove(0);
    assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
    assert_eq!(week.attempts, 2, "{week:?}");
    let stats = sim.stats();
    assert!(stats.served_lost_executions >= 1, "{stats:?}");
    assert_eq!(stats.creates_total, 2, "{stats:?}");
    let sql = "SELECT status FROM workflow_executions WHERE week_id = $1 ORDER BY created_at";
    let statuses: Vec<String> = match &fx.store {
        Store::Postgres(pool) => sqlx::query_scalar(sql).bind(week.id).fetch_all(pool).await,
        Store::Sqlite(pool) => sqlx::query_scalar(sql).bind(week.id).fetch_all(pool).await,
    }
    .unwrap();
    assert_eq!(statuses, vec!["failed", "succeeded"]);
}

crate::actix_on_both_backends!(
    a_succeeded_execution_amc_lost_is_submitted_again_and_the_week_completes,
);
