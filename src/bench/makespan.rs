//! Makespan: executions of 5 s ± 20 % against AMC's 10-slot limit and its daily limit (30
//! executions per instance per "day", a day shrunk to seconds). The ideal per instance is the
//! larger of two bounds: the slot bound, ceil(weeks on the instance / 10) × mean run time (every
//! slot busy all the time), and the daily-limit bound, (ceil(weeks / 30) - 1) days + one run
//! (every day's creates used at its start); the figure is the measured time over the ideal.
//!
//! The measured backfill is one of workflows already proven on their instances (a one-week run
//! of each before the clock starts, `World::prepare_proven`): a steady state. A workflow new to
//! an instance first probes with one execution per collection until one completes (the guard
//! against queries AMC will never run), which costs one run more, once per workflow and instance.

use std::time::Duration;

use super::fixture::{Layout, World};
use super::{incomplete_note, verdict, BenchError, IdleRun, Outcome, RunCtx};
use crate::simulator::{SimulatorConfig, SimulatorStats};

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

/// One makespan run's sizes: the layout, the run time of an execution, the poll interval and
/// the length of AMC's "day" in seconds.
#[derive(Clone, Copy)]
struct Plan {
    layout: Layout,
    running_ms: u64,
    poll_ms: u64,
    day_secs: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            let layout = Layout {
                instances: 2,
                collections_per_instance: 2,
                weeks: 10,
            };
            Plan {
                layout,
                running_ms: 2_000,
                poll_ms: 100,
                day_secs: 5,
            }
        } else {
            let layout = Layout {
                instances: 4,
                collections_per_instance: 5,
                weeks: 52,
            };
            Plan {
                layout,
                running_ms: 5_000,
                poll_ms: 250,
                day_secs: 12,
            }
        }
    }

    /// The ideal makespan of one instance, with its slot and daily-limit bounds.
    fn ideal(&self) -> (Duration, Duration, Duration) {
        let weeks_per_instance =
            self.layout.collections_per_instance as u64 * self.layout.weeks as u64;
        ideal_makespan(
            weeks_per_instance,
            Duration::from_millis(self.running_ms),
            Duration::from_secs(self.day_secs),
        )
    }

    /// Executions of `running_ms` ± 20 % under AMC's slot and daily limits.
    fn simulator(&self) -> SimulatorConfig {
        SimulatorConfig {
            pending_ms: 0,
            running_ms: self.running_ms,
            publishing_ms: 0,
            duration_jitter_pct: JITTER_PCT,
            max_running_per_instance: SLOTS,
            daily_limit: DAILY_LIMIT,
            daily_window_ms: self.day_secs * 1000,
            ..SimulatorConfig::default()
        }
    }
}

pub async fn run(cx: &RunCtx<'_>) -> Result<Outcome, BenchError> {
    let plan = Plan::new(cx.quick);
    let (ideal, _, _) = plan.ideal();
    eprintln!(
        "makespan [{}]: running, ideal {:.0} s...",
        cx.backend.name(),
        ideal.as_secs_f64()
    );
    let settings = |url: &str, sim: &crate::simulator::SimulatorHandle| {
        let mut settings = super::fixture::settings(url, sim, plan.poll_ms);
        settings.amc.max_creates_per_day = DAILY_LIMIT as u32;
        settings.amc.quota_window_seconds = plan.day_secs;
        settings
    };
    // Counted by the daily limit for the window plus its margin (`store::quota`).
    let settle = Duration::from_secs(plan.day_secs).mul_f64(1.1) + Duration::from_secs(1);
    let world = World::prepare_proven(
        cx,
        "makespan",
        plan.layout,
        plan.simulator(),
        settings,
        settle,
    )
    .await?;
    let settings = settings(world.fx.url(), &world.sim);

    let run = super::run_to_idle(
        world.fx.store.clone(),
        &settings,
        ideal * 4 + Duration::from_secs(120),
    )
    .await?;
    let completed = world.weeks_completed().await?;
    let stats = world.tear_down().await;

    let complete = completed as u64 == plan.layout.total_weeks();
    let line = report(cx, &plan, &run, completed, &stats);
    Ok(Outcome { line, complete })
}

