//! SIGUSR1, like a user would do it: the real `run` binary against the real `simulate-amc`
//! binary, its stderr captured to a file, `kill -USR1 PID`, and the dump found in that file.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use amc_collector::status::WeekStatus;

use super::sql_fixture;
use crate::on_both_backends;
use crate::support::pipeline::{weeks, CLIENT_ID, CLIENT_SECRET, INSTANCE_ID, REFRESH_TOKEN};
use crate::support::{binary, wait_until, Backend};

/// A child process killed (by its own id) if the test ends early.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Starts `simulate-amc` on a free port and returns it with its base URL (from its first line).
fn spawn_simulator() -> (Spawned, String) {
    use std::io::BufRead;
    let mut child = Command::new(binary())
        .args([
            "simulate-amc",
            "--bind",
            "127.0.0.1:0",
            "--running-ms",
            "600000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // Keep reading: a closed pipe would make the simulator's next println fail and end it.
    std::thread::spawn(move || stdout.lines().for_each(drop));
    let base = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no base URL in: {line}"))
        .to_string();
    (Spawned(child), base)
}

/// What is awaited, with the daemon's log read when the wait times out.
struct WithLog<'a>(&'a str, &'a Path);

impl std::fmt::Display for WithLog<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let log = std::fs::read_to_string(self.1).unwrap_or_default();
        write!(f, "{}; daemon log:\n{log}", self.0)
    }
}

async fn sigusr1_makes_the_running_daemon_log_a_full_dump(backend: Backend) {
    let fx = sql_fixture(backend, 2).await;
    // Both weeks at once: the workflow has run on the instance before (no probing).
    crate::support::pipeline::prove_workflow(&fx).await;
    let (_simulator, base_url) = spawn_simulator();
    let log_path = fx.db.path("daemon.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let daemon = Command::new(binary())
        .arg("run")
        .current_dir(fx.db.dir.path())
        .env_remove("RUST_LOG")
        .env("AMC_COLLECTOR__DATABASE__URL", &fx.db.url)
        .env("AMC_COLLECTOR__AMC__BASE_URL", &base_url)
        .env(
            "AMC_COLLECTOR__AMC__TOKEN_URL",
            format!("{base_url}/auth/o2/token"),
        )
        .env("AMC_COLLECTOR__AMC__CLIENT_ID", CLIENT_ID)
        .env("AMC_COLLECTOR__AMC__CLIENT_SECRET", CLIENT_SECRET)
        .env("AMC_COLLECTOR__AMC__REFRESH_TOKEN", REFRESH_TOKEN)
        .env("AMC_COLLECTOR__AMC__POLL_INTERVAL_MS", "50")
        .env("AMC_COLLECTOR__SCHEDULER__SCAN_INTERVAL_MS", "100")
        .env("AMC_COLLECTOR__HTTP__BIND", "127.0.0.1:0")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .spawn()
        .unwrap();
    let mut daemon = Spawned(daemon);
    let amc_id = wait_until(
        WithLog("both weeks run on AMC", &log_path),
        Duration::from_secs(60),
        || async {
            let weeks = weeks(&fx.store, fx.collection_id).await;
            let all_running = weeks.iter().all(|w| w.status == WeekStatus::Running);
            all_running
                .then(|| weeks[0].amc_execution_id.clone())
                .flatten()
        },
    )
    .await;

    send_signal(&daemon.0, "-USR1");
    let log = wait_until(
        WithLog("the dump is in the log", &log_path),
        Duration::from_secs(30),
        || async {
            let log = std::fs::read_to_string(&log_path).unwrap();
            log.contains("Tree dump ends.").then_some(log)
        },
    )
    .await;

    let lines: Vec<&str> = log.lines().filter(|l| l.contains("Tree dump")).collect();
    let find = |marker: &str| {
        lines
            .iter()
            .copied()
            .filter(|l| l.contains(marker))
            .collect::<Vec<_>>()
    };
    assert_eq!(find("Tree dump begins.").len(), 1, "{log}");
    let collection = find("Tree dump: collection.");
    assert_eq!(collection.len(), 1, "{log}");
    assert!(collection[0].contains(&fx.collection_id.to_string()));
    assert!(collection[0].contains("running=2"), "{}", collection[0]);
    let executions = find("Tree dump: in-flight execution.");
    assert_eq!(executions.len(), 2, "{log}");
    assert!(executions.iter().any(|l| l.contains(&amc_id)), "{log}");
    assert!(
        executions.iter().all(|l| l.contains("age_seconds=")),
        "{log}"
    );
    let slots = find("Tree dump: gateway instance slots.");
    assert!(
        slots[0].contains(INSTANCE_ID) && slots[0].contains("in_use=2"),
        "{log}"
    );
    assert!(
        find("Tree dump: gateway.")[0].contains("token_expires_at="),
        "{log}"
    );
    assert!(find("Tree dump: AMC requests.")
        .iter()
        .any(|l| l.contains("endpoint=\"create\"")));
    assert!(find("Tree dump: database writer.")[0].contains("writes_in_flight="));
    assert!(!log.contains(CLIENT_SECRET) && !log.contains(REFRESH_TOKEN));

    send_signal(&daemon.0, "-TERM");
    let status = wait_until(
        "the daemon exits after SIGTERM",
        Duration::from_secs(30),
        || std::future::ready(daemon.0.try_wait().unwrap()),
    )
    .await;
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log_path).unwrap()
    );
}

on_both_backends!(sigusr1_makes_the_running_daemon_log_a_full_dump);
