//! The real binaries as child processes for the chaos, multi-process and hostile-text tests: a
//! guard that kills its child on drop (so a failing assertion never leaks a daemon or a
//! simulator), the `simulate-amc` process and its stats endpoint, and `run --exit-when-idle` with
//! the fast daemon environment.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, pipeline};

/// How often a child is looked at while waiting for it; short so exits are seen promptly.
const POLL: Duration = Duration::from_millis(10);

/// A child process killed (SIGKILL) and reaped when the guard is dropped, unless already reaped.
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
}

impl ChildGuard {
    fn new(name: impl Into<String>, child: Child) -> Self {
        Self {
            name: name.into(),
            child: Some(child),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The child's exit status if it has exited (reaping it), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self
            .child
            .as_mut()?
            .try_wait()
            .expect("try_wait on child")?;
        self.child = None;
        Some(status)
    }

    /// Waits up to `limit` for the child to exit by itself; `None` if it is still running. Unlike
    /// `support::wait_until` it does not fail on timeout: the chaos tests also use it to let a run
    /// go on for a chosen time unless it ends first.
    pub async fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if self.child.is_none() || Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(POLL.min(until - Instant::now())).await;
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap.
    pub fn kill(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("child not reaped yet");
        // Fails only when the child already exited; `wait` below still reaps it.
        let _ = child.kill();
        child.wait().expect("reap killed child")
    }

    /// Sends SIGTERM through the `kill` utility (no signal crate is a dependency).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {} failed", self.name);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Renders an exit status for messages: the code, or the signal that ended the process.
pub fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => format!("{status:?}"),
    }
}

/// The `simulate-amc` process and where it listens.
pub struct Simulator {
    guard: ChildGuard,
    pub base_url: String,
    pub token_url: String,
    http: reqwest::Client,
}

impl Simulator {
    /// Starts the simulator on a free loopback port and parses its first stdout line.
    pub fn start(dir: &Path, flags: &[String]) -> Self {
        let log = std::fs::File::create(dir.join("simulator.log")).expect("simulator log");
        let mut child = Command::new(support::binary())
            .args(["simulate-amc", "--bind", "127.0.0.1:0"])
            .args(flags)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn simulate-amc");
        let stdout = child.stdout.take().expect("piped stdout");
        let guard = ChildGuard::new("simulate-amc", child);
        let (sender, receiver) = std::sync::mpsc::channel();
        // The reader keeps draining after the first line: a closed pipe would make the
        // simulator's next println! fail.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = sender.send(first);
            }
            for _ in lines {}
        });
        let first = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("simulate-amc printed no listening line");
        let word_after = |label: &str| {
            let start = first
                .find(label)
                .unwrap_or_else(|| panic!("no `{label}` in: {first}"));
            first[start + label.len()..]
                .split_whitespace()
                .next()
                .unwrap_or_else(|| panic!("nothing after `{label}` in: {first}"))
                .to_string()
        };
        let base_url = word_after("base URL ");
        let token_url = word_after("token URL ");
        assert!(base_url.starts_with("http://127.0.0.1:"), "{first}");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self {
            guard,
            base_url,
            token_url,
            http,
        }
    }

    /// `GET /__sim/stats` as JSON.
    pub async fn stats(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/__sim/stats", self.base_url))
            .send()
            .await
            .expect("simulator stats request")
            .error_for_status()
            .expect("simulator stats status")
            .json()
            .await
            .expect("simulator stats JSON")
    }

    pub fn stop(mut self) {
        self.guard.kill();
    }
}

