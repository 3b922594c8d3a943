//! Scale: 10,000 collections × 2 weeks active at once, with executions long enough that none
//! finishes during the run. Measures how long the Supervisor takes to have every collection
//! actor running, how long until every AMC slot is busy, and the process's peak memory.

use std::time::{Duration, Instant};

use super::fixture::{Layout, World};
use super::procstat::{self, CpuSample};
use super::{verdict, BenchError, Outcome, RunCtx};
use crate::actors::gateway::GetGatewayStatus;
use crate::actors::supervisor::GetSupervisorStatus;
use crate::app::App;
use crate::config::Settings;
use crate::simulator::{SimulatorConfig, SimulatorStats};

const SLOTS: usize = 10;
/// Executions outlive the run: nothing completes, every collection stays active.
const RUNNING_MS: u64 = 3_600_000;
const TARGET_BYTES: u64 = 200_000_000;
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long the actors, and then the slots, may take.
const LIMIT: Duration = Duration::from_secs(600);

pub async fn run(cx: &RunCtx<'_>) -> Result<Outcome, BenchError> {
    let (layout, poll_ms) = plan(cx.quick);
    let world = World::prepare(
        cx,
        "scale",
        layout,
        SimulatorConfig {
            pending_ms: 0,
            running_ms: RUNNING_MS,
            publishing_ms: 0,
            max_running_per_instance: SLOTS as u64,
            ..SimulatorConfig::default()
        },
    )
    .await?;
    let mut settings = world.settings(poll_ms);
    // 10,000 collection actors to stop.
    settings.scheduler.shutdown_deadline_seconds = 30;
    let measured = measure(&world, &settings, layout).await?;
    let seeded_in = world.seeded_in;
    let stats = world.tear_down().await;
    let line = report(cx, layout, poll_ms, seeded_in, &measured, &stats);
    Ok(Outcome {
        line,
        complete: measured.slots_busy.is_some(),
    })
}

/// The layout and poll interval of a run.
fn plan(quick: bool) -> (Layout, u64) {
    if quick {
        let layout = Layout {
            instances: 20,
            collections_per_instance: 50,
            weeks: 2,
        };
        (layout, 1_000)
    } else {
        let layout = Layout {
            instances: 100,
            collections_per_instance: 100,
            weeks: 2,
        };
        (layout, 5_000)
    }
}

/// What a scale run measured.
struct Measured {
    all_running: Duration,
    /// None: not every slot was busy within [`LIMIT`].
    slots_busy: Option<Duration>,
    hold: Duration,
    peak: Option<u64>,
    peak_reset: bool,
    rss: Option<u64>,
    cpu: CpuSample,
    shutdown: Duration,
}

/// Starts the daemon, waits for every actor and then every slot, holds through steady polling,
/// and stops it again.
async fn measure(
    world: &World<'_>,
    settings: &Settings,
    layout: Layout,
) -> Result<Measured, BenchError> {
    let peak_reset = procstat::reset_peak_rss();
    let cpu_before = CpuSample::now(None);

    let started = Instant::now();
    let daemon = super::start_daemon(world.fx.store.clone(), settings, false).await?;
    let all_running = wait_for_all_actors(&daemon, layout.collections(), started).await?;
    let slots_busy = wait_for_all_slots(&daemon, layout.instances * SLOTS, started).await?;
    // Two poll rounds of every in-flight execution, so steady-state polling is in the peak.
    let hold = settings
        .amc
        .poll_interval()
        .saturating_mul(2)
        .max(Duration::from_secs(2));
    tokio::time::sleep(hold).await;
    let peak = procstat::peak_rss();
    let rss = procstat::current_rss();
    let cpu = CpuSample::now(None).since(&cpu_before);
    let stopping = Instant::now();
    daemon.stop().await?;
    Ok(Measured {
        all_running,
        slots_busy,
        hold,
        peak,
        peak_reset,
        rss,
        cpu,
        shutdown: stopping.elapsed(),
    })
}

/// Time from `started` until the Supervisor runs one actor per collection; an error after
/// [`LIMIT`].
async fn wait_for_all_actors(
    daemon: &App,
    collections: usize,
    started: Instant,
) -> Result<Duration, BenchError> {
    loop {
        let status = daemon.supervisor.send(GetSupervisorStatus).await?;
        if status.children.len() == collections && status.children.iter().all(|c| c.running) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > LIMIT {
            return Err(BenchError::Timeout(
                LIMIT,
                "collection actors did not all start",
            ));
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// Time from `started` until `slots` AMC slots are in use; None after [`LIMIT`].
async fn wait_for_all_slots(
    daemon: &App,
    slots: usize,
    started: Instant,
) -> Result<Option<Duration>, BenchError> {
    loop {
        let status = daemon.gateway.send(GetGatewayStatus).await?;
        let in_use: usize = status.slots.values().map(|s| s.in_use).sum();
        if in_use >= slots {
            return Ok(Some(started.elapsed()));
        }
        if started.elapsed() > LIMIT {
            return Ok(None);
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// The scenario's printed line.
fn report(
    cx: &RunCtx<'_>,
    layout: Layout,
    poll_ms: u64,
    seeded_in: Duration,
    measured: &Measured,
    stats: &SimulatorStats,
) -> String {
    let collections = layout.collections();
    let slots = layout.instances * SLOTS;
    let met = measured.peak.is_some_and(|p| p <= TARGET_BYTES);
    format!(
        "scale [{backend}]: {collections} collections active; all actors running after {all:.1} s; \
         {slots_text}; peak RSS {peak}{peak_note} (target <= 200 MB: {verdict}), RSS {rss} after {hold:.0} s of steady polling; \
         cpu {cpu:.1} s over the run; shutdown {shutdown:.1} s; AMC executions created {creates}; \
         setup: {setup} (seeded in {seed_secs:.1} s), executions 1 h long, max_in_flight {SLOTS}, poll {poll_ms} ms",
        backend = cx.backend.name(),
        all = measured.all_running.as_secs_f64(),
        slots_text = match measured.slots_busy {
            Some(t) => format!("all {slots} AMC slots busy after {:.1} s", t.as_secs_f64()),
            None => format!("NOT all {slots} AMC slots busy within {} s", LIMIT.as_secs()),
        },
        peak = procstat::megabytes(measured.peak),
        peak_note = procstat::peak_note(measured.peak_reset),
        verdict = verdict(cx.quick, met),
        rss = procstat::megabytes(measured.rss),
        hold = measured.hold.as_secs_f64(),
        cpu = measured.cpu.process.unwrap_or_default().as_secs_f64(),
        shutdown = measured.shutdown.as_secs_f64(),
        creates = stats.creates_total,
        setup = layout.describe(),
        seed_secs = seeded_in.as_secs_f64(),
    )
}
