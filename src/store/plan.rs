//! What creating a collection (or a fleet) would cost, read without writing anything: per
//! instance the weeks, how many are stored already for the same key (and would be reused, the
//! one rule of `reuse.rs`), how many AMC executions remain, the instance's queue, and an ETA from
//! the slot bound and the daily limit.

use std::time::Duration;

use chrono::NaiveDate;
use serde::Serialize;

use super::reuse::{self, ReuseKey};
use super::tx::Tx;
use super::{status_list, with_pool, CreateQuota, Store, StoreError};
use crate::ids::{CollectionId, WorkflowId};
use crate::status::{CollectionStatus, WeekStatus};
use crate::store::model::Instance;

/// Recent runs read for the typical run time (as `poll_plan` reads them).
const RUN_SAMPLES: i64 = 50;

/// What a plan is asked about.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub workflow_id: WorkflowId,
    pub time_zone: String,
    /// The query parameters, as stored on a collection (canonical JSON).
    pub parameters: String,
    /// The windows, oldest first.
    pub weeks: Vec<(NaiveDate, NaiveDate)>,
    pub instances: Vec<Instance>,
    /// Executions one process keeps in flight per instance (`amc.max_in_flight_per_instance`).
    pub slots: u32,
    pub quota: CreateQuota,
    /// The run time assumed while no run of the workflow on the instance is recorded.
    pub assumed_run: Duration,
}

/// The typical run of the workflow on an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunTime {
    pub seconds: u64,
    /// `learned` (median of recorded runs) or `assumed` (none recorded).
    pub source: &'static str,
}

/// The plan of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstancePlan {
    /// AMC's instance id.
    pub instance_id: String,
    pub weeks: usize,
    /// Weeks stored already for the same key: reused, not run again.
    pub stored: usize,
    /// AMC executions the plan needs.
    pub executions: usize,
    /// Weeks of other collections waiting on the instance (pending or in flight).
    pub queue: i64,
    pub slots: u32,
    pub run_time: RunTime,
    /// Creates allowed per window (0: no limit) and used in the window ending now.
    pub daily_limit: i64,
    pub daily_used: i64,
    /// Until the last execution of this plan is expected to end.
    pub eta_seconds: u64,
}

impl Store {
    /// The plan of `request`, instance by instance, in the order given. Writes nothing.
    pub async fn plan(&self, request: &PlanRequest) -> Result<Vec<InstancePlan>, StoreError> {
        let mut plans = Vec::with_capacity(request.instances.len());
        for instance in &request.instances {
            let key = ReuseKey {
                workflow_id: request.workflow_id,
                instance_id: instance.id,
                time_zone: request.time_zone.clone(),
                parameters: request.parameters.clone(),
            };
            // A read-only transaction, dropped (rolled back) at the end.
            let mut tx = Tx::begin(self).await?;
            let stored = reuse::stored_for(&mut tx, &key, CollectionId::new(), &request.weeks)
                .await?
                .iter()
                .filter(|s| s.is_some())
                .count();
            drop(tx);
            let queue = self.instance_queue(&key).await?;
            let runs = self
                .recent_run_times(instance.id, request.workflow_id, RUN_SAMPLES)
                .await?;
            let run_time = typical_run(runs, request.assumed_run);
            let used = self.quota_use(instance.id, request.quota).await?;
            let executions = request.weeks.len() - stored;
            let limits = Limits {
                slots: request.slots,
                run: Duration::from_secs(run_time.seconds),
                daily_limit: used.limit,
                daily_used: used.used,
                window: request.quota.window.to_std().unwrap_or(Duration::ZERO),
            };
            plans.push(InstancePlan {
                instance_id: instance.instance_id.clone(),
                weeks: request.weeks.len(),
                stored,
                executions,
                queue,
                slots: request.slots,
                run_time,
                daily_limit: used.limit,
                daily_used: used.used,
                eta_seconds: eta(executions as u64, queue.max(0) as u64, &limits).as_secs(),
            });
        }
        Ok(plans)
    }

    /// Weeks waiting on the key's instance: in flight, or pending in a collection that runs.
    async fn instance_queue(&self, key: &ReuseKey) -> Result<i64, StoreError> {
        let in_flight = status_list(&[
            WeekStatus::Submitting,
            WeekStatus::Running,
            WeekStatus::Downloading,
        ]);
        let runnable = status_list(&[CollectionStatus::Pending, CollectionStatus::Running]);
        let sql = format!(
            "SELECT COUNT(*) FROM report_data_weeks w \
             JOIN report_data_collections c ON c.id = w.collection_id \
             WHERE c.instance_id = $1 AND (w.status IN ({in_flight}) \
             OR (w.status = '{}' AND c.status IN ({runnable})))",
            WeekStatus::Pending
        );
        Ok(with_pool!(self, |pool| sqlx::query_scalar(&sql)
            .bind(key.instance_id)
            .fetch_one(pool)
            .await)?)
    }
}

