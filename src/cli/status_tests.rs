//! Tests of the `status` rendering.
use super::*;

fn bind() -> SocketAddr {
    "127.0.0.1:9898".parse().unwrap()
}

#[test]
fn default_url_comes_from_the_bind_address_and_wildcards_use_loopback() {
    assert_eq!(
        status_url(None, bind()).unwrap().as_str(),
        "http://127.0.0.1:9898/status"
    );
    let wildcard = "0.0.0.0:7000".parse().unwrap();
    assert_eq!(
        status_url(None, wildcard).unwrap().as_str(),
        "http://127.0.0.1:7000/status"
    );
}

#[test]
fn given_base_urls_get_the_status_path_once() {
    for given in [
        "http://127.0.0.1:1234",
        "http://127.0.0.1:1234/",
        "http://127.0.0.1:1234/status",
    ] {
        let url = status_url(Some(given), bind()).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:1234/status", "{given}");
    }
}

fn tree_with_credentials(credentials: serde_json::Value) -> TreeStatus {
    serde_json::from_value(serde_json::json!({
        "taken_at": "2026-12-01T10:00:00Z",
        "supervisor": {"shutting_down": false, "restarts_total": 0, "gave_up_total": 0, "children": []},
        "gateway": {"limit": 10, "token_expires_at": null, "credentials": credentials,
                    "slots": {"amc1": {"in_use": 0, "waiting": 3, "peak": 0}},
                    "requests_total": 4, "rate_limited_total": 0, "retries_total": 0},
        "db_writer": {"writes_in_flight": 0}
    }))
    .unwrap()
}

#[test]
fn the_tree_shows_undelivered_alerts_and_omits_them_when_unknown() {
    let mut tree = tree_with_credentials(serde_json::json!({
        "failing": false, "failing_since": null, "last_error": null, "next_attempt_at": null,
        "consecutive_failures": 0, "failures_total": 0, "recoveries_total": 0,
        "last_outage_ms": null
    }));
    assert!(!render_tree(&tree, "u").contains("alerts:"));
    tree.alerts = Some(crate::store::UndeliveredAlerts {
        count: 3,
        retrying: 2,
        oldest_at: "2026-12-01T09:00:00Z".parse().ok(),
    });
    let text = render_tree(&tree, "u");
    assert!(
        text.contains("alerts: 3 undelivered (2 retrying), oldest from 2026-12-01T09:00:00+00:00"),
        "{text}"
    );
    tree.alerts = Some(crate::store::UndeliveredAlerts::default());
    assert!(render_tree(&tree, "u").contains("alerts: none undelivered"));
}

#[test]
fn the_tree_shows_failing_credentials_with_since_and_reason() {
    let tree = tree_with_credentials(serde_json::json!({
        "failing": true, "failing_since": "2026-12-01T09:58:00Z",
        "last_error": "token endpoint answered http 400 (invalid_grant)",
        "next_attempt_at": "2026-12-01T10:00:30Z", "consecutive_failures": 5,
        "failures_total": 5, "recoveries_total": 0, "last_outage_ms": null
    }));

    let text = render_tree(&tree, "http://127.0.0.1:9898/status");

    assert!(
        text.contains("├─ credentials failing since 2026-12-01T09:58:00+00:00: token endpoint answered http 400 (invalid_grant) (5 failed refresh(es); next attempt at 2026-12-01T10:00:30+00:00); AMC calls wait"),
        "{text}"
    );
}

#[test]
fn outside_text_in_the_tree_is_escaped() {
    let tree = tree_with_credentials(serde_json::json!({
        "failing": true, "failing_since": "2026-12-01T09:58:00Z",
        "last_error": "refused\n\u{1b}[2Jforged line",
        "next_attempt_at": null, "consecutive_failures": 1,
        "failures_total": 1, "recoveries_total": 0, "last_outage_ms": null
    }));

    let text = render_tree(&tree, "http://127.0.0.1:9898/status");

    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.contains(": refused\\n\\x1b[2Jforged line (1 failed"),
        "{text}"
    );
    assert!(
        !text.lines().any(|line| line.starts_with("forged")),
        "{text}"
    );
}

#[test]
fn healthy_credentials_and_older_daemons_add_no_line() {
    let healthy = tree_with_credentials(serde_json::json!({"failing": false,
        "failing_since": null, "last_error": null, "next_attempt_at": null,
        "consecutive_failures": 0, "failures_total": 2, "recoveries_total": 1,
        "last_outage_ms": 1500}));
    assert!(!render_tree(&healthy, "u").contains("credentials"));
    let mut old = serde_json::to_value(&healthy).unwrap();
    old["gateway"]
        .as_object_mut()
        .unwrap()
        .remove("credentials");
    let old: TreeStatus = serde_json::from_value(old).unwrap();
    assert!(!old.gateway.credentials.failing);
}

#[test]
fn urls_without_http_scheme_or_host_are_usage_errors() {
    for given in [
        "not a url",
        "ftp://127.0.0.1/",
        "127.0.0.1:9898",
        "file:///tmp/x",
    ] {
        let error = status_url(Some(given), bind()).unwrap_err();
        assert!(matches!(error, CliError::Usage(_)), "{given}: {error}");
    }
}

#[test]
fn a_failing_credential_set_is_one_line_naming_the_instances_it_holds() {
    let snapshot = |failing: bool, since: Option<&str>, error: Option<&str>| {
        serde_json::json!({
            "failing": failing, "unavailable": failing, "failing_since": since,
            "last_error": error, "next_attempt_at": null, "consecutive_failures": 1,
            "failures_total": 1, "recoveries_total": 0, "last_outage_ms": null
        })
    };
    let mut tree = tree_with_credentials(snapshot(false, None, None));
    tree.gateway.credential_sets = serde_json::from_value(serde_json::json!([
        {"name": "default", "state": "ok", "instances": ["amca"], "token_expires_at": null,
         "credentials": snapshot(false, None, None)},
        {"name": "brand-b", "state": "unavailable", "instances": ["amcb1", "amcb2"],
         "token_expires_at": null,
         "credentials": snapshot(true, Some("2026-12-08T09:00:00Z"),
            Some("environment variable RT_B is unset"))}
    ]))
    .unwrap();
    let text = render_tree(&tree, "u");
    assert!(
        text.contains(
            "credential set brand-b unavailable since 2026-12-08T09:00:00+00:00: environment variable RT_B is unset; instances amcb1,amcb2 wait"
        ),
        "{text}"
    );
    assert!(!text.contains("credential set default"), "{text}");
}
