//! When to poll a running execution. AMC runs take 15 minutes to hours (Amazon's AMC guides:
//! "typically at least 15 minutes"), so polling each one every `amc.poll_interval_ms` for its
//! whole run costs dozens of GETs per week. Instead each execution is polled around its expected
//! end, learned from how long the same workflow's recent runs on the same instance took (this
//! process's observations, seeded from `workflow_executions`; the instance's other workflows
//! stand in until the workflow has some): one poll just before the fastest usual run ends, then
//! every `near` gap through the usual spread, then less and less often while it is overdue, but
//! never less often than `cap`, so that a stuck or failed run is still noticed. With nothing
//! known the gap grows with the run's age (a quarter of it), from the poll interval to the cap.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::ids::{InstanceId, WorkflowId};

/// Run times remembered per workflow and instance.
const SAMPLES: usize = 50;
/// Samples of a workflow needed before they are trusted over the instance's other workflows.
const TRUSTED: usize = 3;
/// The longest wait between two polls, in poll intervals (and at most 15 minutes).
const CAP_INTERVALS: u32 = 10;
const MAX_CAP: Duration = Duration::from_secs(15 * 60);

/// What recent runs of a workflow on an instance took: the 10th, 50th and 90th percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub low: Duration,
    pub median: Duration,
    pub high: Duration,
}

/// Recent run times per instance and workflow, shared by every collection of the process.
#[derive(Debug, Clone, Default)]
pub struct RunTimes {
    inner: Arc<Mutex<HashMap<(InstanceId, WorkflowId), Samples>>>,
}

#[derive(Debug, Default)]
struct Samples {
    /// Read from the database already (once per process and key).
    seeded: bool,
    runs: VecDeque<Duration>,
}

impl RunTimes {
    /// Whether the key still needs its seed from the database.
    pub fn needs_seed(&self, instance: InstanceId, workflow: WorkflowId) -> bool {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        !map.get(&(instance, workflow)).is_some_and(|s| s.seeded)
    }

    /// Adds runs read from the database (newest first) behind what this process saw.
    pub fn seed(&self, instance: InstanceId, workflow: WorkflowId, runs: Vec<Duration>) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let samples = map.entry((instance, workflow)).or_default();
        samples.seeded = true;
        for run in runs {
            if samples.runs.len() >= SAMPLES {
                break;
            }
            samples.runs.push_front(run);
        }
    }

    /// Records a run that just succeeded.
    pub fn record(&self, instance: InstanceId, workflow: WorkflowId, run: Duration) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let samples = map.entry((instance, workflow)).or_default();
        if samples.runs.len() >= SAMPLES {
            samples.runs.pop_front();
        }
        samples.runs.push_back(run);
    }

    /// The expected run of `workflow` on `instance`: its own runs once there are a few, else
    /// those of the instance's other workflows, else whatever it has; `None` with no run known.
    pub fn expected(&self, instance: InstanceId, workflow: WorkflowId) -> Option<Expected> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let own: Vec<Duration> = map
            .get(&(instance, workflow))
            .map(|s| s.runs.iter().copied().collect())
            .unwrap_or_default();
        if own.len() >= TRUSTED {
            return expected_of(own);
        }
        let instance_wide: Vec<Duration> = map
            .iter()
            .filter(|((i, _), _)| *i == instance)
            .flat_map(|(_, s)| s.runs.iter().copied())
            .collect();
        expected_of(instance_wide)
    }
}

/// Percentiles of `runs`; with few runs the band is widened to ±20 % of the median.
fn expected_of(mut runs: Vec<Duration>) -> Option<Expected> {
    runs.sort_unstable();
    let at = |q: f64| runs[((runs.len() - 1) as f64 * q).round() as usize];
    if runs.is_empty() {
        return None;
    }
    let (low, median, high) = (at(0.1), at(0.5), at(0.9));
    if runs.len() >= 10 {
        return Some(Expected { low, median, high });
    }
    Some(Expected {
        low: low.min(median.mul_f64(0.8)),
        median,
        high: high.max(median.mul_f64(1.2)),
    })
}

/// The longest wait between two polls of one execution.
pub fn poll_cap(poll: Duration) -> Duration {
    poll.saturating_mul(CAP_INTERVALS).min(MAX_CAP).max(poll)
}

