//! Scale: 10,000 collections × 2 weeks active at once, with executions long enough that none
//! finishes during the run. Measures how long the Supervisor takes to have every collection
//! actor running, how long until every AMC slot is busy, and the process's peak memory.

use std::time::{Duration, Instant};

use super::fixture::{self, Fixture, Layout};
use super::procstat::{self, CpuSample};
use super::{verdict, BenchError, Outcome, RunCtx};
use crate::actors::gateway::GetGatewayStatus;
use crate::actors::supervisor::GetSupervisorStatus;
use crate::simulator::SimulatorConfig;

const SLOTS: usize = 10;
/// Executions outlive the run: nothing completes, every collection stays active.
const RUNNING_MS: u64 = 3_600_000;
const TARGET_BYTES: u64 = 200_000_000;
const CHECK_EVERY: Duration = Duration::from_millis(100);

pub async fn run(cx: &RunCtx<'_>) -> Result<Outcome, BenchError> {
    let (layout, poll_ms) = if cx.quick {
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
    };
    let collections = layout.collections();
    let slots = layout.instances * SLOTS;
    let sim = super::start_simulator(SimulatorConfig {
        pending_ms: 0,
        running_ms: RUNNING_MS,
        publishing_ms: 0,
        max_running_per_instance: SLOTS as u64,
        ..SimulatorConfig::default()
    })
    .await?;
    let mut fx = Fixture::open(cx.backend, "scale", cx.server).await?;
    let seeding = Instant::now();
    fixture::seed(&fx.store, layout).await?;
    let seed_secs = seeding.elapsed().as_secs_f64();
    fx.fresh_pool().await?;
    let mut settings = fixture::settings(fx.url(), &sim, poll_ms);
    // 10,000 collection actors to stop.
    settings.scheduler.shutdown_deadline_seconds = 30;
    let peak_reset = procstat::reset_peak_rss();
    let cpu_before = CpuSample::now(None);

    let started = Instant::now();
    let daemon = super::start_daemon(fx.store.clone(), &settings, false).await?;
    let limit = Duration::from_secs(600);
    let all_running = loop {
        let status = daemon.supervisor.send(GetSupervisorStatus).await?;
        if status.children.len() == collections && status.children.iter().all(|c| c.running) {
            break started.elapsed();
        }
        if started.elapsed() > limit {
            return Err(BenchError::Timeout(
                limit,
                "collection actors did not all start",
            ));
        }
        tokio::time::sleep(CHECK_EVERY).await;
    };
    let slots_busy = loop {
        let status = daemon.gateway.send(GetGatewayStatus).await?;
        let in_use: usize = status.slots.values().map(|s| s.in_use).sum();
        if in_use >= slots {
            break Some(started.elapsed());
        }
        if started.elapsed() > limit {
            break None;
        }
        tokio::time::sleep(CHECK_EVERY).await;
    };
    // Two poll rounds of every in-flight execution, so steady-state polling is in the peak.
    let hold = Duration::from_millis(poll_ms * 2).max(Duration::from_secs(2));
    tokio::time::sleep(hold).await;
    let peak = procstat::peak_rss();
    let rss = procstat::current_rss();
    let cpu = CpuSample::now(None).since(&cpu_before);
    let stopping = Instant::now();
    daemon.stop().await?;
    let shutdown = stopping.elapsed();
    let stats = sim.stats();
    sim.stop().await;
    fx.remove().await;

    let met = peak.is_some_and(|p| p <= TARGET_BYTES);
    let line = format!(
        "scale [{backend}]: {collections} collections active; all actors running after {all:.1} s; \
         {slots_text}; peak RSS {peak}{peak_note} (target <= 200 MB: {verdict}), RSS {rss} after {hold:.0} s of steady polling; \
         cpu {cpu:.1} s over the run; shutdown {shutdown:.1} s; AMC executions created {creates}; \
         setup: {setup} (seeded in {seed_secs:.1} s), executions 1 h long, max_in_flight {SLOTS}, poll {poll_ms} ms",
        backend = cx.backend.name(),
        all = all_running.as_secs_f64(),
        slots_text = match slots_busy {
            Some(t) => format!("all {slots} AMC slots busy after {:.1} s", t.as_secs_f64()),
            None => format!("NOT all {slots} AMC slots busy within {} s", limit.as_secs()),
        },
        peak = procstat::megabytes(peak),
        peak_note = if peak_reset { "" } else { " (since process start)" },
        verdict = verdict(cx.quick, met),
        rss = procstat::megabytes(rss),
        hold = hold.as_secs_f64(),
        cpu = cpu.process.unwrap_or_default().as_secs_f64(),
        shutdown = shutdown.as_secs_f64(),
        creates = stats.creates_total,
        setup = layout.describe(),
    );
    Ok(Outcome {
        line,
        complete: slots_busy.is_some(),
    })
}
