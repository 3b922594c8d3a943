//! The operator's console, end to end: the real daemon (in-process) against the AMC simulator
//! and a real database, its console driven in Debian's headless chromium through
//! chromium-driver (WebDriver), and its HTTP checks (token, cookie, cross-site POSTs) asked
//! directly.
//!
//! The browser must be installed (`apt-get install chromium chromium-driver`, which `.ci/run`
//! does): without it the test fails, it never skips. `CHROMIUM` / `CHROMEDRIVER` override the
//! binaries' paths. The screenshots go to `target/console-*.png`; with
//! `AMC_CONSOLE_SCREENSHOT=docs` it also replaces `docs/console.png` (the README's picture), so
//! ordinary runs leave the committed picture alone.

mod browser;
mod new_collection;

use std::path::Path;

use crate::support::pipeline::{
    completed_week, drive_to_downloading, fixture, settings, weeks, Fixture,
};
use crate::support::Backend;
use amc_collector::app::App;
use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle};
use amc_collector::status::{CollectionStatus, WeekStatus};
use amc_collector::store::Transition;
use amc_collector::store::WorkflowSource;
use browser::{browser, click, eventually, start_driver, STEP};
use fantoccini::Locator;
use secrecy::SecretString;

const SQL: &str = "SELECT campaign, SUM(impressions) FROM t WHERE d >= '{{start_date}}' GROUP BY 1";
const TOKEN: &str = "console-test-token";
const WEEKS: usize = 12;

/// A collection of `WEEKS` weeks, three of them completed, the others held in flight by a
/// simulator whose executions run for ten minutes.
async fn seeded(backend: Backend) -> (Fixture, SimulatorHandle) {
    let fx = fixture(backend, WEEKS as i64, WorkflowSource::Sql(SQL.into())).await;
    for (i, week) in weeks(&fx.store, fx.collection_id)
        .await
        .iter()
        .take(3)
        .enumerate()
    {
        let amc_id = format!("amc-seeded-{i}");
        let execution = drive_to_downloading(&fx, week, &amc_id).await;
        fx.store
            .apply_transition(Transition::Completed(
                completed_week(&fx, week, execution, &amc_id).await,
            ))
            .await
            .unwrap()
            .unwrap();
    }
    let config = SimulatorConfig {
        pending_ms: 5,
        running_ms: 600_000,
        publishing_ms: 5,
        ..SimulatorConfig::default()
    };
    let sim = simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    (fx, sim)
}

/// Starts the daemon in-process with its endpoint (and console) on a free loopback port.
async fn launch(fx: &Fixture, sim: &SimulatorHandle, token: Option<&str>) -> (App, String) {
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.http.token = token.map(SecretString::from);
    settings.scheduler.tree_log_interval_seconds = 0;
    let daemon = App::build(&settings)
        .store(fx.store.clone())
        .inspected()
        .start()
        .await
        .unwrap();
    let endpoint = daemon.observer().and_then(|observer| observer.http_addr());
    let base = format!("http://{}", endpoint.unwrap());
    (daemon, base)
}

fn save_screenshot(png: &[u8], backend: Backend) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let name = format!("console-{backend:?}.png").to_lowercase();
    let target = root.join("target").join(name);
    std::fs::write(&target, png).unwrap();
    if backend == Backend::Sqlite
        && std::env::var("AMC_CONSOLE_SCREENSHOT").as_deref() == Ok("docs")
    {
        std::fs::write(root.join("docs/console.png"), png).unwrap();
    }
}

