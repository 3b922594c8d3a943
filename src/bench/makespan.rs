//! Makespan: executions of 5 s ± 20 % against AMC's 10-slot limit and its daily limit (30
//! executions per instance per "day", a day shrunk to seconds). The ideal per instance is the
//! larger of two bounds: the slot bound, ceil(weeks on the instance / 10) × mean run time (every
//! slot busy all the time), and the daily-limit bound, (ceil(weeks / 30) - 1) days + one run
//! (every day's creates used at its start); the figure is the measured time over the ideal.

use std::time::Duration;

use super::fixture::{self, Fixture, Layout};
use super::{verdict, BenchError, Outcome, RunCtx};
use crate::simulator::SimulatorConfig;

const SLOTS: u64 = 10;
const JITTER_PCT: f64 = 20.0;
/// AMC's documented daily limit of ad-hoc executions per instance.
const DAILY_LIMIT: u64 = 30;

/// The larger of the slot bound and the daily-limit bound, with both, for one instance.
fn ideal_makespan(weeks: u64, running: Duration, day: Duration) -> (Duration, Duration, Duration) {
    let slot_bound = running * u32::try_from(weeks.div_ceil(SLOTS)).unwrap_or(u32::MAX);
    let days = u32::try_from(weeks.div_ceil(DAILY_LIMIT).saturating_sub(1)).unwrap_or(u32::MAX);
    let daily_bound = day * days + running;
    (slot_bound.max(daily_bound), slot_bound, daily_bound)
}

pub async fn run(cx: &RunCtx<'_>) -> Result<Outcome, BenchError> {
    let (layout, running_ms, poll_ms, day_secs) = if cx.quick {
        let layout = Layout {
            instances: 2,
            collections_per_instance: 2,
            weeks: 10,
        };
        (layout, 2_000, 100, 5)
    } else {
        let layout = Layout {
            instances: 4,
            collections_per_instance: 5,
            weeks: 52,
        };
        (layout, 5_000, 250, 12)
    };
    let weeks_per_instance = layout.collections_per_instance as u64 * layout.weeks as u64;
    let (ideal, slot_bound, daily_bound) = ideal_makespan(
        weeks_per_instance,
        Duration::from_millis(running_ms),
        Duration::from_secs(day_secs),
    );
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
        daily_limit: DAILY_LIMIT,
        daily_window_ms: day_secs * 1000,
        ..SimulatorConfig::default()
    })
    .await?;
    let mut fx = Fixture::open(cx.backend, "makespan", cx.server).await?;
    fixture::seed(&fx.store, layout).await?;
    fx.fresh_pool().await?;
    let mut settings = fixture::settings(fx.url(), &sim, poll_ms);
    settings.amc.max_creates_per_day = DAILY_LIMIT as u32;
    settings.amc.quota_window_seconds = day_secs;

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
         ideal = max(slot bound {slot:.1} s, daily-limit bound {daily:.1} s); \
         AMC refused {refused} creates for its daily limit, at most {per_day} creates in a day; \
         most executions in flight per instance {in_flight} (as the simulator saw it; most running at once {running}); \
         429s received {throttled} (simulator served {served}); AMC creates {creates} for {weeks} weeks; \
         setup: {setup}, runs {run_s:.0} s +/- {JITTER_PCT:.0} %, max_in_flight {SLOTS}, \
         {DAILY_LIMIT} executions per {day_secs} s day, poll {poll_ms} ms",
        backend = cx.backend.name(),
        secs = makespan.as_secs_f64(),
        ideal = ideal.as_secs_f64(),
        slot = slot_bound.as_secs_f64(),
        daily = daily_bound.as_secs_f64(),
        refused = stats.daily_limit_refusals,
        per_day = stats.max_creates_per_daily_window,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ideal_is_the_larger_of_the_slot_and_daily_limit_bounds() {
        let run = Duration::from_secs(5);
        let day = Duration::from_secs(100);
        // 260 weeks: 26 rounds of 10 slots (130 s) against 8 full days then a run (805 s).
        assert_eq!(ideal_makespan(260, run, day).0, Duration::from_secs(805));
        // 20 weeks fit in one day: only the slots bound it.
        assert_eq!(ideal_makespan(20, run, day).0, Duration::from_secs(10));
    }
}
