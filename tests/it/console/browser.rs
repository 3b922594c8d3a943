//! WebDriver plumbing of the console's browser test: Debian's chromium-driver on a free loopback
//! port, a headless chromium session through it (fantoccini), and polling helpers. A missing
//! browser or driver fails the test with the command that installs them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// How long a browser step may take before the test fails (not a timing assertion: every step
/// polls for its condition and this only bounds a hang).
pub const STEP: Duration = Duration::from_secs(30);

/// The binary at `env` or the first of `candidates` that exists; fails loudly otherwise.
pub fn required_binary(env: &str, candidates: &[&str]) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "{} not found (looked in {candidates:?}; set {env} to override): the console's \
                 browser test needs Debian's chromium and chromium-driver \
                 (`apt-get install -y chromium chromium-driver`, done by .ci/run)",
                candidates[0]
            )
        })
}

/// chromedriver on a free loopback port; killed (by its own handle) when dropped.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_driver() -> Driver {
    let binary = required_binary(
        "CHROMEDRIVER",
        &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + STEP;
    while reqwest::get(format!("{}/status", driver.url))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    driver
}

pub async fn browser(driver: &Driver) -> Client {
    let chromium = required_binary(
        "CHROMIUM",
        &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1100,1000", "--lang=en-US"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromium session through chromedriver")
}

/// Polls `check` until it yields a value; fails after `STEP`.
pub async fn eventually<T, Fut>(what: &str, check: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    crate::support::wait_until(what, STEP, check).await
}

/// Finds and clicks `css`, again if the page replaced the element in between (it refreshes).
pub async fn click(page: &Client, css: &str) {
    eventually(&format!("{css} can be clicked"), || async {
        page.find(Locator::Css(css)).await.ok()?.click().await.ok()
    })
    .await
}