async fn an_operator_signs_in_sees_the_weeks_and_pauses_the_collection_from_the_browser(
    backend: Backend,
) {
    // Arrange: a running collection, the daemon with a token, and a browser.
    let (fx, sim) = seeded(backend).await;
    let (daemon, base) = launch(&fx, &sim, Some(TOKEN)).await;
    let driver = start_driver().await;
    let page = browser(&driver).await;

    // Act: load the console; it asks for the token once.
    page.goto(&format!("{base}/")).await.unwrap();
    let token = page
        .wait()
        .at_most(STEP)
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    token.send_keys(TOKEN).await.unwrap();
    click(&page, "#login-form button[type=submit]").await;

    // Assert: the list shows the collection; its page shows every week, three completed.
    let link = format!("a[href='#/c/{}']", fx.collection_id);
    click(&page, &link).await;
    let completed = eventually("the weeks grid shows every week", || async {
        let cells = page.find_all(Locator::Css("#weeks button")).await.ok()?;
        if cells.len() != WEEKS {
            return None;
        }
        let mut completed = 0;
        for cell in &cells {
            if cell.attr("data-status").await.ok()?.as_deref() == Some("completed") {
                completed += 1;
            }
        }
        Some(completed)
    })
    .await;
    assert_eq!(completed, 3);

    // A week's detail opens on click.
    click(&page, "#weeks button[data-status='completed']").await;
    let detail = page
        .wait()
        .at_most(STEP)
        .for_element(Locator::Css("#week:not([hidden]) #week-fields"))
        .await
        .unwrap();
    let shown = detail.text().await.unwrap();
    assert!(shown.contains("amc-seeded-"), "{shown}");

    // Act: Pause, accepting the confirmation.
    let pause = page
        .find(Locator::Css("button[data-action='pause']"))
        .await
        .unwrap();
    eventually("Pause is enabled", || async {
        pause.is_enabled().await.ok()?.then_some(())
    })
    .await;
    pause.click().await.unwrap();
    page.accept_alert().await.unwrap();

    // Assert: the database says paused, and the page shows it without a reload.
    eventually("the collection is paused in the database", || async {
        let collection = fx.store.collection(fx.collection_id).await.ok()??;
        (collection.status == CollectionStatus::Paused).then_some(())
    })
    .await;
    eventually("the page shows the pause", || async {
        let summary = page.find(Locator::Id("summary")).await.ok()?;
        summary.text().await.ok()?.contains("paused").then_some(())
    })
    .await;
    let summary = page.find(Locator::Id("summary")).await.unwrap();
    let summary = summary.text().await.unwrap();
    assert!(summary.contains("no (a backfill)"), "{summary}");
    let png = page.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    save_screenshot(&png, backend);

    // On a phone-sized window the page fits its width (no sideways scrolling), list included.
    page.set_window_size(390, 844).await.unwrap();
    for view in [String::new(), format!("#/c/{}", fx.collection_id)] {
        page.goto(&format!("{base}/{view}")).await.unwrap();
        eventually("the page fits a phone's width", || async {
            let fits = page
                .execute(
                    "return document.readyState === 'complete' && \
                     document.querySelector('main section:not([hidden])') !== null && \
                     document.documentElement.scrollWidth <= window.innerWidth;",
                    vec![],
                )
                .await
                .ok()?;
            (fits == serde_json::Value::Bool(true)).then_some(())
        })
        .await;
    }
    let phone = page.screenshot().await.unwrap();
    let name = format!("console-phone-{backend:?}.png").to_lowercase();
    std::fs::write(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(name),
        phone,
    )
    .unwrap();

    page.close().await.unwrap();
    drop(driver);
    daemon.stop().await.unwrap();
    let stored = weeks(&fx.store, fx.collection_id).await;
    assert_eq!(
        stored
            .iter()
            .filter(|w| w.status == WeekStatus::Completed)
            .count(),
        3
    );
}

