//! Views: what reading a workflow's typed relation costs against a plain typed table of the same
//! rows. 52 weeks x 20,000 rows of a 6-column result (`--quick`: 4 x 2,000) are collected by the
//! real daemon from the simulator; then the weekly sums (rows, impressions, clicks, spend per
//! week) are timed over the relation, over a table created from it (the reference) and, for the
//! record, over the stored JSON rows (the design a view over `report_data_rows` would have had).
//! Each query runs five times, alternating, and the fastest run counts.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::fixture::{Layout, World};
use super::procstat;
use super::{verdict, BenchError, Outcome, RunCtx};
use crate::simulator::{ResultContent, SimulatorConfig};
use crate::store::{with_pool, Store};

/// Most the relation may cost over the reference.
const RATIO_TARGET: f64 = 3.0;
const RUNS: usize = 5;

/// One result file of `rows` rows: six columns, integers, money and a date among them.
fn result_file(rows: usize) -> Bytes {
    let mut csv = String::from("day,campaign,impressions,clicks,spend,active\n");
    for row in 0..rows {
        let _ = writeln!(
            csv,
            "2026-01-{:02},campaign {},{},{},{}.{:02},{}",
            row % 28 + 1,
            row % 50,
            row * 7 % 100_000,
            row % 1000,
            row % 500,
            row % 100,
            row % 2 == 0
        );
    }
    Bytes::from(csv)
}

pub async fn run(cx: &RunCtx<'_>) -> Result<Outcome, BenchError> {
    let (weeks, rows) = if cx.quick { (4, 2_000) } else { (52, 20_000) };
    let layout = Layout {
        instances: 1,
        collections_per_instance: 1,
        weeks,
    };
    let config = SimulatorConfig {
        pending_ms: 0,
        running_ms: 0,
        publishing_ms: 0,
        ..SimulatorConfig::default()
    };
    let world = World::prepare(cx, "views", layout, config).await?;
    world
        .sim
        .control()
        .set_result_content(ResultContent::Files(Arc::new(vec![result_file(rows)])));
    let settings = world.settings(20);
    let peak_reset = procstat::reset_peak_rss();
    let loaded =
        super::run_to_idle(world.fx.store.clone(), &settings, Duration::from_secs(3600)).await?;
    let store = world.fx.store.clone();
    let relation = store
        .relation_names()
        .await?
        .into_iter()
        .next()
        .map(|(_, name)| name)
        .ok_or_else(|| BenchError::Setup("no relation was created".into()))?;
    let timed = time_queries(&store, &relation).await?;
    let peak = procstat::peak_rss();
    world.tear_down().await;

    let ratio = timed.relation_ms / timed.reference_ms;
    let met = ratio <= RATIO_TARGET && timed.rows == weeks * rows as i64;
    let line =
        format!(
        "views [{}]: {} rows; weekly sums in {:.1} ms over {relation} vs {:.1} ms over a typed \
         table of the same rows = {ratio:.2} x (target <= {RATIO_TARGET:.0}: {}); over the stored \
         JSON rows {:.1} ms = {:.1} x; peak RSS {} MB{}; loaded by the daemon in {:.1} s; setup: \
         {weeks} weeks x {rows} rows, 6 columns, fastest of {RUNS} alternating runs",
        cx.backend.name(),
        timed.rows,
        timed.relation_ms,
        timed.reference_ms,
        verdict(cx.quick, met),
        timed.json_ms,
        timed.json_ms / timed.reference_ms,
        peak.map_or("?".into(), |bytes| format!("{:.0}", bytes as f64 / 1_048_576.0)),
        if peak_reset { "" } else { " (not reset)" },
        loaded.elapsed.as_secs_f64(),
    );
    Ok(Outcome {
        line,
        complete: timed.rows == weeks * rows as i64,
    })
}

struct Timed {
    rows: i64,
    relation_ms: f64,
    reference_ms: f64,
    json_ms: f64,
}

/// The weekly sums over `from`, a relation with the typed columns.
fn weekly_sums(from: &str) -> String {
    format!(
        "SELECT week_start, COUNT(*), SUM(impressions), SUM(clicks), SUM(spend) FROM {from} \
         GROUP BY week_start ORDER BY week_start"
    )
}

async fn time_queries(store: &Store, relation: &str) -> Result<Timed, BenchError> {
    let reference = "bench_views_reference";
    let create = format!("CREATE TABLE {reference} AS SELECT * FROM {relation}");
    let json = match store {
        Store::Postgres(_) => {
            "SELECT w.week_start_date AS week_start, COUNT(*), \
             SUM(CAST(r.data ->> 'impressions' AS bigint)), SUM(CAST(r.data ->> 'clicks' AS bigint)), \
             SUM(CAST(r.data ->> 'spend' AS numeric)) FROM report_data_rows r \
             JOIN report_data_weeks w ON w.id = r.week_id AND w.execution_id = r.execution_id \
             GROUP BY w.week_start_date ORDER BY 1"
        }
        Store::Sqlite(_) => {
            "SELECT w.week_start_date AS week_start, COUNT(*), \
             SUM(CAST(r.data ->> '$.impressions' AS INTEGER)), \
             SUM(CAST(r.data ->> '$.clicks' AS INTEGER)), SUM(CAST(r.data ->> '$.spend' AS REAL)) \
             FROM report_data_rows r \
             JOIN report_data_weeks w ON w.id = r.week_id AND w.execution_id = r.execution_id \
             GROUP BY w.week_start_date ORDER BY 1"
        }
    };
    let count = format!("SELECT COUNT(*) FROM {relation}");
    let (rows, over_relation, over_reference) = with_pool!(store, |pool| {
        sqlx::query(&create).execute(pool).await?;
        if matches!(store, Store::Postgres(_)) {
            sqlx::query(&format!("ANALYZE {reference}"))
                .execute(pool)
                .await?;
            sqlx::query(&format!("ANALYZE {relation}"))
                .execute(pool)
                .await?;
        }
        let rows: i64 = sqlx::query_scalar(&count).fetch_one(pool).await?;
        Ok::<_, sqlx::Error>((rows, weekly_sums(relation), weekly_sums(reference)))
    })?;
    let mut best = [f64::MAX; 3];
    for _ in 0..RUNS {
        for (slot, sql) in [over_relation.as_str(), over_reference.as_str(), json]
            .into_iter()
            .enumerate()
        {
            let started = Instant::now();
            with_pool!(store, |pool| sqlx::query(sql)
                .fetch_all(pool)
                .await
                .map(|_| ()))?;
            best[slot] = best[slot].min(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(Timed {
        rows,
        relation_ms: best[0],
        reference_ms: best[1],
        json_ms: best[2],
    })
}
