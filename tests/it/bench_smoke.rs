//! `amc-collector bench`, run as the real binary in its smallest form: it must finish and print
//! its figure lines. No timing is asserted (figures vary with the machine and its load).

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
