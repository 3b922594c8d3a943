//! AMC's daily limit on executions per instance (amc-api.md addendum: 30 ad-hoc executions a day),
//! counted from the database over a rolling window so it holds across processes and restarts, and
//! the withdrawal of an intent whose create AMC refused for a limit.
//!
//! A create counts from the moment AMC answered it (`submitted_at`, a little after AMC made it, so
//! it leaves our count after it leaves AMC's), and an intent whose create is still to be sent or
//! answered counts all along. Rows AMC refused (`status = 'refused'`) never ran and never count.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::batch::Transition;
use super::fence::fence_sql;
use super::{with_pool, Store, StoreError};
use crate::ids::InstanceId;

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

/// The condition on a `workflow_executions` row `q` that counts it against the daily limit
/// within the window starting at `$3`.
pub(super) const COUNTED_CREATE: &str = "(q.submitted_at > $3 \
    OR (q.submitted_at IS NULL AND q.status = 'submitting'))";

/// How much of an instance's window is used, and when its oldest create leaves the window.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuotaUse {
    pub used: i64,
    pub limit: i64,
    /// When the next create is allowed, if the limit is reached now.
    pub waiting_until: Option<DateTime<Utc>>,
}

/// The earliest window start over a batch's intents, bound as `$3` of the intents statement.
pub(super) fn quota_since(
    batch: &[Transition],
    intents: &[usize],
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    intents
        .iter()
        .filter_map(|&i| match &batch[i] {
            Transition::Intent(intent) => Some(intent.quota.since(now)),
            _ => None,
        })
        .min()
        .unwrap_or(now)
}

/// `submitting` → `pending`: the create was refused for a limit, so the attempt never happened.
/// The week keeps its attempts and waits until `$3`.
const WITHDRAW_WEEK: &str =
    "UPDATE report_data_weeks SET status = 'pending', execution_id = NULL, \
    attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, error_message = $2, \
    next_attempt_at = $3, updated_at = $4 WHERE id = $1 AND status = 'submitting' AND ";
pub(super) const REFUSE_EXECUTION: &str = "UPDATE workflow_executions SET status = 'refused', \
    status_reason = $2, completed_at = $3, updated_at = $3 WHERE id = $1";

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
        let sql = format!(
            "SELECT COALESCE(q.submitted_at, $2) AS at FROM workflow_executions q \
             WHERE q.instance_id = $1 AND {COUNTED_CREATE} ORDER BY at DESC"
        );
        let created: Vec<DateTime<Utc>> = with_pool!(self, |pool| sqlx::query_scalar(&sql)
            .bind(instance_id)
            .bind(now)
            .bind(since)
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

/// The fenced withdrawal statement (`$5`/`$6` the lease).
pub(super) fn withdraw_week_sql() -> String {
    format!(
        "{WITHDRAW_WEEK}{}",
        fence_sql("report_data_weeks.collection_id", 5, 6)
    )
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
    let refused = weeks
        .iter()
        .filter(|w| w.status == WeekStatus::Pending)
        .filter_map(|w| w.next_attempt_at)
        .filter(|at| *at > now)
        .min();
    let local = quota.waiting_until.filter(|_| to_submit);
    match (local, refused) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
