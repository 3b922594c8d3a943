//! Resource readings of this process (and of a PostgreSQL server tree) from `/proc`, so the
//! benchmark needs no `libc`: CPU time from `stat` files, peak resident memory from `status`.
//!
//! Linux only; every reading is optional (`None` when `/proc` cannot be read) and is reported
//! as "n/a" rather than failing the benchmark.

use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` times. `getconf` is asked once; 100 is the value
/// on every mainstream Linux architecture.
fn ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0)
            .unwrap_or(100.0)
    })
}

/// The fields of a `stat` line after the command name, which may itself contain spaces and
/// parentheses; index 0 is field 3 (state) of proc(5).
fn stat_fields(text: &str) -> Option<Vec<&str>> {
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().collect())
}

fn ticks(fields: &[&str], index: usize) -> u64 {
    fields.get(index).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn to_duration(ticks: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / ticks_per_second())
}

/// utime + stime of a `stat` file; with `children`, also the reaped children's times.
fn cpu_of(path: &str, children: bool) -> Option<(u64, Option<u32>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let fields = stat_fields(&text)?;
    let mut total = ticks(&fields, 11) + ticks(&fields, 12);
    if children {
        total += ticks(&fields, 13) + ticks(&fields, 14);
    }
    let ppid = fields.get(1).and_then(|v| v.parse().ok());
    Some((total, ppid))
}

/// User + system CPU time of this whole process, every thread included.
pub fn process_cpu() -> Option<Duration> {
    cpu_of("/proc/self/stat", false).map(|(t, _)| to_duration(t))
}

/// CPU time of this process's live threads whose name starts with one of `prefixes` (thread
/// names are cut to 15 bytes by the kernel).
pub fn threads_cpu(prefixes: &[&str]) -> Option<Duration> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = entry.path();
        let Ok(name) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        if let Some((t, _)) = cpu_of(&dir.join("stat").to_string_lossy(), false) {
            total += t;
        }
    }
    Some(to_duration(total))
}

/// CPU time of a process, its reaped children and its live children: a PostgreSQL postmaster
/// and its backends (which exit and are reaped when the pool closes).
pub fn tree_cpu(pid: u32) -> Option<Duration> {
    let (mut total, _) = cpu_of(&format!("/proc/{pid}/stat"), true)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((t, Some(ppid))) = cpu_of(&format!("/proc/{child}/stat"), true) {
            if ppid == pid {
                total += t;
            }
        }
    }
    Some(to_duration(total))
}

fn status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Peak resident set size (VmHWM) in bytes since the start or the last [`reset_peak_rss`].
pub fn peak_rss() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// Current resident set size (VmRSS) in bytes.
pub fn current_rss() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so each scenario reports its own peak.
/// False when the kernel refuses; the peak then covers the whole process lifetime.
pub fn reset_peak_rss() -> bool {
    // Memory an earlier scenario of the same run freed would otherwise still count.
    crate::memory::release_free_memory();
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A CPU reading: whole process, in-process simulator threads, and the database server.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSample {
    pub process: Option<Duration>,
    pub simulator: Option<Duration>,
    /// sqlx's SQLite worker threads, where SQLite itself runs (part of the collector).
    pub sqlite: Option<Duration>,
    pub server: Option<Duration>,
}

/// Thread names of actix-web's acceptor and worker (an actix-rt arbiter, "actix-rt|system:0|
/// arbiter:N") threads. The collector runs on the main thread, its DbWriter's arbiter (renamed
/// "amc-db-writer"), sqlx-sqlite workers and tokio's blocking pool, so in the benchmark these
/// threads are the simulator's.
const SIMULATOR_THREADS: &[&str] = &["actix-server", "actix-rt|system"];
const SQLITE_THREADS: &[&str] = &["sqlx-sqlite-wor"];

impl CpuSample {
    pub fn now(server_pid: Option<u32>) -> Self {
        Self {
            process: process_cpu(),
            simulator: threads_cpu(SIMULATOR_THREADS),
            sqlite: threads_cpu(SQLITE_THREADS),
            server: server_pid.and_then(tree_cpu),
        }
    }

    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &CpuSample) -> CpuSample {
        let diff = |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?));
        CpuSample {
            process: diff(self.process, earlier.process),
            simulator: diff(self.simulator, earlier.simulator),
            sqlite: diff(self.sqlite, earlier.sqlite),
            server: diff(self.server, earlier.server),
        }
    }

    /// "cpu 1.23 s/1000 weeks (collector 0.90 [sqlite 0.40] + in-process simulator 0.33;
    /// postgres server 0.50)". SQLite's share is only shown when its threads did work.
    pub fn per_thousand(&self, weeks: u64) -> String {
        let per = |d: Duration| d.as_secs_f64() * 1000.0 / weeks.max(1) as f64;
        let Some(process) = self.process else {
            return "cpu n/a".into();
        };
        let mut text = format!("cpu {:.2} s/1000 weeks", per(process));
        if let Some(sim) = self.simulator {
            text.push_str(&format!(
                " (collector {:.2}",
                per(process.saturating_sub(sim))
            ));
            if let Some(sqlite) = self.sqlite.filter(|d| !d.is_zero()) {
                text.push_str(&format!(", of which SQLite threads {:.2}", per(sqlite)));
            }
            text.push_str(&format!(" + in-process simulator {:.2}", per(sim)));
            if let Some(server) = self.server {
                text.push_str(&format!("; postgres server {:.2}", per(server)));
            }
            text.push(')');
        }
        text
    }
}

/// What a peak RSS figure covers when [`reset_peak_rss`] returned `reset`.
pub fn peak_note(reset: bool) -> &'static str {
    if reset {
        ""
    } else {
        " (since process start)"
    }
}

/// "123 MB" or "n/a".
pub fn megabytes(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "n/a".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_command_name_with_spaces_and_parentheses() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 7 3 2 1 20 0 1 0";
        let fields = stat_fields(line).unwrap();
        assert_eq!(fields[0], "S");
        assert_eq!(fields[1], "1");
        assert_eq!(ticks(&fields, 11), 7);
        assert_eq!(ticks(&fields, 12), 3);
        assert_eq!(ticks(&fields, 13), 2);
    }

    #[test]
    fn this_process_has_cpu_time_and_a_peak_rss() {
        assert!(process_cpu().is_some());
        assert!(peak_rss().unwrap() > 0);
        assert!(current_rss().unwrap() <= peak_rss().unwrap() + 4096 * 1024);
    }
}
