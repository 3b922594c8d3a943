//! What the alerter observes rather than reads from a transition: each credential set's outage
//! state (`credentials.failing` / `credentials.recovered`, naming the set) and collections held
//! back by AMC's daily limit for longer than `alerts.quota_waiting_after_seconds`
//! (`quota.waiting`).
//!
//! Pure bookkeeping over successive observations, so it is tested without actors. The state is
//! the process's own: after a restart an outage still under way is reported again (alerts are
//! at least once), and a wait is timed again from the first observation.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::amc::{CredentialSetStatus, CredentialsSnapshot, DEFAULT_CREDENTIAL_SET};
use crate::ids::CollectionId;
use crate::store::{AlertEvent, NewAlert};

/// The last observations.
#[derive(Debug, Default)]
pub struct Watch {
    /// Per credential set: whether it was failing at the last look, and the recoveries counted
    /// then.
    credentials: HashMap<String, (bool, u64)>,
    /// Collections waiting for the daily limit: since when (first seen), and whether reported.
    waiting: HashMap<CollectionId, (DateTime<Utc>, bool)>,
}

fn credentials_alert(event: AlertEvent, set: &str, snapshot: &CredentialsSnapshot) -> NewAlert {
    let payload = match event {
        AlertEvent::CredentialsFailing => json!({
            "set": set,
            "failing_since": snapshot.failing_since.map(|t| t.to_rfc3339()),
            // A status line and LwA's error code only (see `CredentialsSnapshot`).
            "reason": snapshot.last_error,
            "consecutive_failures": snapshot.consecutive_failures,
            "next_attempt_at": snapshot.next_attempt_at.map(|t| t.to_rfc3339()),
        }),
        _ => json!({ "set": set, "outage_ms": snapshot.last_outage_ms }),
    };
    NewAlert {
        event,
        collection_id: None,
        dedup_key: None,
        payload,
    }
}

impl Watch {
    /// Alerts for a change of the `[amc]` set's state since the last look (`credentials_of`).
    pub fn credentials(&mut self, snapshot: &CredentialsSnapshot) -> Vec<NewAlert> {
        self.credentials_of(DEFAULT_CREDENTIAL_SET, snapshot)
    }

    /// Alerts for every credential set whose state changed since the last look.
    pub fn credential_sets(&mut self, sets: &[CredentialSetStatus]) -> Vec<NewAlert> {
        sets.iter()
            .flat_map(|set| self.credentials_of(&set.name, &set.credentials))
            .collect()
    }

    /// Alerts for a change of one set's state since the last look. A first look reports an
    /// outage under way; an outage that began and ended between two looks is not reported.
    pub fn credentials_of(&mut self, set: &str, snapshot: &CredentialsSnapshot) -> Vec<NewAlert> {
        let now = (snapshot.failing, snapshot.recoveries_total);
        let before = self.credentials.insert(set.to_string(), now);
        let mut alerts = Vec::new();
        let (was_failing, recoveries) = before.unwrap_or((false, snapshot.recoveries_total));
        let recovered_between = snapshot.recoveries_total > recoveries;
        if was_failing && (!snapshot.failing || recovered_between) {
            alerts.push(credentials_alert(
                AlertEvent::CredentialsRecovered,
                set,
                snapshot,
            ));
        }
        if snapshot.failing && (!was_failing || recovered_between) {
            alerts.push(credentials_alert(
                AlertEvent::CredentialsFailing,
                set,
                snapshot,
            ));
        }
        alerts
    }

    /// Alerts for collections held back by the daily limit for `after` or longer; `waits` are
    /// the collections waiting now, with the time the wait ends. Each wait is reported once.
    pub fn quota(
        &mut self,
        now: DateTime<Utc>,
        waits: &[(CollectionId, DateTime<Utc>)],
        after: Duration,
    ) -> Vec<NewAlert> {
        self.waiting
            .retain(|id, _| waits.iter().any(|(waiting, _)| waiting == id));
        let after = chrono::TimeDelta::from_std(after).unwrap_or(chrono::TimeDelta::MAX);
        let mut alerts = Vec::new();
        for (id, until) in waits {
            let (since, reported) = self.waiting.entry(*id).or_insert((now, false));
            if *reported || now.signed_duration_since(*since) < after {
                continue;
            }
            *reported = true;
            alerts.push(NewAlert {
                event: AlertEvent::QuotaWaiting,
                collection_id: Some(*id),
                dedup_key: Some(format!("quota.waiting:{id}:{}", since.timestamp_millis())),
                payload: json!({
                    "waiting_since": since.to_rfc3339(),
                    "waiting_until": until.to_rfc3339(),
                }),
            });
        }
        alerts
    }
}
