//! Secrets never leak: the real `run --exit-when-idle --log-format json` against the real
//! `simulate-amc`, both at `RUST_LOG=debug`, with throttling, server errors and one-second access
//! tokens; and database URLs with a password that cannot be reached. Everything either process
//! prints is searched for the client secret, the refresh token, any access token and the password.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amc_collector::status::WeekStatus;
use amc_collector::store::WorkflowSource;

use super::common::{count, SQL};
use crate::support::pipeline::{fixture, CLIENT_ID};
use crate::support::{binary, Backend, TestDb};

const CLIENT_SECRET: &str = "cs-resilience-7f3a9d1c";
/// Distinctive enough that any encoding of it (form, percent, JSON) still shows this part.
const REFRESH_TOKEN_TAIL: &str = "rt-resilience-5e8b2c4a";
/// LwA access tokens (and the simulator's) start with this.
const ACCESS_TOKEN_PREFIX: &str = "Atza|";

fn refresh_token() -> String {
    format!("Atzr|{REFRESH_TOKEN_TAIL}")
}

/// Everything a child printed on stdout and stderr, gathered by reader threads.
#[derive(Clone, Default)]
struct Transcript(Arc<Mutex<String>>);

impl Transcript {
    fn drain(&self, stream: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        let text = self.0.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        })
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// A child killed on drop, so a failed assertion never leaks a process.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asserts that no secret, nor any access token, is in `text`.
#[track_caller]
fn assert_no_secret(who: &str, text: &str) {
    let forbidden = [
        CLIENT_SECRET,
        REFRESH_TOKEN_TAIL,
        ACCESS_TOKEN_PREFIX,
        "Atza%7C",
        "Bearer ",
    ];
    for secret in forbidden {
        if let Some(at) = text.find(secret) {
            let line = text[..at].rsplit('\n').next().unwrap_or("");
            panic!("{who} printed `{secret}`: …{line}{secret}…");
        }
    }
}

