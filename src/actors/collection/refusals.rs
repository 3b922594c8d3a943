//! Sending a week's create until AMC answers it with something other than throttling, and what
//! a create refusal the client cannot classify does to the week.
//!
//! The Ads API throttles with a bare 429 (no `Retry-After`; observed in public client issue
//! threads), so a 429 is throttling unless its body names the daily limit (`amc::http`) or the
//! collector's own count says the instance's limit is spent. AMC does not document the wording
//! of its daily-limit refusal: a 400 such as "You have reached the maximum number of ad hoc
//! workflow executions allowed for this instance today" (observed behaviour) is a refusal of
//! the moment, so it never spends an attempt or fails a week.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::guard::{self, REFUSALS_TO_HOLD};
use super::outcome::{stale, stored, WeekOutcome};
use super::slot::Slot;
use super::steps::{self, WeekContext};
use crate::actors::gateway::{GatewayError, SubmitExecution};
use crate::amc::{AmcError, CreateExecution, ExecutionInfo};
use crate::ids::ExecutionId;
use crate::store::model::Week;
use crate::store::{Transition, Withdrawn};

/// How sending a create ended.
pub(super) enum Sent {
    /// AMC answered with something other than throttling (or the gateway failed).
    Answered(Box<Result<ExecutionInfo, GatewayError>>),
    /// AMC throttled it and the collector's own count says the instance's daily limit is spent
    /// for this long: the week waits for the limit.
    LimitSpent(Duration),
}

/// Sends the create, and again after a pause while AMC throttles it (a throttled create was
/// not made, so it is sent again without listing).
pub(super) async fn send_create(
    cx: &WeekContext,
    execution_id: ExecutionId,
    request: &CreateExecution,
) -> Sent {
    let backoff = cx.policy.throttle_backoff();
    let mut throttled: u32 = 0;
    loop {
        // Dropped with this future (actor stopped): the gateway then abandons the create.
        let (_caller_alive, caller) = tokio::sync::oneshot::channel::<()>();
        let reply = cx
            .gateway
            .send(SubmitExecution {
                instance: cx.amc_instance.clone(),
                execution_id,
                request: request.clone(),
                caller,
            })
            .await
            .map_err(GatewayError::from)
            .and_then(|r| r);
        if !matches!(reply, Err(GatewayError::Amc(AmcError::RateLimited { .. }))) {
            return Sent::Answered(Box::new(reply));
        }
        if let Some(until) = limit_spent_until(cx).await {
            return Sent::LimitSpent((until - Utc::now()).to_std().unwrap_or_default());
        }
        let wait = backoff.delay(throttled);
        throttled = throttled.saturating_add(1);
        tracing::warn!(
            throttled,
            wait_ms = wait.as_millis() as u64,
            "AMC throttled the create; sending it again after a pause."
        );
        actix_rt::time::sleep(wait).await;
    }
}

/// Until when the collector's own count (every process sharing the database) has the instance's
/// daily limit used up, if it has; a count that cannot be read says nothing.
async fn limit_spent_until(cx: &WeekContext) -> Option<DateTime<Utc>> {
    match cx.store.quota_use(cx.instance.id, cx.quota).await {
        Ok(quota) => quota.waiting_until,
        Err(error) => {
            tracing::warn!(%error, "The instance's creates cannot be counted; reading the 429 as throttling.");
            None
        }
    }
}

/// A refusal of a create the client cannot classify: a 4xx other than 401/403 (which are
/// credentials and rights, handled by the client) and other than throttling.
pub(super) fn is_unclassified(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 403 | 429)
}

/// AMC refused the create without a reason the client can classify: the week goes back to
/// `pending` without spending an attempt. A collection AMC accepted creates of before waits with
/// backoff (quota used up by other clients of the instance looks exactly like this); one AMC has
/// never accepted is held after `REFUSALS_TO_HOLD` refusals with the same message.
pub(super) async fn refused(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    message: &str,
    slot: Slot,
) -> WeekOutcome {
    let refusal = cx.guard.note_refusal(message);
    // A count that cannot be read is taken as "accepted before": waiting never loses a week.
    let accepted = cx
        .store
        .collection_ever_accepted(cx.collection_id)
        .await
        .unwrap_or(true);
    let reason = guard::refusal_reason(&refusal);
    let hold = !accepted && refusal.count >= REFUSALS_TO_HOLD;
    let wait = if hold {
        Duration::ZERO
    } else {
        cx.policy
            .refusal_backoff(window_share(cx))
            .delay(refusal.count.saturating_sub(1))
    };
    let until = after(wait);
    tracing::warn!(
        message,
        refusals = refusal.count,
        accepted_before = accepted,
        %until,
        "AMC refused the create without a reason the client can classify; the week waits without spending an attempt."
    );
    let outcome = withdraw_until(cx, week, execution_id, reason, until, slot).await;
    if hold && matches!(outcome, WeekOutcome::RetryAt(_)) {
        let held = format!("{}{message}", crate::store::CREATE_REFUSED);
        return guard::hold(cx, &held).await.unwrap_or(outcome);
    }
    outcome
}

/// Puts the week back to `pending` until `until` (the execution row is `refused`: it never ran
/// and never counts), without spending an attempt.
pub(super) async fn withdraw_until(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    reason: String,
    until: DateTime<Utc>,
    slot: Slot,
) -> WeekOutcome {
    let (collection_id, week_id) = (cx.collection_id, week.id);
    let withdrawn = steps::persist(cx, || {
        Transition::Withdrawn(Withdrawn {
            collection_id,
            week_id,
            execution_id,
            reason: reason.clone(),
            until,
            fence: cx.fence.clone(),
        })
    });
    match stored(slot.release_after(withdrawn).await) {
        Ok(()) => WeekOutcome::RetryAt(until),
        Err(error) => stale(error),
    }
}

/// A twenty-fourth of the quota window (one hour of a day), at least a second: the longest a
/// week waits after a refusal that gave no `Retry-After`.
pub(super) fn window_share(cx: &WeekContext) -> Duration {
    let window = cx
        .quota
        .window
        .to_std()
        .unwrap_or(Duration::from_secs(86_400));
    (window / 24).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Now plus `wait` (the far future when it cannot be represented).
pub(super) fn after(wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| Utc::now().checked_add_signed(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::is_unclassified;

    #[test]
    fn only_a_4xx_other_than_credentials_rights_and_throttling_is_unclassified() {
        assert!(is_unclassified(400));
        assert!(is_unclassified(404));
        assert!(is_unclassified(422));
        for status in [401, 403, 429, 500, 503, 200] {
            assert!(!is_unclassified(status), "{status}");
        }
    }
}