/// The delay before the next poll of an execution that has run for `elapsed` (`None`: resumed,
/// its start unknown here), given the expected run and the configured poll interval.
pub fn next_poll_delay(
    poll: Duration,
    expected: Option<Expected>,
    elapsed: Option<Duration>,
) -> Duration {
    let cap = poll_cap(poll);
    let Some(elapsed) = elapsed else {
        return poll;
    };
    let Some(Expected { low, high, .. }) = expected else {
        // Nothing known: overshoot the end by at most a quarter of the run.
        return (elapsed / 4).clamp(poll, cap);
    };
    // Polls every `near` through the usual spread (at least the poll interval, and an eighth of
    // the spread so a wide spread does not cost dozens of polls), from a quarter gap before the
    // fastest usual run ends: a run is then seen ended about half a gap after it ended. (Starting
    // before `low` keeps the learned times from creeping later: a run seen at the first poll
    // would otherwise record the first poll's time as its length.)
    let (near, band) = near_and_band(poll, low, high);
    if elapsed < band.start {
        return (band.start - elapsed).min(cap);
    }
    if elapsed < band.end {
        return near;
    }
    // Overdue: half of the overrun, so a run stuck for hours costs a handful of polls.
    ((elapsed - high) / 2).clamp(near, cap)
}

/// The gap between polls near the expected end, and the span of run ages polled at that gap.
fn near_and_band(poll: Duration, low: Duration, high: Duration) -> (Duration, Range<Duration>) {
    let near = ((high.saturating_sub(low)) / 8).clamp(poll, poll_cap(poll));
    (near, low.saturating_sub(near / 4)..high + near)
}

/// The run ages at which the run is likely to end (the span polled every `near` gap): while a
/// run is in it, the gateway lists its instance's executions twice per gap of its polls here, so that
/// the end is seen soon after it comes whatever the run's own polls. `None` when nothing is
/// known of the workflow's runs there.
pub fn likely_end(poll: Duration, expected: Option<Expected>) -> Option<Range<Duration>> {
    let Expected { low, high, .. } = expected?;
    Some(near_and_band(poll, low, high).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_secs(60);
    const MIN: Duration = Duration::from_secs(60);

    fn expected(low: u32, high: u32) -> Option<Expected> {
        Some(Expected {
            low: MIN * low,
            median: MIN * ((low + high) / 2),
            high: MIN * high,
        })
    }

    /// Polls of a run of `run` under the plan: how many, and how late the end is seen.
    fn polls(expected: Option<Expected>, run: Duration) -> (u32, Duration) {
        let mut elapsed = Duration::ZERO;
        let mut count = 0;
        loop {
            elapsed += next_poll_delay(POLL, expected, Some(elapsed));
            count += 1;
            if elapsed >= run {
                return (count, elapsed - run);
            }
        }
    }

    #[test]
    fn a_run_like_the_recent_ones_costs_a_few_polls_and_is_seen_ended_within_a_gap() {
        // Recent runs took 20 to 36 minutes; a 30-minute run.
        let (count, late) = polls(expected(20, 36), MIN * 30);
        assert!(count <= 8, "{count} polls");
        assert!(late <= MIN * 2, "{late:?}");
    }

    #[test]
    fn with_nothing_known_polls_grow_with_the_run_and_stay_under_the_cap() {
        let (count, late) = polls(None, MIN * 30);
        assert!(count <= 16, "{count} polls");
        assert!(late <= MIN * 30 / 4 + POLL, "{late:?}");
        assert_eq!(next_poll_delay(POLL, None, Some(Duration::ZERO)), POLL);
        assert_eq!(next_poll_delay(POLL, None, Some(MIN * 600)), poll_cap(POLL));
    }

    #[test]
    fn a_stuck_run_is_still_polled_at_least_every_cap() {
        let cap = poll_cap(POLL);
        assert_eq!(cap, MIN * 10);
        for hours in [1, 5, 24] {
            let delay = next_poll_delay(POLL, expected(20, 36), Some(MIN * 60 * hours));
            assert!(delay <= cap && delay >= POLL, "{delay:?}");
        }
        // Before the usual end the wait is capped too.
        assert_eq!(
            next_poll_delay(POLL, expected(300, 400), Some(Duration::ZERO)),
            cap
        );
    }

    #[test]
    fn a_resumed_run_of_unknown_age_polls_at_the_interval() {
        assert_eq!(next_poll_delay(POLL, expected(20, 36), None), POLL);
    }

    #[test]
    fn a_workflow_without_runs_of_its_own_borrows_the_instances_and_then_trusts_its_own() {
        let times = RunTimes::default();
        let instance = InstanceId::new();
        let (a, b) = (WorkflowId::new(), WorkflowId::new());
        assert_eq!(times.expected(instance, a), None);
        times.record(instance, b, MIN * 10);
        assert_eq!(times.expected(instance, a).unwrap().median, MIN * 10);
        for _ in 0..3 {
            times.record(instance, a, MIN * 40);
        }
        let own = times.expected(instance, a).unwrap();
        assert_eq!(own.median, MIN * 40);
        assert_eq!(own.low, MIN * 32, "few runs: a band of 20 %");
        assert!(times.needs_seed(instance, a));
        times.seed(instance, a, vec![MIN; 100]);
        assert!(!times.needs_seed(instance, a));
    }
}
