//! Unit tests of the token reply's parsing and of the expiry arithmetic.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use super::*;

fn clamp_of(value: Value) -> i64 {
    expires_in(Some(&value))
}

#[test]
fn expires_in_is_clamped_whatever_lwa_sends() {
    assert_eq!(clamp_of(json!(3600)), 3600);
    assert_eq!(clamp_of(json!("1800")), 1800);
    assert_eq!(clamp_of(json!(" 120 ")), 120);
    // Huge: as i64, beyond i64 (u64), beyond u64 (float), and as strings.
    assert_eq!(clamp_of(json!(i64::MAX)), MAX_EXPIRES_IN_SECS);
    assert_eq!(clamp_of(json!(u64::MAX)), MAX_EXPIRES_IN_SECS);
    assert_eq!(clamp_of(json!(1e300)), MAX_EXPIRES_IN_SECS);
    assert_eq!(
        clamp_of(json!("99999999999999999999999")),
        MAX_EXPIRES_IN_SECS
    );
    // Zero and negative.
    assert_eq!(clamp_of(json!(0)), MIN_EXPIRES_IN_SECS);
    assert_eq!(clamp_of(json!(-5)), MIN_EXPIRES_IN_SECS);
    assert_eq!(clamp_of(json!(i64::MIN)), MIN_EXPIRES_IN_SECS);
    assert_eq!(clamp_of(json!("-3600")), MIN_EXPIRES_IN_SECS);
    assert_eq!(clamp_of(json!(1)), MIN_EXPIRES_IN_SECS);
    // Unreadable or absent: LwA's documented default.
    assert_eq!(clamp_of(json!("soon")), DEFAULT_EXPIRES_IN_SECS);
    assert_eq!(clamp_of(json!(null)), DEFAULT_EXPIRES_IN_SECS);
    assert_eq!(clamp_of(json!({"s": 1})), DEFAULT_EXPIRES_IN_SECS);
    assert_eq!(expires_in(None), DEFAULT_EXPIRES_IN_SECS);
}

#[test]
fn token_times_never_panic_and_refresh_before_expiry() {
    let now = Utc::now();
    for secs in [i64::MIN, -1, 0, 1, 60, 3600, 86_400, i64::MAX] {
        let (refresh_at, expires_at) = token_times(now, secs);
        assert!(refresh_at < expires_at, "{secs}");
        assert!(refresh_at > now, "{secs}");
        assert!(
            expires_at - now <= TimeDelta::seconds(MAX_EXPIRES_IN_SECS),
            "{secs}"
        );
    }
    // A 60 s token is refreshed after half its life, not at once.
    let (refresh_at, _) = token_times(now, 60);
    assert_eq!(refresh_at - now, TimeDelta::seconds(30));
    // At the very edge of chrono's range nothing panics either.
    let edge = DateTime::<Utc>::MAX_UTC;
    let (refresh_at, expires_at) = token_times(edge, i64::MAX);
    assert!(refresh_at <= expires_at);
}

#[test]
fn token_reply_with_huge_expires_in_parses_into_a_sensitive_header() {
    let body = json!({"access_token": "Atza|abc", "expires_in": i64::MAX}).to_string();
    let (header, secs) = parse_token(body.as_bytes()).unwrap();
    assert!(header.is_sensitive());
    assert_eq!(secs, MAX_EXPIRES_IN_SECS);
    assert!(!format!("{header:?}").contains("Atza"));
}

#[test]
fn token_reply_without_a_usable_access_token_is_a_decode_error() {
    for body in [
        "<html>".to_string(),
        json!({"expires_in": 3600}).to_string(),
        json!({"access_token": ""}).to_string(),
        json!({"access_token": "bad\nvalue"}).to_string(),
    ] {
        let error = parse_token(body.as_bytes()).unwrap_err();
        assert!(matches!(error, AmcError::Decode(_)), "{body}: {error:?}");
    }
}

#[test]
fn a_rejection_is_described_by_status_and_lwa_code_only() {
    let body = json!({"error": "invalid_grant", "error_description": "Atzr|secret"}).to_string();
    let text = describe_rejection(400, body.as_bytes());
    assert_eq!(text, "token endpoint answered http 400 (invalid_grant)");
    let odd = json!({"error": "Atzr|secret with spaces"}).to_string();
    assert_eq!(
        describe_rejection(401, odd.as_bytes()),
        "token endpoint answered http 401"
    );
}
