use std::time::Duration;

use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use serde_json::Value;

use super::*;
use crate::amc::CredentialsSnapshot;
use crate::ids::CollectionId;
use crate::store::AlertEvent;

fn outbox_alert(event: &str, payload: &str) -> OutboxAlert {
    OutboxAlert {
        id: 7,
        event: event.into(),
        collection_id: Some(CollectionId::new()),
        week_id: None,
        execution_id: None,
        payload: payload.into(),
        created_at: Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap(),
        attempts: 0,
    }
}

#[test]
fn the_json_body_names_the_event_the_collection_and_the_events_own_fields() {
    let alert = outbox_alert("collection.failed", r#"{"detail":"2 of 5 weeks failed"}"#);
    let body: Value = serde_json::from_slice(&render(&alert, AlertFormat::Json)).unwrap();
    assert_eq!(body["event"], "collection.failed");
    assert_eq!(body["alert_id"], 7);
    assert_eq!(
        body["collection_id"],
        alert.collection_id.unwrap().to_string()
    );
    assert_eq!(body["detail"], "2 of 5 weeks failed");
    assert_eq!(body["occurred_at"], "2026-11-30T12:00:00+00:00");
    assert!(body.get("week_id").is_none());
}

#[test]
fn the_payload_cannot_override_the_alerts_own_fields() {
    let alert = outbox_alert("collection.completed", r#"{"event":"forged","alert_id":1}"#);
    let body: Value = serde_json::from_slice(&render(&alert, AlertFormat::Json)).unwrap();
    assert_eq!(body["event"], "collection.completed");
    assert_eq!(body["alert_id"], 7);
}

#[test]
fn slack_format_posts_one_readable_line_as_text() {
    let alert = outbox_alert(
        "week.failed",
        r#"{"reason":"AMC: FAILED\nquery error","week_start_date":"2026-01-05"}"#,
    );
    let body: Value = serde_json::from_slice(&render(&alert, AlertFormat::Slack)).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("amc-collector: week 2026-01-05 of collection "));
    assert!(text.contains("failed for good: AMC: FAILED"));
    assert!(!text.contains('\n'), "{text}");
    assert_eq!(body.as_object().unwrap().len(), 1);
}

#[test]
fn the_signature_is_hmac_sha256_of_the_body_in_hex() {
    // RFC 4231 test case 2.
    let secret = SecretString::from("Jefe");
    let signed = signature(&secret, b"what do ya want for nothing?");
    assert_eq!(
        signed,
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn the_retry_delay_grows_from_half_the_base_and_never_passes_the_cap() {
    let base = Duration::from_secs(2);
    let max = Duration::from_secs(60);
    let first = retry_delay(base, max, 1);
    assert!(
        first >= Duration::from_secs(1) && first <= base,
        "{first:?}"
    );
    for failures in [7, 31, 32, u32::MAX] {
        let delay = retry_delay(base, max, failures);
        assert!(delay >= max / 2 && delay <= max, "{failures}: {delay:?}");
    }
}

#[test]
fn a_webhook_in_clear_text_beyond_loopback_is_refused() {
    let mut settings = crate::config::AlertsSettings {
        webhook_url: Some("http://hooks.example.com/x".into()),
        ..Default::default()
    };
    assert!(matches!(
        Webhook::from_settings(&settings),
        Err(AlertError::Url)
    ));
    settings.webhook_url = Some("http://127.0.0.1:9/hook".into());
    assert!(Webhook::from_settings(&settings).unwrap().is_some());
    settings.webhook_url = None;
    assert!(Webhook::from_settings(&settings).unwrap().is_none());
}

fn failing(recoveries: u64) -> CredentialsSnapshot {
    CredentialsSnapshot {
        failing: true,
        failing_since: Some(Utc::now()),
        last_error: Some("token endpoint answered http 400 (invalid_grant)".into()),
        recoveries_total: recoveries,
        ..CredentialsSnapshot::default()
    }
}

fn healthy(recoveries: u64) -> CredentialsSnapshot {
    CredentialsSnapshot {
        recoveries_total: recoveries,
        ..CredentialsSnapshot::default()
    }
}

fn events(alerts: &[crate::store::NewAlert]) -> Vec<AlertEvent> {
    alerts.iter().map(|alert| alert.event).collect()
}

#[test]
fn credentials_are_reported_when_they_start_failing_and_when_they_recover() {
    let mut watch = Watch::default();
    assert!(watch.credentials(&healthy(0)).is_empty());
    let alerts = watch.credentials(&failing(0));
    assert_eq!(events(&alerts), [AlertEvent::CredentialsFailing]);
    assert_eq!(
        alerts[0].payload["reason"],
        "token endpoint answered http 400 (invalid_grant)"
    );
    assert!(watch.credentials(&failing(0)).is_empty());
    assert_eq!(
        events(&watch.credentials(&healthy(1))),
        [AlertEvent::CredentialsRecovered]
    );
    assert!(watch.credentials(&healthy(1)).is_empty());
    // Recovered and failing again between two looks: both are told.
    watch.credentials(&failing(1));
    assert_eq!(
        events(&watch.credentials(&failing(2))),
        [
            AlertEvent::CredentialsRecovered,
            AlertEvent::CredentialsFailing
        ]
    );
}

#[test]
fn an_outage_under_way_at_the_first_look_is_reported() {
    let mut watch = Watch::default();
    assert_eq!(
        events(&watch.credentials(&failing(3))),
        [AlertEvent::CredentialsFailing]
    );
}

#[test]
fn a_wait_for_the_daily_limit_is_reported_once_after_the_threshold() {
    let mut watch = Watch::default();
    let id = CollectionId::new();
    let start = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let until = start + chrono::TimeDelta::hours(20);
    let after = Duration::from_secs(3600);
    assert!(watch.quota(start, &[(id, until)], after).is_empty());
    let later = start + chrono::TimeDelta::minutes(59);
    assert!(watch.quota(later, &[(id, until)], after).is_empty());
    let past = start + chrono::TimeDelta::minutes(61);
    let alerts = watch.quota(past, &[(id, until)], after);
    assert_eq!(events(&alerts), [AlertEvent::QuotaWaiting]);
    assert_eq!(alerts[0].collection_id, Some(id));
    assert_eq!(alerts[0].payload["waiting_until"], until.to_rfc3339());
    assert!(watch
        .quota(past + chrono::TimeDelta::hours(1), &[(id, until)], after)
        .is_empty());
    // The wait ended; a new one is timed from its own start.
    assert!(watch.quota(past, &[], after).is_empty());
    assert!(watch.quota(past, &[(id, until)], after).is_empty());
}

fn set(name: &str, snapshot: CredentialsSnapshot) -> crate::amc::CredentialSetStatus {
    crate::amc::CredentialSetStatus {
        name: name.into(),
        state: if snapshot.failing {
            crate::amc::CredentialSetState::Failing
        } else {
            crate::amc::CredentialSetState::Ok
        },
        instances: vec![format!("amc{name}")],
        token_expires_at: None,
        credentials: snapshot,
    }
}

#[test]
fn each_credential_set_is_reported_once_per_outage_with_its_name() {
    let mut watch = Watch::default();
    assert!(watch
        .credential_sets(&[set("default", healthy(0)), set("brand-b", healthy(0))])
        .is_empty());
    let alerts = watch.credential_sets(&[set("default", healthy(0)), set("brand-b", failing(0))]);
    assert_eq!(events(&alerts), [AlertEvent::CredentialsFailing]);
    assert_eq!(alerts[0].payload["set"], "brand-b");
    // The other set failing later is its own outage; brand-b's is not told again.
    let alerts = watch.credential_sets(&[set("default", failing(0)), set("brand-b", failing(0))]);
    assert_eq!(events(&alerts), [AlertEvent::CredentialsFailing]);
    assert_eq!(alerts[0].payload["set"], "default");
    let alerts = watch.credential_sets(&[set("default", failing(0)), set("brand-b", healthy(1))]);
    assert_eq!(events(&alerts), [AlertEvent::CredentialsRecovered]);
    assert_eq!(alerts[0].payload["set"], "brand-b");
}

#[test]
fn a_named_set_failing_is_one_slack_line_naming_it() {
    let alert = serde_json::json!({"event": "credentials.failing", "set": "brand-b",
        "reason": "token endpoint answered http 400 (invalid_grant)"});
    assert_eq!(
        slack_line(&alert),
        "amc-collector: AMC credential set brand-b failing: token endpoint answered http 400 (invalid_grant)"
    );
    let default = serde_json::json!({"event": "credentials.failing", "set": "default",
        "reason": "r"});
    assert_eq!(
        slack_line(&default),
        "amc-collector: AMC credentials failing: r"
    );
}
