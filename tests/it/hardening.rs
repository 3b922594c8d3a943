//! The daemon and the CLI tried as an attacker and as a careless operator would: a web page
//! rebinding its name to 127.0.0.1, a stolen or logged-out console cookie, a guessed or
//! trickled login, an export pointed at something that is not a plain new file, oversized input.
//! The endpoint is the real daemon's (in-process, on a free loopback port, over real HTTP); the
//! CLI is the real binary.

mod endpoint;
mod files;
mod sessions;

use crate::support::pipeline::{fixture, settings, Fixture};
use crate::support::Backend;
use amc_collector::app::App;
use amc_collector::config::Settings;
use amc_collector::simulator::{self, SimulatorConfig, SimulatorHandle};
use amc_collector::store::{Control, WorkflowSource};
use secrecy::SecretString;

/// A token long enough for the endpoint's rule.
const TOKEN: &str = "hardening-test-token-0123";

/// A database with one paused collection of two weeks (the daemon submits nothing), and a
/// simulator the daemon is pointed at.
struct World {
    fx: Fixture,
    sim: SimulatorHandle,
}

async fn world(backend: Backend) -> World {
    let source = WorkflowSource::Sql("SELECT 1 FROM t WHERE d >= '{{start_date}}'".into());
    let fx = fixture(backend, 2, source).await;
    fx.store
        .apply_control(fx.collection_id, Control::Pause)
        .await
        .unwrap();
    let sim = simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorConfig::default())
        .await
        .unwrap();
    World { fx, sim }
}

/// Starts the daemon in-process with its endpoint on `bind` (port 0: a free one), `token`, and
/// whatever `configure` sets; returns it with its base URL and port.
async fn launch(
    world: &World,
    token: Option<&str>,
    configure: impl FnOnce(&mut Settings),
) -> (App, String, u16) {
    let (fx, sim) = (&world.fx, &world.sim);
    let mut settings = settings(&fx.db.url, &sim.base_url(), &sim.token_url());
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.http.token = token.map(SecretString::from);
    settings.scheduler.tree_log_interval_seconds = 0;
    configure(&mut settings);
    let daemon = App::build(&settings)
        .store(fx.store.clone())
        .inspected()
        .start()
        .await
        .unwrap();
    let addr = daemon
        .observer()
        .and_then(|observer| observer.http_addr())
        .unwrap();
    (daemon, format!("http://{addr}"), addr.port())
}

/// A request with the given headers (`host` included, which then replaces the real one).
async fn send(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}
