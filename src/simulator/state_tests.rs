//! Scheduler tests on a synthetic clock: instants are passed in, so no test sleeps.

use super::*;

fn config(max: u64) -> SimulatorConfig {
    SimulatorConfig {
        pending_ms: 10,
        running_ms: 100,
        publishing_ms: 20,
        max_running_per_instance: max,
        ..SimulatorConfig::default()
    }
}

fn new_execution(instance: &str, start_date: &str) -> NewExecution {
    let date: NaiveDate = start_date.parse().unwrap();
    let start = date.and_hms_opt(0, 0, 0).unwrap();
    let end = start + chrono::Duration::days(7);
    NewExecution {
        instance: instance.to_owned(),
        workflow_id: "wf".to_owned(),
        workflow_key: "wf".to_owned(),
        sql_query: None,
        parameter_values: None,
        start_original: start.format("%Y-%m-%dT%H:%M:%S").to_string(),
        end_original: end.format("%Y-%m-%dT%H:%M:%S").to_string(),
        start_date: date,
        time_zone: "UTC".to_owned(),
        start_utc: start.and_utc(),
        end_utc: end.and_utc(),
    }
}

fn status(state: &mut State, config: &SimulatorConfig, id: &str, now: Instant) -> Status {
    let instance = state.executions[id].instance.clone();
    state.advance(config, &instance, now);
    state.executions[id].status_at(now).0
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn execution_walks_pending_running_publishing_succeeded_at_exact_times() {
    let config = config(10);
    let shared = Shared::new(config.clone());
    let mut state = shared.lock();
    let t0 = Instant::now();
    let id = state.create(&config, new_execution("amc1", "2024-01-01"), t0);

    assert_eq!(
        status(&mut state, &config, &id, t0 + ms(9)),
        Status::Pending
    );
    assert_eq!(
        status(&mut state, &config, &id, t0 + ms(10)),
        Status::Running
    );
    assert_eq!(
        status(&mut state, &config, &id, t0 + ms(109)),
        Status::Running
    );
    assert_eq!(
        status(&mut state, &config, &id, t0 + ms(110)),
        Status::Publishing
    );
    assert_eq!(
        status(&mut state, &config, &id, t0 + ms(130)),
        Status::Succeeded
    );
}

#[test]
fn eleventh_execution_waits_for_a_slot_and_starts_when_the_first_releases_it() {
    let config = config(10);
    let shared = Shared::new(config.clone());
    let mut state = shared.lock();
    let t0 = Instant::now();
    let ids: Vec<String> = (0..11)
        .map(|_| state.create(&config, new_execution("amc1", "2024-01-01"), t0))
        .collect();

    // Polled late on purpose: the replay must still place the start at the release instant.
    let late = t0 + ms(125);
    assert_eq!(
        status(&mut state, &config, &ids[10], t0 + ms(50)),
        Status::Pending
    );
    assert_eq!(
        status(&mut state, &config, &ids[0], late),
        Status::Publishing
    );
    assert_eq!(status(&mut state, &config, &ids[10], late), Status::Pending);
    let after = t0 + ms(130);
    assert_eq!(
        status(&mut state, &config, &ids[10], after),
        Status::Running
    );
    assert_eq!(state.executions[&ids[10]].run_started, Some(after));
    assert_eq!(state.stats.max_running_per_instance["amc1"], 10);
    assert_eq!(state.stats.max_in_flight_per_instance["amc1"], 11);
}

#[test]
fn slot_holders_never_exceed_the_limit_under_jitter_and_sparse_polling() {
    let config = SimulatorConfig {
        duration_jitter_pct: 50.0,
        ..config(3)
    };
    let shared = Shared::new(config.clone());
    let mut state = shared.lock();
    let t0 = Instant::now();
    let ids: Vec<String> = (0..40)
        .map(|n| state.create(&config, new_execution("amc1", "2024-01-01"), t0 + ms(n)))
        .collect();
    let end = t0 + ms(10_000);
    state.advance(&config, "amc1", end);

    let mut intervals: Vec<(Instant, Instant)> = ids
        .iter()
        .map(|id| {
            let execution = &state.executions[id];
            let started = execution.run_started.unwrap();
            (started, execution.slot_release(started))
        })
        .collect();
    intervals.sort();
    for (start, _) in &intervals {
        let holding = intervals
            .iter()
            .filter(|(s, e)| s <= start && e > start)
            .count();
        assert!(holding <= 3, "{holding} slot holders at once");
    }
    assert_eq!(state.stats.max_running_per_instance["amc1"], 3);
    assert!(ids
        .iter()
        .all(|id| state.executions[id].status_at(end).0 == Status::Succeeded));
}

#[test]
fn cancelling_a_running_execution_hands_its_slot_to_the_next_pending_one_immediately() {
    let config = config(1);
    let shared = Shared::new(config.clone());
    let mut state = shared.lock();
    let t0 = Instant::now();
    let first = state.create(&config, new_execution("amc1", "2024-01-01"), t0);
    let second = state.create(&config, new_execution("amc1", "2024-01-08"), t0);

    let cancel_at = t0 + ms(40);
    assert_eq!(state.cancel(&config, &first, cancel_at), Ok(()));
    assert_eq!(
        state.executions[&first].status_at(cancel_at).0,
        Status::Cancelled
    );
    assert_eq!(state.executions[&second].run_started, Some(cancel_at));
    assert_eq!(
        state.cancel(&config, &first, cancel_at),
        Err(CancelRefused::Status(Status::Cancelled))
    );
    assert_eq!(
        state.cancel(&config, "nope", cancel_at),
        Err(CancelRefused::Unknown)
    );
}

#[test]
fn cancelling_a_pending_execution_removes_it_from_the_queue() {
    let config = config(1);
    let shared = Shared::new(config.clone());
    let mut state = shared.lock();
    let t0 = Instant::now();
    let _first = state.create(&config, new_execution("amc1", "2024-01-01"), t0);
    let second = state.create(&config, new_execution("amc1", "2024-01-08"), t0);
    let third = state.create(&config, new_execution("amc1", "2024-01-15"), t0);

    assert_eq!(state.cancel(&config, &second, t0 + ms(20)), Ok(()));
    // The first releases its slot at 10 + 100 + 20 ms; the third takes it, skipping the second.
    assert_eq!(
        status(&mut state, &config, &third, t0 + ms(130)),
        Status::Running
    );
    assert_eq!(state.executions[&second].run_started, None);
}

#[test]
fn fail_and_reject_windows_end_at_the_end_of_running_and_release_the_slot() {
    let config = SimulatorConfig {
        fail_windows: vec!["2024-01-01".parse().unwrap()],
        reject_windows: vec!["2024-01-08".parse().unwrap()],
        ..config(2)
    };
    let shared = Shared::new(config.clone());
    let mut state = shared.lock();
    let t0 = Instant::now();
    let failed = state.create(&config, new_execution("amc1", "2024-01-01"), t0);
    let rejected = state.create(&config, new_execution("amc1", "2024-01-08"), t0);
    let next = state.create(&config, new_execution("amc1", "2024-01-15"), t0);

    let at = t0 + ms(110);
    assert_eq!(status(&mut state, &config, &failed, at), Status::Failed);
    assert_eq!(status(&mut state, &config, &rejected, at), Status::Rejected);
    assert_eq!(status(&mut state, &config, &next, at), Status::Running);
    let json = state.executions[&rejected].to_json(at, &shared.clock, false, true);
    assert!(json["statusReason"]
        .as_str()
        .unwrap()
        .contains("too many workflows have already been run"));
}

#[test]
fn duration_jitter_is_deterministic_per_seed_and_execution_id() {
    let config = SimulatorConfig {
        duration_jitter_pct: 30.0,
        ..config(1)
    };
    let a = jittered_running(&config, "id-1");
    assert_eq!(a, jittered_running(&config, "id-1"));
    assert!(a >= ms(70) && a <= ms(130));
}