#[actix_rt::test]
async fn secrets_and_access_tokens_never_appear_in_the_output_of_the_daemon_or_the_simulator() {
    // Arrange: the simulator accepts only our secrets and issues tokens that live one second.
    let fx = fixture(Backend::Sqlite, 4, WorkflowSource::Sql(SQL.into())).await;
    let refresh = refresh_token();
    let sim_output = Transcript::default();
    let mut sim = Command::new(binary())
        .args([
            "simulate-amc",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args([
            "--pending-ms",
            "5",
            // Longer than the one-second tokens (the client keeps a token at least 60 s), so
            // they die mid-run, AMC answers 401 and the client refreshes.
            "--running-ms",
            "1500",
            "--publishing-ms",
            "5",
        ])
        // LwA refuses the first grants: the outage's log lines are searched too.
        .args(["--refuse-grants-ms", "300"])
        .args([
            "--rate-429",
            "0.15",
            "--retry-after-secs",
            "0",
            "--rate-5xx",
            "0.1",
        ])
        .args([
            "--omit-id-rate",
            "0.2",
            "--token-ttl-secs",
            "1",
            "--seed",
            "7",
        ])
        .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
        .args(["--refresh-token", &refresh])
        .current_dir(fx.db.dir.path())
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn simulate-amc");
    let (stdout, stderr) = (sim.stdout.take().unwrap(), sim.stderr.take().unwrap());
    let sim = Killed(sim);
    let mut sim_stdout = BufReader::new(stdout);
    let mut first = String::new();
    sim_stdout.read_line(&mut first).expect("simulator output");
    sim_output.0.lock().unwrap().push_str(&first);
    let readers = [sim_output.drain(sim_stdout), sim_output.drain(stderr)];
    let word_after = |label: &str| {
        let start = first
            .find(label)
            .unwrap_or_else(|| panic!("no {label}: {first}"))
            + label.len();
        first[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let (base_url, token_url) = (word_after("base URL "), word_after("token URL "));
    assert!(base_url.starts_with("http://127.0.0.1:"), "{first}");

    // Act
    let daemon = tokio::process::Command::new(binary())
        .args(["run", "--exit-when-idle", "--log-format", "json"])
        .current_dir(fx.db.dir.path())
        .env("RUST_LOG", "debug")
        .env("AMC_COLLECTOR__HTTP__BIND", "127.0.0.1:0")
        .env("AMC_COLLECTOR__DATABASE__URL", &fx.db.url)
        .env("AMC_COLLECTOR__AMC__BASE_URL", &base_url)
        .env("AMC_COLLECTOR__AMC__TOKEN_URL", &token_url)
        .env("AMC_COLLECTOR__AMC__CLIENT_ID", CLIENT_ID)
        .env("AMC_COLLECTOR__AMC__CLIENT_SECRET", CLIENT_SECRET)
        .env("AMC_COLLECTOR__AMC__REFRESH_TOKEN", &refresh)
        .env("AMC_COLLECTOR__AMC__POLL_INTERVAL_MS", "50")
        .env("AMC_COLLECTOR__AMC__BACKOFF_BASE_MS", "5")
        .env("AMC_COLLECTOR__AMC__BACKOFF_MAX_MS", "100")
        .env("AMC_COLLECTOR__AMC__MAX_REQUESTS_PER_SECOND", "0")
        .env("AMC_COLLECTOR__RETRY__BACKOFF_BASE_MS", "50")
        .env("AMC_COLLECTOR__SCHEDULER__SCAN_INTERVAL_MS", "100")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let daemon = tokio::time::timeout(Duration::from_secs(120), daemon)
        .await
        .expect("the daemon did not finish in time")
        .expect("run amc-collector");
    let stats: serde_json::Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{base_url}/__sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    drop(sim);
    for reader in readers {
        reader.join().unwrap();
    }

    // Assert: the run did what the secrets protect, at debug level, and printed none of them.
    let daemon_text = format!(
        "{}{}",
        String::from_utf8_lossy(&daemon.stdout),
        String::from_utf8_lossy(&daemon.stderr)
    );
    assert!(daemon.status.success(), "daemon failed: {daemon_text}");
    assert_eq!(
        count(&fx.store, fx.collection_id, WeekStatus::Completed).await,
        4
    );
    assert!(stats["token_refreshes"].as_u64().unwrap() >= 2, "{stats}");
    assert!(
        stats["served_429"].as_u64().unwrap() + stats["served_5xx"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        daemon_text.contains("\"level\":\"DEBUG\""),
        "the daemon did not log at debug level"
    );
    assert_no_secret("the daemon", &daemon_text);
    assert_no_secret("the simulator", &sim_output.text());
}

#[test]
fn a_database_password_never_appears_when_the_database_cannot_be_reached() {
    // Arrange: a Postgres URL with a password, pointing at a loopback "server" that hangs up at
    // once (a refused port would make sqlx retry for its whole 30 s acquire timeout per command).
    let db = TestDb {
        url: String::new(),
        dir: tempfile::tempdir().unwrap(),
        backend: crate::support::Backend::Postgres,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            drop(connection);
        }
    });
    let password = "Pw9xQ7zLmK3resilience";
    let url = format!("postgres://amc_user:{password}@127.0.0.1:{closed_port}/amc");
    let env = [
        ("AMC_COLLECTOR__DATABASE__URL", url.as_str()),
        ("AMC_COLLECTOR__AMC__CLIENT_ID", CLIENT_ID),
        ("AMC_COLLECTOR__AMC__CLIENT_SECRET", CLIENT_SECRET),
        (
            "AMC_COLLECTOR__AMC__REFRESH_TOKEN",
            "Atzr|rt-resilience-5e8b2c4a",
        ),
        ("RUST_LOG", "debug"),
    ];
    let commands: [&[&str]; 5] = [
        &[
            "instance",
            "add",
            "--instance-id",
            "amcsecret1",
            "--advertiser-id",
            "ENTITYSECRET",
            "--marketplace-id",
            "ATVPDKIKX0DER",
        ],
        &["migrate"],
        &["collection", "list"],
        &["collection", "show", "7b0c5e52-0d5e-4a43-9d43-0a4f1c1f6f11"],
        &["run", "--exit-when-idle"],
    ];

    for args in commands {
        // Act
        let output = db.run_with_env(args, &env);

        // Assert
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.status.code(), Some(1), "{args:?}: {text}");
        assert!(text.contains("cannot open database"), "{args:?}: {text}");
        assert!(
            !text.contains(password),
            "{args:?} printed the password: {text}"
        );
        assert!(!text.contains("panicked"), "{args:?}: {text}");
        assert_no_secret(&format!("{args:?}"), &text);
    }
}
