//! Several collections over one window, with AMC answering creates 502 after making them: every
//! week ends with an execution of its own, and the listings adoption makes stay bounded.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use amc_collector::simulator::{self, SimulatorConfig};
use amc_collector::status::WeekStatus;
use amc_collector::store::WorkflowSource;

use crate::support::pipeline::{
    add_collection, assert_completed_weeks_are_traceable, fixture, run_until_idle, settings, weeks,
};
use crate::support::Backend;

const SQL: &str = "SELECT campaign, SUM(impressions) FROM t WHERE d >= '{{start_date}}' GROUP BY 1";
const COLLECTIONS: usize = 4;
const WEEKS: i64 = 4;

async fn four_collections_of_one_window_each_complete_with_executions_of_their_own(
    backend: Backend,
) {
    // Arrange: four collections of the same workflow, instance and weeks (a keep-fresh one and a
    // backfill, a collection created again); half of AMC's creates are made, then answered 502.
    let fx = fixture(backend, WEEKS, WorkflowSource::Sql(SQL.into())).await;
    let mut collections = vec![fx.collection_id];
    for _ in 1..COLLECTIONS {
        collections.push(add_collection(&fx.store, &fx.instance, &fx.workflow, WEEKS, "UTC").await);
    }
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 30,
        publishing_ms: 5,
        create_then_5xx_rate: 0.5,
        ..SimulatorConfig::default()
    };
    let bind: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sim = simulator::start(bind, config).await.unwrap();

    // Act
    let settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    run_until_idle(&fx.store, &settings, Duration::from_secs(90)).await;

    // Assert: every week completed, each under an AMC execution no other week holds.
    let mut amc_ids = HashSet::new();
    let mut completed = 0;
    for id in &collections {
        for week in weeks(&fx.store, *id).await {
            assert_eq!(week.status, WeekStatus::Completed, "{week:?}");
            let amc_id = week
                .amc_execution_id
                .clone()
                .expect("completed with an AMC id");
            assert!(
                amc_ids.insert(amc_id),
                "an execution serves two weeks: {week:?}"
            );
            completed += 1;
        }
        assert_completed_weeks_are_traceable(&fx.store, *id).await;
    }
    let stats = sim.stats();
    println!(
        "four collections over one window: weeks completed {completed}/{}, creates per window {:?}, \
         creates answered 502 {}, list calls {}",
        COLLECTIONS as i64 * WEEKS,
        stats.creates_per_window.values().collect::<Vec<_>>(),
        stats.creates_answered_5xx,
        stats.lists
    );
    assert!(stats.creates_answered_5xx > 0, "{stats:?}");
    // Each create answered 502 is followed by at most a few listings (three that find nothing
    // before creating again); a week that took another's execution would list without end.
    let bound = stats.creates_answered_5xx * 4 + 8;
    assert!(
        stats.lists <= bound,
        "{} list calls (bound {bound})",
        stats.lists
    );
}

crate::actix_on_both_backends!(
    four_collections_of_one_window_each_complete_with_executions_of_their_own,
);
