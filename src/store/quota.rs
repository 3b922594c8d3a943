//! AMC's daily limit on executions per instance (Amazon's API description of create: up to 30
//! ad-hoc runs a day per instance), counted from the database over a rolling window so it holds across processes and restarts (the
//! withdrawal of an intent whose create AMC refused for a limit is `transitions::withdrawn`'s).
//!
//! A create counts from the moment AMC answered it (`submitted_at`, a little after AMC made it, so
//! it leaves our count after it leaves AMC's), and an intent whose create is still to be sent or
//! answered counts all along. Rows AMC refused (`status = 'refused'`) never ran and never count.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::{with_pool, Store, StoreError};
use crate::ids::InstanceId;
use crate::status::ExecutionStatus;

/// The limit an intent is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateQuota {
    /// Creates allowed per instance within `window`; 0 = no limit.
    pub max_creates: i64,
    pub window: TimeDelta,
}

impl CreateQuota {
    pub const UNLIMITED: CreateQuota = CreateQuota {
        max_creates: 0,
        window: TimeDelta::zero(),
    };

    /// Start of the window ending at `now` (the far past when the arithmetic cannot be done).
    /// The window is widened by a margin: an intent is stored a little before AMC makes the
    /// execution (and AMC's clock is not ours), so a create leaves our count a little after it
    /// leaves AMC's.
    pub fn since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_signed(self.counted_for())
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// How long a create is counted: the window plus a twentieth of it, at most ten minutes more.
    fn counted_for(&self) -> TimeDelta {
        let margin = (self.window / 20).min(TimeDelta::minutes(10));
        self.window.checked_add(&margin).unwrap_or(self.window)
    }
}

/// How much of an instance's window is used, and when its oldest create leaves the window.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuotaUse {
    pub used: i64,
    pub limit: i64,
    /// When the next create is allowed, if the limit is reached now.
    pub waiting_until: Option<DateTime<Utc>>,
}

impl Store {
    /// Creates counted on `instance_id` within the window ending now.
    pub async fn quota_use(
        &self,
        instance_id: InstanceId,
        quota: CreateQuota,
    ) -> Result<QuotaUse, StoreError> {
        if quota.max_creates <= 0 {
            return Ok(QuotaUse {
                used: 0,
                limit: 0,
                waiting_until: None,
            });
        }
        let since = quota.since(Utc::now());

        // The creates inside the window, newest first: once `limit` are there, the next create
        // may go when the `limit`-th newest leaves the window.
        let now = Utc::now();
        // The same count as the intents' statement (`transitions::intent`). `$4`: `submitting`.
        let sql = "SELECT COALESCE(q.submitted_at, $2) AS at FROM workflow_executions q \
             WHERE q.instance_id = $1 \
             AND (q.submitted_at > $3 OR (q.submitted_at IS NULL AND q.status = $4)) \
             ORDER BY at DESC";
        let created: Vec<DateTime<Utc>> = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(instance_id)
            .bind(now)
            .bind(since)
            .bind(ExecutionStatus::Submitting.as_str())
            .fetch_all(pool)
            .await)?;
        let used = i64::try_from(created.len()).unwrap_or(i64::MAX);
        let waiting_until = usize::try_from(quota.max_creates - 1)
            .ok()
            .and_then(|i| created.get(i))
            .filter(|_| used >= quota.max_creates)
            .and_then(|oldest| oldest.checked_add_signed(quota.counted_for()));
        Ok(QuotaUse {
            used,
            limit: quota.max_creates,
            waiting_until,
        })
    }
}

/// Until when a collection's work waits for the daily limit, if it does: its instance used the
/// limit (`quota`) while weeks are still to be submitted, or AMC refused a week's create for a
/// limit (a `pending` week with a retry time). `None` when nothing waits for it.
pub fn daily_limit_wait(
    collection: &crate::store::model::Collection,
    weeks: &[crate::store::model::Week],
    quota: &QuotaUse,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    use crate::status::{CollectionStatus, WeekStatus};
    if !matches!(
        collection.status,
        CollectionStatus::Pending | CollectionStatus::Running
    ) {
        return None;
    }
    let to_submit = weeks.iter().any(|w| {
        w.status == WeekStatus::Pending
            || (w.status == WeekStatus::Failed && w.next_attempt_at.is_some())
    });
    // A week whose create AMC refused without naming a limit waits for that, not the limit.
    let refused = weeks
        .iter()
        .filter(|w| w.status == WeekStatus::Pending)
        .filter(|w| {
            !(w.error_message.as_deref())
                .is_some_and(|message| message.starts_with(super::CREATE_REFUSED))
        })
        .filter_map(|w| w.next_attempt_at)
        .filter(|at| *at > now)
        .min();
    let local = quota.waiting_until.filter(|_| to_submit);
    match (local, refused) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
