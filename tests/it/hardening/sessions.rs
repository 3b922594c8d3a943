//! Console sign-ins: random, revocable sessions in a port-named cookie, `Secure` behind https,
//! wrong tokens backed off per address, the bearer scheme in any case.

use std::time::Duration;

use reqwest::Method;

use super::{launch, send, world, TOKEN};
use crate::support::procs::{daemon_env, log_path, spawn_with_args, warnings, Simulator};
use crate::support::{wait_until, Backend};

const CONSOLE: (&str, &str) = ("x-amc-console", "1");

/// Logs in with `token`; returns the reply.
async fn login(base: &str, token: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut headers = vec![CONSOLE];
    headers.extend_from_slice(extra);
    let body = serde_json::json!({ "token": token });
    send(
        Method::POST,
        &format!("{base}/console/login"),
        &headers,
        Some(body),
    )
    .await
}

/// The `name=value` pair a login's `Set-Cookie` sets.
fn cookie_of(reply: &reqwest::Response) -> String {
    let set_cookie = reply.headers()["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_string()
}

async fn status_with_cookie(base: &str, cookie: &str) -> u16 {
    let url = format!("{base}/api/collections");
    send(Method::GET, &url, &[("cookie", cookie)], None)
        .await
        .status()
        .as_u16()
}

async fn a_logged_out_cookie_no_longer_opens_the_console(backend: Backend) {
    // Arrange: the daemon with a token; two sign-ins (two browsers).
    let world = world(backend).await;
    let (daemon, base, port) = launch(&world, Some(TOKEN), |_| {}).await;
    let first = login(&base, TOKEN, &[]).await;
    assert_eq!(first.status(), 204);
    let set_cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let first = cookie_of(&first);
    let second = cookie_of(&login(&base, TOKEN, &[]).await);
    assert_eq!(status_with_cookie(&base, &first).await, 200);

    // Act: log the first one out.
    let logout = format!("{base}/console/logout");
    let reply = send(Method::POST, &logout, &[CONSOLE, ("cookie", &first)], None).await;
    assert_eq!(reply.status(), 204);
    assert!(reply.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));

    // Assert: the logged-out cookie, replayed, opens nothing; the other session lives on.
    assert_eq!(status_with_cookie(&base, &first).await, 401);
    let pause = format!("{base}/api/collections/{}/resume", world.fx.collection_id);
    let replayed = send(Method::POST, &pause, &[CONSOLE, ("cookie", &first)], None).await;
    assert_eq!(replayed.status(), 401);
    assert_eq!(status_with_cookie(&base, &second).await, 200);
    assert_ne!(first, second, "every sign-in gets its own session");
    let (name, id) = second.split_once('=').unwrap();
    assert_eq!(
        name,
        format!("amc_console_{port}"),
        "the cookie names the port"
    );
    assert_eq!(id.len(), 64, "256 random bits in hex");

    // Scripts keep the bearer header, its scheme in any case.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {TOKEN}");
        let status = format!("{base}/status");
        let reply = send(Method::GET, &status, &[("authorization", &auth)], None).await;
        assert_eq!(reply.status(), 200, "{scheme}");
    }
    daemon.stop().await.unwrap();
}

async fn changing_the_token_ends_every_session(backend: Backend) {
    let world = world(backend).await;
    let (daemon, base, port) = launch(&world, Some(TOKEN), |_| {}).await;
    let cookie = cookie_of(&login(&base, TOKEN, &[]).await);
    assert_eq!(status_with_cookie(&base, &cookie).await, 200);
    daemon.stop().await.unwrap();

    // The same port, a new token: the old sign-in is gone.
    let (daemon, base, _) = launch(&world, Some("another-token-of-enough-length"), |s| {
        s.http.bind = format!("127.0.0.1:{port}").parse().unwrap();
    })
    .await;
    assert_eq!(status_with_cookie(&base, &cookie).await, 401);
    daemon.stop().await.unwrap();
}

async fn the_cookie_is_secure_when_the_console_is_reached_over_https(backend: Backend) {
    let world = world(backend).await;
    let (daemon, base, _) = launch(&world, Some(TOKEN), |settings| {
        settings.http.public_url = Some("https://collector.example.com/".into());
    })
    .await;
    let proxied = [
        ("host", "collector.example.com"),
        ("origin", "https://collector.example.com"),
    ];
    let reply = login(&base, TOKEN, &proxied).await;
    assert_eq!(reply.status(), 204);
    let set_cookie = reply.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.ends_with("; Secure"), "{set_cookie}");
    daemon.stop().await.unwrap();
}

