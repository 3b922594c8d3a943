//! `amc-collector bench`, run as the real binary in its smallest form: it must finish and print
//! its figure lines. No timing is asserted (figures vary with the machine and its load). Every
//! scenario runs here at `--quick` sizes on both backends, the Postgres runs on the test cluster
//! (`AMC_TEST_PG_URL`), so the project's test command is also the benchmark's smoke test.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_amc-collector"))
        .arg("bench")
        .args(args)
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn quick_sqlite_throughput_bench_exits_zero_and_prints_a_weeks_per_second_figure() {
    let out = bench(&["--quick", "--backend", "sqlite", "--scenario", "throughput"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("throughput [sqlite]:"))
        .unwrap_or_else(|| panic!("no throughput line in:\n{stdout}"));
    let figure = line
        .split_whitespace()
        .zip(line.split_whitespace().skip(1))
        .find(|(_, unit)| *unit == "weeks/s")
        .map(|(number, _)| number)
        .unwrap_or_else(|| panic!("no weeks/s figure in: {line}"));
    assert!(
        figure.parse::<f64>().unwrap() > 0.0,
        "weeks/s is not a positive number: {line}"
    );
    assert!(!line.contains("INCOMPLETE"), "{line}");
    assert!(!stdout.contains("multi-process"), "only `all` prints it");
}

/// `bench --quick --scenario <scenario> --backend both` on the test cluster; asserts that it
/// exits 0 and prints each of `lines` (prefixes) complete, and returns its output.
fn quick_scenario_prints(scenario: &str, lines: &[&str]) -> String {
    let url = std::env::var("AMC_TEST_PG_URL")
        .expect("AMC_TEST_PG_URL must name the test cluster (scripts/test.sh sets it)");
    let out = bench(&[
        "--quick",
        "--backend",
        "both",
        "--scenario",
        scenario,
        "--postgres-url",
        &url,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for prefix in lines {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stdout}\nstderr:\n{stderr}"));
        assert!(!line.contains("INCOMPLETE"), "{line}");
    }
    stdout
}

#[test]
fn the_quick_throughput_bench_runs_to_its_line_on_both_backends() {
    quick_scenario_prints(
        "throughput",
        &["throughput [postgres]:", "throughput [sqlite]:"],
    );
}

#[test]
fn the_quick_makespan_bench_runs_to_its_line_on_both_backends() {
    quick_scenario_prints("makespan", &["makespan [postgres]:", "makespan [sqlite]:"]);
}

#[test]
fn the_quick_scale_bench_runs_to_its_line_on_both_backends() {
    quick_scenario_prints("scale", &["scale [postgres]:", "scale [sqlite]:"]);
}

#[test]
fn the_quick_ingest_bench_runs_to_its_line_on_both_backends() {
    quick_scenario_prints("ingest", &["ingest [postgres]:", "ingest [sqlite]:"]);
}

#[test]
fn the_quick_views_bench_runs_to_its_line_on_both_backends() {
    quick_scenario_prints("views", &["views [postgres]:", "views [sqlite]:"]);
}

/// Several processes share a database only on Postgres: the scenario runs there whatever
/// `--backend` says.
#[test]
fn the_quick_multiprocess_bench_takes_the_killed_processs_collections_over() {
    let stdout = quick_scenario_prints("multiprocess", &["multi-process [postgres]:"]);
    assert!(!stdout.contains("[sqlite]"), "{stdout}");
}

#[test]
fn unreachable_postgres_url_fails_with_one_line_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://bench:secret-pw@127.0.0.1:{port}/postgres");
    let out = bench(&[
        "--quick",
        "--backend",
        "postgres",
        "--scenario",
        "throughput",
        "--postgres-url",
        &url,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "stderr:\n{stderr}");
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("secret-pw"), "password leaked: {stderr}");
}

/// The bench reads its own VmHWM from /proc/self/status: a 32 MB result (2.9 GB of RSS for 87 MB
/// before results were streamed) must stay within the 150 MB bound. Only the bound is checked.
#[test]
fn an_ingest_far_larger_than_its_buffers_keeps_peak_rss_within_150_mb() {
    let out = bench(&[
        "--backend",
        "sqlite",
        "--scenario",
        "ingest",
        "--ingest-mb",
        "32",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ingest [sqlite]:"))
        .unwrap_or_else(|| panic!("no ingest line in:\n{stdout}"));
    assert!(!line.contains("INCOMPLETE"), "{line}");
    let words: Vec<&str> = line.split_whitespace().collect();
    let peak = words
        .windows(4)
        .find(|w| w[0] == "peak" && w[1] == "RSS" && w[3] == "MB")
        .map(|w| w[2])
        .unwrap_or_else(|| panic!("no peak RSS figure in: {line}"));
    let peak: f64 = peak.parse().unwrap();
    assert!(peak <= 150.0, "peak RSS {peak} MB: {line}");
    for figure in ["rows/s", "x reference"] {
        assert!(line.contains(figure), "{figure} missing: {line}");
    }
}

/// `timeout 20 amc-collector bench ...` sends SIGTERM: the throwaway PostgreSQL cluster the
/// bench started (in a session of its own, so the signal does not reach it) is stopped too.
#[tokio::test]
async fn a_bench_stopped_by_sigterm_stops_the_throwaway_postgres_it_started() {
    use tokio::io::AsyncBufReadExt;
    // Arrange: a bench that starts its own cluster and names its port.
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_amc-collector"))
        .args([
            "bench",
            "--quick",
            "--backend",
            "postgres",
            "--scenario",
            "throughput",
        ])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) =
                line.strip_prefix("postgres: throwaway PostgreSQL 15 cluster on port ")
            {
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
        panic!("the bench ended without naming its cluster");
    })
    .await
    .expect("the bench named its cluster's port");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    // Act
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .expect("the bench exits after SIGTERM")
    .unwrap();

    // Assert: it says why it stopped, in one line, and nothing listens on the cluster's port.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "stderr:\n{stderr}");
    assert!(stderr.contains("SIGTERM"), "stderr:\n{stderr}");
    crate::support::wait_until(
        format!("nothing listens on port {port}"),
        std::time::Duration::from_secs(30),
        || async { std::net::TcpStream::connect(("127.0.0.1", port)).is_err() },
    )
    .await;
}
