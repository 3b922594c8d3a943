//! Poll economy: an execution is polled around its expected end, learned from the workflow's
//! recent runs on the instance, not every poll interval for its whole run.

use super::*;

async fn executions_are_polled_a_few_times_around_their_expected_end(backend: Backend) {
    // Arrange: runs of 1.5 s polled at an interval of 20 ms (a poll every interval: 75 a run),
    // one at a time so that each run learns from the ones before it.
    let weeks_count = 6;
    let fx = fixture(backend, weeks_count, WorkflowSource::Sql(SQL.into())).await;
    let sim = start_simulator(SimulatorConfig {
        running_ms: 1_500,
        ..fast_simulator()
    })
    .await;
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.amc.max_in_flight_per_instance = 1;

    // Act
    run_until_idle(&fx.store, &settings, Duration::from_secs(60)).await;

    // Assert: every week stored, at a few status reads a week, GETs and listings of the
    // instance (the first run, with nothing known, costs a dozen or more; polling every
    // interval costs 35 or more a week even on a loaded machine; a lone run watched near its
    // end is listed no more often than its own polls would come).
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert!(stored.iter().all(|w| w.status == WeekStatus::Completed));
    let stats = sim.stats();
    let reads = stats.gets + stats.lists;
    assert!(
        reads <= 15 * weeks_count as u64,
        "{reads} status reads ({} GETs, {} listings) for {weeks_count} weeks",
        stats.gets,
        stats.lists
    );
    // The next process learns from these runs through the database.
    let runs = fx
        .store
        .recent_run_times(fx.instance.id, fx.workflow.id, 50)
        .await
        .unwrap();
    assert_eq!(runs.len(), weeks_count as usize);
    assert!(
        runs.iter().all(|run| *run >= Duration::from_millis(1_500)),
        "{runs:?}"
    );
}

crate::actix_on_both_backends!(executions_are_polled_a_few_times_around_their_expected_end,);
