//! Figures of the simulated timeline that measure how well a client keeps AMC busy: how late
//! its polls see executions end, and how long slots sit free while it still has work to start.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::config::SimulatorConfig;
use super::execution::Status;
use super::state::State;
use super::stats::InstanceTimeline;

impl State {
    /// Records the first GET that reports execution `id` ended.
    pub(crate) fn note_seen(&mut self, id: &str, now: Instant) {
        let since_reset = self.stats_since;
        let Some(execution) = self.executions.get_mut(id) else {
            return;
        };
        let (status, entered) = execution.status_at(now);
        let running = matches!(
            status,
            Status::Pending | Status::Running | Status::Publishing
        );
        if running || execution.first_seen_ended.is_some() {
            return;
        }
        execution.first_seen_ended = Some(now);
        if execution.created_at >= since_reset {
            self.stats.seen_ended += 1;
            self.stats.seen_ended_delay_ms += millis(now.saturating_duration_since(entered));
        }
    }

    /// Per instance, how the executions created since the last stats reset used its slots.
    pub(crate) fn timelines(&self, config: &SimulatorConfig) -> BTreeMap<String, InstanceTimeline> {
        let limit = i64::try_from(config.max_running_per_instance.max(1)).unwrap_or(i64::MAX);
        let origin = self.stats_since;
        let mut per_instance: BTreeMap<&str, Vec<(Instant, i64)>> = BTreeMap::new();
        for execution in self.executions.values() {
            let Some(started) = execution.run_started else {
                continue;
            };
            if execution.created_at < origin {
                continue;
            }
            let mut end = execution.slot_release(started);
            if let Some(cancelled) = execution.cancelled_at {
                end = end.min(cancelled.max(started));
            }
            let events = per_instance.entry(&execution.instance).or_default();
            events.push((started, 1));
            events.push((end, -1));
        }
        let since = |at: Instant| millis(at.saturating_duration_since(origin));
        let mut timelines = BTreeMap::new();
        for (instance, mut events) in per_instance {
            // Releases before starts at the same instant: a slot handed on at once is not idle.
            events.sort_by_key(|&(at, delta)| (at, delta));
            let starts = events.iter().filter(|e| e.1 > 0).map(|e| e.0);
            let (Some(first_start), Some(last_start)) = (starts.clone().min(), starts.max()) else {
                continue;
            };
            let last_end = events.iter().map(|e| e.0).max().unwrap_or(last_start);
            let (mut held, mut idle, mut work, mut cursor) = (0i64, 0f64, 0f64, first_start);
            for (at, delta) in events {
                let span = at.saturating_duration_since(cursor).as_secs_f64() * 1000.0;
                work += held as f64 * span;
                if at <= last_start {
                    idle += (limit - held).max(0) as f64 * span;
                }
                held += delta;
                cursor = at;
            }
            let timeline = InstanceTimeline {
                idle_ms: idle.round() as u64,
                work_ms: work.round() as u64,
                first_start_ms: since(first_start),
                last_start_ms: since(last_start),
                last_end_ms: since(last_end),
            };
            timelines.insert(instance.to_owned(), timeline);
        }
        timelines
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