/// The daemon's environment for this simulator and database (task brief, step 2).
pub fn daemon_env(sim: &Simulator, max_in_flight: u64) -> Vec<(&'static str, String)> {
    vec![
        ("AMC_COLLECTOR__AMC__BASE_URL", sim.base_url.clone()),
        ("AMC_COLLECTOR__AMC__TOKEN_URL", sim.token_url.clone()),
        ("AMC_COLLECTOR__AMC__CLIENT_ID", pipeline::CLIENT_ID.into()),
        (
            "AMC_COLLECTOR__AMC__CLIENT_SECRET",
            pipeline::CLIENT_SECRET.into(),
        ),
        (
            "AMC_COLLECTOR__AMC__REFRESH_TOKEN",
            pipeline::REFRESH_TOKEN.into(),
        ),
        ("AMC_COLLECTOR__AMC__POLL_INTERVAL_MS", "50".into()),
        ("AMC_COLLECTOR__AMC__BACKOFF_BASE_MS", "5".into()),
        ("AMC_COLLECTOR__AMC__BACKOFF_MAX_MS", "100".into()),
        ("AMC_COLLECTOR__AMC__MAX_REQUESTS_PER_SECOND", "0".into()),
        // Hundreds of weeks share one instance; the daily limit has tests of its own.
        ("AMC_COLLECTOR__AMC__MAX_CREATES_PER_DAY", "0".into()),
        (
            "AMC_COLLECTOR__AMC__MAX_IN_FLIGHT_PER_INSTANCE",
            max_in_flight.to_string(),
        ),
        ("AMC_COLLECTOR__RETRY__BACKOFF_BASE_MS", "50".into()),
        ("AMC_COLLECTOR__SCHEDULER__SCAN_INTERVAL_MS", "100".into()),
        // Several daemons run at once on this host: each takes a free port for its endpoint.
        ("AMC_COLLECTOR__HTTP__BIND", "127.0.0.1:0".into()),
        (
            "AMC_COLLECTOR__SCHEDULER__SHUTDOWN_DEADLINE_SECONDS",
            "5".into(),
        ),
    ]
}

/// Starts `run --exit-when-idle` with its log in `dir/run-{round}.log`.
pub fn spawn_run(db: &support::TestDb, env: &[(&'static str, String)], round: usize) -> ChildGuard {
    spawn_with_args(
        db,
        env,
        round,
        &["run", "--exit-when-idle", "--log-format", "json"],
    )
}

/// Starts the binary with these arguments, the database and `env`, its stderr in
/// `dir/run-{round}.log`.
pub fn spawn_with_args(
    db: &support::TestDb,
    env: &[(&'static str, String)],
    round: usize,
    args: &[&str],
) -> ChildGuard {
    let log = std::fs::File::create(log_path(db.dir.path(), round)).expect("run log");
    let mut command = Command::new(support::binary());
    command
        .args(args)
        .current_dir(db.dir.path())
        .env("AMC_COLLECTOR__DATABASE__URL", &db.url)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for (key, value) in env {
        command.env(key, value);
    }
    ChildGuard::new(
        format!("run #{round}"),
        command.spawn().expect("spawn amc-collector run"),
    )
}

pub fn log_path(dir: &Path, round: usize) -> PathBuf {
    dir.join(format!("run-{round}.log"))
}

/// A WARN or ERROR event from a daemon's JSON log.
pub struct LogEvent {
    pub round: usize,
    pub level: String,
    pub message: String,
    /// The `error` or `reason` field, when present.
    pub detail: String,
}

impl std::fmt::Display for LogEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run #{} {} {} {}",
            self.round, self.level, self.message, self.detail
        )
    }
}

/// WARN and ERROR events of every run, in order, for failure messages and the summary.
pub fn warnings(dir: &Path, rounds: usize) -> Vec<LogEvent> {
    (0..rounds)
        .flat_map(|round| {
            let text = std::fs::read_to_string(log_path(dir, round)).unwrap_or_default();
            text.lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter(|event| matches!(event["level"].as_str(), Some("WARN" | "ERROR")))
                .map(|event| {
                    let fields = &event["fields"];
                    let text = |value: &serde_json::Value| value.as_str().unwrap_or("").to_string();
                    LogEvent {
                        round,
                        level: text(&event["level"]),
                        message: text(&fields["message"]),
                        detail: fields["error"]
                            .as_str()
                            .or(fields["reason"].as_str())
                            .unwrap_or("")
                            .to_string(),
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