async fn wrong_tokens_back_off_per_address_and_even_the_right_one_waits_its_turn(backend: Backend) {
    let world = world(backend).await;
    let (daemon, base, _) = launch(&world, Some(TOKEN), |_| {}).await;

    // Five wrong tokens are free; the sixth closes the door for a second.
    for attempt in 1..=6 {
        let reply = login(&base, "a-wrong-guess-of-the-token", &[]).await;
        assert_eq!(reply.status(), 401, "attempt {attempt}");
    }
    let held = login(&base, "another-wrong-guess-here", &[]).await;
    assert_eq!(held.status(), 429);
    let retry_after: u64 = held.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // While it is closed, the right token is not even checked.
    let right_too_soon = login(&base, TOKEN, &[]).await;
    assert_eq!(right_too_soon.status(), 429);
    assert!(right_too_soon.headers().get("set-cookie").is_none());

    // Once the pause is over, the right token signs in.
    wait_until(
        "the right token is accepted again",
        Duration::from_secs(10),
        || {
            let base = base.clone();
            async move { login(&base, TOKEN, &[]).await.status() == 204 }
        },
    )
    .await;
    daemon.stop().await.unwrap();
}

#[actix_rt::test]
async fn wrong_bearer_tokens_back_off_like_wrong_logins() {
    let world = world(Backend::Sqlite).await;
    let (daemon, base, _) = launch(&world, Some(TOKEN), |_| {}).await;
    let status = format!("{base}/status");
    let guess = [("authorization", "Bearer a-wrong-guess-of-the-token")];
    for attempt in 1..=6 {
        let reply = send(Method::GET, &status, &guess, None).await;
        assert_eq!(reply.status(), 401, "attempt {attempt}");
    }
    let held = send(Method::GET, &status, &guess, None).await;
    assert_eq!(held.status(), 429);
    assert!(held.headers().contains_key("retry-after"));
    // The same address's login waits too: guessing cannot move from one door to the other.
    assert_eq!(login(&base, TOKEN, &[]).await.status(), 429);
    daemon.stop().await.unwrap();
}

crate::actix_on_both_backends!(
    a_logged_out_cookie_no_longer_opens_the_console,
    changing_the_token_ends_every_session,
    the_cookie_is_secure_when_the_console_is_reached_over_https,
    wrong_tokens_back_off_per_address_and_even_the_right_one_waits_its_turn,
);

/// The endpoint address a daemon logged (`--log-format json`), once it did.
fn logged_endpoint(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| {
            event["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Inspection endpoint listening"))
        })
        .and_then(|event| event["fields"]["addr"].as_str().map(str::to_string))
}

#[tokio::test]
async fn twenty_wrong_tokens_from_one_address_make_one_log_line() {
    // Arrange: the real daemon with a token, logging JSON lines.
    let db = crate::support::TestDb::new(Backend::Sqlite).await;
    let sim = Simulator::start(db.dir.path(), &[]);
    let mut env = daemon_env(&sim, 10);
    env.push(("AMC_COLLECTOR__HTTP__TOKEN", TOKEN.into()));
    let _daemon = spawn_with_args(&db, &env, 0, &["run", "--log-format", "json"]);
    let log = log_path(db.dir.path(), 0);
    let addr = wait_until(
        "the daemon logs its endpoint",
        Duration::from_secs(30),
        || {
            let log = log.clone();
            async move { logged_endpoint(&log) }
        },
    )
    .await;
    let base = format!("http://{addr}");

    // Act: twenty wrong guesses in a row.
    for _ in 0..20 {
        let status = login(&base, "a-wrong-guess-of-the-token", &[])
            .await
            .status();
        assert!(status == 401 || status == 429, "{status}");
    }

    // Assert: one WARN line for them (the next one is due a minute later), with its count.
    let lines: Vec<_> = warnings(db.dir.path(), 1)
        .into_iter()
        .filter(|event| event.message.contains("wrong token"))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{:?}",
        lines.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    sim.stop();
}
