//! Throughput: zero-length executions, so the figures measure the collector itself (actors,
//! HTTP client, database writes) and not AMC. 200 collections x 52 weeks over 50 instances keep
//! the 10-slot limit out of the way (4 collections share an instance's 10 slots).

use std::time::Duration;

use super::fixture::{self, Layout, TxCount, World};
use super::procstat::{self, CpuSample};
use super::{incomplete_note, verdict, Backend, BenchError, IdleRun, Outcome, RunCtx};
use crate::simulator::SimulatorConfig;

const POLL_MS: u64 = 5;

pub async fn run(cx: &RunCtx<'_>) -> Result<Outcome, BenchError> {
    let layout = layout(cx.quick);
    let world = World::prepare(
        cx,
        "throughput",
        layout,
        SimulatorConfig {
            pending_ms: 0,
            running_ms: 0,
            publishing_ms: 0,
            ..SimulatorConfig::default()
        },
    )
    .await?;
    let measured = measure(cx, &world).await?;
    let tx_before = world.tx_before;
    world.tear_down().await;
    let complete = measured.completed as u64 == layout.total_weeks();
    let line = report(cx, layout, &measured, tx_before);
    Ok(Outcome { line, complete })
}

fn layout(quick: bool) -> Layout {
    if quick {
        Layout {
            instances: 5,
            collections_per_instance: 4,
            weeks: 10,
        }
    } else {
        Layout {
            instances: 50,
            collections_per_instance: 4,
            weeks: 52,
        }
    }
}

/// What a throughput run measured.
struct Measured {
    run: IdleRun,
    completed: i64,
    cpu: CpuSample,
    peak: Option<u64>,
    peak_reset: bool,
    tx_after: TxCount,
}

/// Runs the daemon until every week is done, with CPU, memory and transactions around it.
async fn measure(cx: &RunCtx<'_>, world: &World<'_>) -> Result<Measured, BenchError> {
    let settings = world.settings(POLL_MS);
    let peak_reset = procstat::reset_peak_rss();
    let cpu_before = CpuSample::now(cx.server_pid());

    let run =
        super::run_to_idle(world.fx.store.clone(), &settings, Duration::from_secs(1800)).await?;

    let completed = world.weeks_completed().await?;
    // Threads of the SQLite pool end when it closes and take their CPU counts with them, while
    // Postgres backends are only counted once they have exited: sample each side accordingly.
    let mut cpu_after = CpuSample::now(None);
    let tx_after = world.fx.close().await?;
    cpu_after.server = cx.server_pid().and_then(procstat::tree_cpu);
    Ok(Measured {
        run,
        completed,
        cpu: cpu_after.since(&cpu_before),
        peak: procstat::peak_rss(),
        peak_reset,
        tx_after,
    })
}

/// The scenario's printed line.
fn report(cx: &RunCtx<'_>, layout: Layout, measured: &Measured, tx_before: TxCount) -> String {
    let (elapsed, amc, writes) = (
        measured.run.elapsed,
        &measured.run.amc,
        &measured.run.writes,
    );
    let weeks = layout.total_weeks();
    let per_week = |n: u64| n as f64 / weeks as f64;
    let rate = weeks as f64 / elapsed.as_secs_f64();
    let target = match cx.backend {
        Backend::Postgres => 500.0,
        Backend::Sqlite => 300.0,
    };
    // The DbWriter's own count of its group commits is the writes' figure on both backends
    // (its pool is its own, so the fixture's SQLite commit hook does not see them).
    let group_commits = format!(
        "{:.3} writing (group commits of {:.1} transitions on average)",
        per_week(writes.batches),
        writes.transitions as f64 / writes.batches.max(1) as f64,
    );
    let transactions = match measured.tx_after.commits.zip(tx_before.commits) {
        Some((after, before)) => format!(
            "db transactions/week {:.2} (pg xact_commit, reads included), {group_commits}",
            per_week(after.saturating_sub(before)),
        ),
        None => format!("db transactions/week {group_commits}"),
    };
    format!(
        "throughput [{backend}]: {weeks} weeks in {secs:.1} s = {rate:.0} weeks/s (target >= {target:.0}: {verdict}){incomplete}; \
         AMC requests/week {req:.2} (create {create:.2}, get {get:.2}, list {list:.2}, downloadUrls {urls:.2}, download {download:.2}, token {token}); \
         {transactions}; {cpu}; peak RSS {peak}{peak_note}; \
         setup: {setup}, max_in_flight 10, poll {POLL_MS} ms, zero-length executions, {conns} db connections",
        backend = cx.backend.name(),
        secs = elapsed.as_secs_f64(),
        verdict = verdict(cx.quick, rate >= target),
        incomplete = incomplete_note(measured.completed, weeks),
        req = per_week(amc.requests_total),
        create = per_week(amc.create.requests),
        get = per_week(amc.get.requests),
        list = per_week(amc.list.requests),
        urls = per_week(amc.download_urls.requests),
        download = per_week(amc.download.requests),
        token = amc.token.requests,
        cpu = measured.cpu.per_thousand(weeks),
        peak = procstat::megabytes(measured.peak),
        peak_note = procstat::peak_note(measured.peak_reset),
        setup = layout.describe(),
        conns = fixture::MAX_CONNECTIONS,
    )
}
