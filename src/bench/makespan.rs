//! Makespan: executions of 5 s ± 20 % against AMC's 10-slot limit. The ideal per instance is
//! ceil(weeks on the instance / 10) × mean run time (every slot busy all the time); the figure
//! is the measured time to finish everything over the largest ideal.

use std::time::Duration;

use super::fixture::{self, Fixture, Layout};
use super::{verdict, BenchError, Outcome, RunCtx};
use crate::simulator::SimulatorConfig;

const SLOTS: u64 = 10;
const JITTER_PCT: f64 = 20.0;

pub async fn run(cx: &RunCtx<'_>) -> Result<Outcome, BenchError> {
    let (layout, running_ms, poll_ms) = if cx.quick {
        let layout = Layout {
            instances: 2,
            collections_per_instance: 2,
            weeks: 10,
        };
        (layout, 2_000, 100)
    } else {
        let layout = Layout {
            instances: 4,
            collections_per_instance: 5,
            weeks: 52,
        };
        (layout, 5_000, 250)
    };
    let weeks_per_instance = layout.collections_per_instance as u64 * layout.weeks as u64;
    let ideal = Duration::from_millis(weeks_per_instance.div_ceil(SLOTS) * running_ms);
    eprintln!(
        "makespan [{}]: running, ideal {:.0} s...",
        cx.backend.name(),
        ideal.as_secs_f64()
    );
    let sim = super::start_simulator(SimulatorConfig {
        pending_ms: 0,
        running_ms,
        publishing_ms: 0,
        duration_jitter_pct: JITTER_PCT,
        max_running_per_instance: SLOTS,
        ..SimulatorConfig::default()
    })
    .await?;
    let mut fx = Fixture::open(cx.backend, "makespan", cx.server).await?;
    fixture::seed(&fx.store, layout).await?;
    fx.fresh_pool().await?;
    let settings = fixture::settings(fx.url(), &sim, poll_ms);

    let run = super::run_to_idle(
        fx.store.clone(),
        &settings,
        ideal * 4 + Duration::from_secs(120),
    )
    .await?;
    let (makespan, amc) = (run.elapsed, run.amc);

    let completed: i64 = fx
        .store
        .list_collections()
        .await?
        .iter()
        .map(|c| c.weeks_completed)
        .sum();
    let stats = sim.stats();
    sim.stop().await;
    fx.remove().await;

    let weeks = layout.total_weeks();
    let ratio = makespan.as_secs_f64() / ideal.as_secs_f64();
    let max_of = |map: &std::collections::BTreeMap<String, u64>| map.values().copied().max();
    let complete = completed as u64 == weeks;
    let line = format!(
        "makespan [{backend}]: {secs:.1} s vs ideal {ideal:.1} s = {ratio:.3} x ideal (target <= 1.10: {verdict}){incomplete}; \
         most executions in flight per instance {in_flight} (as the simulator saw it; most running at once {running}); \
         429s received {throttled} (simulator served {served}); AMC creates {creates} for {weeks} weeks; \
         setup: {setup}, runs {run_s:.0} s +/- {JITTER_PCT:.0} %, max_in_flight {SLOTS}, poll {poll_ms} ms",
        backend = cx.backend.name(),
        secs = makespan.as_secs_f64(),
        ideal = ideal.as_secs_f64(),
        verdict = verdict(cx.quick, ratio <= 1.10),
        incomplete = if complete {
            String::new()
        } else {
            format!(" INCOMPLETE: {completed}/{weeks} weeks completed")
        },
        in_flight = max_of(&stats.max_in_flight_per_instance).unwrap_or(0),
        running = max_of(&stats.max_running_per_instance).unwrap_or(0),
        throttled = amc.rate_limited,
        served = stats.served_429,
        creates = stats.creates_total,
        setup = layout.describe(),
        run_s = running_ms as f64 / 1000.0,
    );
    Ok(Outcome { line, complete })
}