/// The median of recorded runs, or `assumed` when none is recorded.
fn typical_run(mut runs: Vec<Duration>, assumed: Duration) -> RunTime {
    runs.sort_unstable();
    match runs.get(runs.len() / 2) {
        Some(median) => RunTime {
            seconds: median.as_secs().max(1),
            source: "learned",
        },
        None => RunTime {
            seconds: assumed.as_secs(),
            source: "assumed",
        },
    }
}

/// What bounds an instance's pace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub slots: u32,
    pub run: Duration,
    /// 0: no daily limit.
    pub daily_limit: i64,
    pub daily_used: i64,
    pub window: Duration,
}

/// When the last of `executions` ends behind `queue` executions already waiting: the slot bound
/// (waves of `slots` runs of `run` each) or the daily bound (what exceeds the window's remaining
/// creates waits a whole window per `daily_limit`, then runs), whichever is later.
pub(crate) fn eta(executions: u64, queue: u64, limits: &Limits) -> Duration {
    if executions == 0 {
        return Duration::ZERO;
    }
    let total = executions + queue;
    let slots = u64::from(limits.slots.max(1));
    let waves = total.div_ceil(slots);
    let slot_bound = limits
        .run
        .saturating_mul(u32::try_from(waves).unwrap_or(u32::MAX));
    let daily_bound = match u64::try_from(limits.daily_limit) {
        Ok(limit) if limit > 0 => {
            let left = u64::try_from(limits.daily_limit - limits.daily_used).unwrap_or(0);
            if total <= left {
                Duration::ZERO
            } else {
                let windows = (total - left).div_ceil(limit);
                limits
                    .window
                    .saturating_mul(u32::try_from(windows).unwrap_or(u32::MAX))
                    .saturating_add(limits.run)
            }
        }
        _ => Duration::ZERO,
    };
    slot_bound.max(daily_bound)
}

/// `eta`'s text: `2d 3h`, `5h 20m`, `12m`, `<1m`; `-` when nothing is to run.
pub fn eta_text(seconds: u64, executions: usize) -> String {
    if executions == 0 {
        return "-".into();
    }
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => "<1m".into(),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(slots: u32, daily_limit: i64, daily_used: i64) -> Limits {
        Limits {
            slots,
            run: Duration::from_secs(600),
            daily_limit,
            daily_used,
            window: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn without_a_daily_limit_the_slots_bound_the_pace() {
        // 52 runs in waves of 10: 6 waves of 10 minutes.
        assert_eq!(eta(52, 0, &limits(10, 0, 0)), Duration::from_secs(3_600));
        // A queue of 8 ahead makes it 60 runs: still 6 waves.
        assert_eq!(eta(52, 8, &limits(10, 0, 0)), Duration::from_secs(3_600));
        assert_eq!(eta(52, 9, &limits(10, 0, 0)), Duration::from_secs(4_200));
    }

    #[test]
    fn runs_beyond_the_daily_limit_wait_whole_windows() {
        // 30 a day, 10 used: 20 run today, 32 wait two more windows.
        let expected = Duration::from_secs(2 * 86_400 + 600);
        assert_eq!(eta(52, 0, &limits(10, 30, 10)), expected);
        assert_eq!(eta(20, 0, &limits(10, 30, 10)), Duration::from_secs(1_200));
    }

    #[test]
    fn nothing_to_run_takes_no_time_whatever_the_queue() {
        assert_eq!(eta(0, 500, &limits(10, 30, 30)), Duration::ZERO);
        assert_eq!(eta_text(0, 0), "-");
    }

    #[test]
    fn eta_text_shows_the_two_largest_units() {
        assert_eq!(eta_text(30, 1), "<1m");
        assert_eq!(eta_text(720, 1), "12m");
        assert_eq!(eta_text(19_200, 1), "5h 20m");
        assert_eq!(eta_text(2 * 86_400 + 3 * 3_600 + 59, 1), "2d 3h");
    }

    #[test]
    fn the_typical_run_is_the_median_of_recorded_runs_or_the_assumption() {
        let runs = [300, 100, 200].map(Duration::from_secs).to_vec();
        assert_eq!(typical_run(runs, Duration::from_secs(900)).seconds, 200);
        let assumed = typical_run(Vec::new(), Duration::from_secs(900));
        assert_eq!((assumed.seconds, assumed.source), (900, "assumed"));
    }
}