async fn post(url: &str, headers: &[(&str, &str)], body: serde_json::Value) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(url).json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn the_console_needs_the_token_once_and_refuses_cross_site_actions(backend: Backend) {
    let (fx, sim) = seeded(backend).await;
    let (daemon, base) = launch(&fx, &sim, Some(TOKEN)).await;
    let api = format!("{base}/api/collections");
    let pause = format!("{api}/{}/pause", fx.collection_id);
    let host = base.trim_start_matches("http://").to_string();

    // The shell is public and holds no data; the data needs the token.
    let shell = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(shell.status(), 200);
    assert!(shell.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(reqwest::get(&api).await.unwrap().status(), 401);

    // A wrong token gets no cookie; the right one an HttpOnly, SameSite=Strict cookie that
    // does not hold the token.
    let console = [("x-amc-console", "1")];
    let wrong = post(
        &format!("{base}/console/login"),
        &console,
        serde_json::json!({"token": "nope"}),
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let right = post(
        &format!("{base}/console/login"),
        &console,
        serde_json::json!({"token": TOKEN}),
    )
    .await;
    assert_eq!(right.status(), 204);
    let set_cookie = right.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains(TOKEN), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    // With the cookie the data is there.
    let listed: serde_json::Value = reqwest::Client::new()
        .get(&api)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["collections"][0]["id"], fx.collection_id.to_string());
    assert_eq!(listed["collections"][0]["completed"], 3);
    assert_eq!(
        (listed["page"].as_i64(), listed["total"].as_i64()),
        (Some(0), Some(1))
    );

    // The list is read a page at a time, newest first: two more collections, two a page.
    for _ in 0..2 {
        crate::support::pipeline::add_collection(&fx.store, &fx.instance, &fx.workflow, 2, "UTC")
            .await;
    }
    let page = |n: u32| {
        let (client, cookie) = (reqwest::Client::new(), cookie.clone());
        let url = format!("{api}?page={n}&per_page=2");
        async move {
            let value: serde_json::Value = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            value
        }
    };
    let (first, second) = (page(0).await, page(1).await);
    assert_eq!(first["total"], 3);
    assert_eq!(first["collections"].as_array().unwrap().len(), 2);
    let last = second["collections"].as_array().unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(
        last[0]["id"],
        fx.collection_id.to_string(),
        "the oldest is on the last page"
    );

    // A cross-site form (no console header) and a foreign origin change nothing.
    let form = post(&pause, &[("cookie", &cookie)], serde_json::json!({})).await;
    assert_eq!(form.status(), 403);
    let foreign = post(
        &pause,
        &[
            ("cookie", &cookie),
            ("x-amc-console", "1"),
            ("origin", "http://evil.test"),
        ],
        serde_json::json!({}),
    )
    .await;
    assert_eq!(foreign.status(), 403);
    let unchanged = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(unchanged.status, CollectionStatus::Paused);

    // The page's own request pauses; a rerun of a week that is not completed is refused.
    let origin = format!("http://{host}");
    let own = [
        ("cookie", cookie.as_str()),
        ("x-amc-console", "1"),
        ("origin", origin.as_str()),
    ];
    assert_eq!(
        post(&pause, &own, serde_json::json!({})).await.status(),
        200
    );
    let paused = fx
        .store
        .collection(fx.collection_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(paused.status, CollectionStatus::Paused);
    let last = weeks(&fx.store, fx.collection_id).await.pop().unwrap();
    let rerun = format!(
        "{api}/{}/weeks/{}/rerun",
        fx.collection_id, last.week_start_date
    );
    let refused = post(&rerun, &own, serde_json::json!({})).await;
    assert_eq!(refused.status(), 409);
    let first = weeks(&fx.store, fx.collection_id).await.remove(0);
    let rerun = format!(
        "{api}/{}/weeks/{}/rerun",
        fx.collection_id, first.week_start_date
    );
    let accepted: serde_json::Value = post(&rerun, &own, serde_json::json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        accepted["previous_execution_id"],
        serde_json::json!(first.execution_id)
    );
    let first_now = weeks(&fx.store, fx.collection_id).await.remove(0);
    assert_eq!(first_now.status, WeekStatus::Pending);
    let again = post(&pause, &own, serde_json::json!({})).await;
    assert_eq!(
        again.status(),
        409,
        "pausing twice is an invalid transition"
    );

    daemon.stop().await.unwrap();
}

crate::actix_on_both_backends!(
    an_operator_signs_in_sees_the_weeks_and_pauses_the_collection_from_the_browser,
    the_console_needs_the_token_once_and_refuses_cross_site_actions,
);
