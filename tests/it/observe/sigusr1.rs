//! SIGUSR1, like a user would do it: the real `run` binary against the real `simulate-amc`
//! binary, its stderr captured to a file, `kill -USR1 PID`, and the dump found in that file.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amc_collector::status::WeekStatus;

use super::sql_fixture;
use crate::on_both_backends;
use crate::support::pipeline::{weeks, CLIENT_ID, CLIENT_SECRET, INSTANCE_ID, REFRESH_TOKEN};
use crate::support::{binary, Backend};

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

/// Polls `check` every 20 ms until it yields a value; fails after `limit`, showing the log.
async fn poll<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    log_path: &std::path::Path,
    check: impl Fn() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            panic!("timed out waiting for {what}; daemon log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sigusr1_makes_the_running_daemon_log_a_full_dump(backend: Backend) {
    let fx = sql_fixture(backend, 2).await;
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
    let amc_id = poll(
        Duration::from_secs(60),
        "both weeks running on AMC",
        &log_path,
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
    let log = poll(
        Duration::from_secs(30),
        "the dump in the log",
        &log_path,
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
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(&log_path).unwrap()
    );
}

on_both_backends!(sigusr1_makes_the_running_daemon_log_a_full_dump);