/// The scenario's printed line.
fn report(
    cx: &RunCtx<'_>,
    plan: &Plan,
    run: &IdleRun,
    completed: i64,
    stats: &SimulatorStats,
) -> String {
    let Plan {
        layout,
        running_ms,
        poll_ms,
        day_secs,
    } = *plan;
    let (ideal, slot_bound, daily_bound) = plan.ideal();
    let (makespan, amc) = (run.elapsed, &run.amc);
    let weeks = layout.total_weeks();
    let ratio = makespan.as_secs_f64() / ideal.as_secs_f64();
    // Status reads the simulator admitted (GETs of one execution and listings of an instance's
    // executions), per week: the cost of following the runs.
    let per_week = |n: u64| n as f64 / weeks.max(1) as f64;
    let gets_per_week = per_week(stats.gets + stats.lists);
    // Per instance, averaged: slot time left free while work waited, over the slots (what
    // the collector's own latency added), and the span AMC was busy.
    let instances = stats.timeline_per_instance.len().max(1) as f64;
    let mean = |f: fn(&crate::simulator::InstanceTimeline) -> u64| {
        stats.timeline_per_instance.values().map(f).sum::<u64>() as f64 / 1000.0 / instances
    };
    let idle_per_instance = mean(|t| t.idle_ms);
    let work_per_slot = mean(|t| t.work_ms) / SLOTS as f64;
    let amc_span = mean(|t| t.last_end_ms.saturating_sub(t.first_start_ms));
    let first_start = mean(|t| t.first_start_ms);
    let last_end = stats
        .timeline_per_instance
        .values()
        .map(|t| t.last_end_ms)
        .max();
    let last_end = last_end.unwrap_or(0) as f64 / 1000.0;
    let max_of = |map: &std::collections::BTreeMap<String, u64>| map.values().copied().max();
    format!(
        "makespan [{backend}]: {secs:.1} s vs ideal {ideal:.1} s = {ratio:.3} x ideal (target <= 1.05: {verdict}){incomplete}; \
         ideal = max(slot bound {slot:.1} s, daily-limit bound {daily:.1} s); \
         AMC refused {refused} creates for its daily limit, at most {per_day} creates in a day; \
         most executions in flight per instance {in_flight} (as the simulator saw it; most running at once {running}); \
         429s received {throttled} (simulator served {served}); AMC creates {creates} for {weeks} weeks; \
         AMC gets/week {gets_per_week:.2} (target <= 5: {gets_verdict}), status reads all: GETs of one execution {single:.2} + listings of an instance {lists:.2}; \
         runs seen ended {seen_late:.0} ms after their end on average; per instance: slots idle while work waited {idle:.1} slot-s ({idle_share:.1} % of the ideal), \
         run time per slot {work_per_slot:.1} s, first start to last end {amc_span:.1} s, first start {first_start:.1} s and last end (of any instance) {last_end:.1} s after the simulator started; \
         setup: {setup} (workflows proven on their instances by a one-week run before timing), runs {run_s:.0} s +/- {JITTER_PCT:.0} %, max_in_flight {SLOTS}, \
         {DAILY_LIMIT} executions per {day_secs} s day, poll {poll_ms} ms",
        backend = cx.backend.name(),
        secs = makespan.as_secs_f64(),
        ideal = ideal.as_secs_f64(),
        slot = slot_bound.as_secs_f64(),
        daily = daily_bound.as_secs_f64(),
        refused = stats.daily_limit_refusals,
        per_day = stats.max_creates_per_daily_window,
        verdict = verdict(cx.quick, ratio <= 1.05),
        incomplete = incomplete_note(completed, weeks),
        in_flight = max_of(&stats.max_in_flight_per_instance).unwrap_or(0),
        running = max_of(&stats.max_running_per_instance).unwrap_or(0),
        throttled = amc.rate_limited,
        served = stats.served_429,
        creates = stats.creates_total,
        gets_per_week = gets_per_week,
        single = per_week(stats.gets),
        lists = per_week(stats.lists),
        gets_verdict = verdict(cx.quick, gets_per_week <= 5.0),
        seen_late = stats.seen_ended_delay_ms as f64 / stats.seen_ended.max(1) as f64,
        idle = idle_per_instance,
        work_per_slot = work_per_slot,
        amc_span = amc_span,
        first_start = first_start,
        last_end = last_end,
        idle_share = 100.0 * idle_per_instance / SLOTS as f64 / ideal.as_secs_f64(),
        setup = layout.describe(),
        run_s = running_ms as f64 / 1000.0,
    )
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
