//! Download-side faults of the simulator: malformed `downloadUrls` replies, result files cut off
//! before their Content-Length, S3 `503 SlowDown`, executions whose DOWNLOAD output channel
//! failed, executions AMC lost (downloadUrls 404), and `Retry-After` given as an HTTP date. Owns the switches (seeded from
//! `SimulatorConfig`, changed through `SimulatorControl`), what results are served (large,
//! hostile, trickling, behind insecure URLs) and the per-execution / per-file call
//! counts that decide which request meets a fault.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDate;

use super::config::SimulatorConfig;
use super::result_content::ResultContent;
use super::stats::SimulatorStats;

/// Text of the DOWNLOAD channel's `statusReason` when the fault is on.
pub(crate) const CHANNEL_FAILURE_REASON: &str =
    "Simulated delivery failure: results could not be written to the download location";

/// A malformed `downloadUrls` body, served in rotation.
const MALFORMED_BODIES: [(&str, &str); 4] = [
    ("application/json", "{\"metadataDownloadUrls\":[]}"),
    ("application/json", "{\"downloadUrls\":null}"),
    ("application/json", "{\"downloadUrls\":\"x\"}"),
    (
        "text/html",
        "<html><body>502 Bad Gateway (simulated)</body></html>",
    ),
];

/// What the S3 stand-in does with one download request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileFault {
    None,
    /// `503 SlowDown`, with `Retry-After: 1` when the flag is set.
    SlowDown {
        retry_after: bool,
    },
    /// The body stops before its declared Content-Length.
    Truncate,
}

/// Switches and counters of the download-side faults.
#[derive(Debug, Default)]
pub(crate) struct DownloadFaults {
    /// The first this-many downloadUrls calls of each succeeded execution are malformed.
    pub(crate) malformed_urls_per_execution: u32,
    /// The first this-many downloads of each file (after any SlowDowns) are cut off.
    pub(crate) truncated_per_file: u32,
    /// The first this-many downloads of each file are answered `503 SlowDown`.
    pub(crate) slowdowns_per_file: u32,
    /// Window start dates whose executions succeed with a FAILED DOWNLOAD channel.
    pub(crate) channel_fail_windows: BTreeSet<NaiveDate>,
    /// 429 replies give `Retry-After` as an HTTP date instead of delta-seconds.
    pub(crate) retry_after_http_date: bool,
    /// What every succeeded execution's result is (per window by default).
    pub(crate) content: ResultContent,
    /// Result bodies trickle forever after their first half (a stalled download).
    pub(crate) stall_downloads: bool,
    /// downloadUrls point at `http://{host}` (a non-loopback host the client must refuse).
    pub(crate) insecure_url_host: Option<String>,
    /// Executions still to be lost: the next this-many whose results are asked for.
    pub(crate) lost_executions: u32,
    /// Executions lost so far (their downloadUrls answer 404 for good).
    lost: BTreeSet<String>,
    /// How long after SUCCEEDED a result stays unpublished (DOWNLOAD channel PENDING).
    pub(crate) publish_lag: std::time::Duration,
    /// Most files listed per downloadUrls reply (0: all), the rest behind `nextToken`.
    pub(crate) urls_page_size: usize,
    /// Later files of a split result are served without the header line.
    pub(crate) headerless_continuation: bool,
    /// downloadUrls lists a metadata file of the result.
    pub(crate) metadata_files: bool,
    /// Added to the row count the metadata file states (a metadata file that disagrees).
    pub(crate) metadata_row_skew: i64,
    url_calls: HashMap<String, u32>,
    file_calls: HashMap<(String, usize), u32>,
}

impl DownloadFaults {
    pub(crate) fn new(config: &SimulatorConfig) -> Self {
        Self {
            malformed_urls_per_execution: config.malformed_download_urls,
            truncated_per_file: config.truncated_downloads,
            slowdowns_per_file: config.s3_slowdowns,
            channel_fail_windows: config
                .download_channel_fail_windows
                .iter()
                .copied()
                .collect(),
            retry_after_http_date: config.retry_after_http_date,
            lost_executions: config.lost_executions,
            publish_lag: std::time::Duration::from_millis(config.publish_lag_ms),
            urls_page_size: config.download_urls_page_size as usize,
            headerless_continuation: config.headerless_continuation,
            metadata_files: config.metadata_files,
            content: if config.large_result_kb > 0 {
                ResultContent::Large {
                    bytes: config.large_result_kb.saturating_mul(1024),
                    files: config.large_result_files.max(1),
                }
            } else {
                ResultContent::PerWindow
            },
            ..Self::default()
        }
    }

    /// The body (content type, text) to serve instead of a succeeded execution's URLs, if any.
    pub(crate) fn malformed_urls_reply(
        &mut self,
        execution: &str,
        stats: &mut SimulatorStats,
    ) -> Option<(&'static str, &'static str)> {
        // Counting only while the fault is on keeps fault-free runs (benchmarks) from growing maps.
        if self.malformed_urls_per_execution == 0 {
            return None;
        }
        let calls = self.url_calls.entry(execution.to_owned()).or_default();
        let n = *calls;
        *calls = calls.saturating_add(1);
        if n >= self.malformed_urls_per_execution {
            return None;
        }
        stats.served_malformed_download_urls += 1;
        // Rotating per execution, so each execution meets every shape in turn.
        MALFORMED_BODIES
            .get(n as usize % MALFORMED_BODIES.len())
            .copied()
    }

    /// Whether AMC lost `execution` (a SUCCEEDED one whose results are asked for): the first
    /// `lost_executions` asked about are lost, and stay lost.
    pub(crate) fn is_lost(&mut self, execution: &str, stats: &mut SimulatorStats) -> bool {
        if !self.lost.contains(execution) {
            if self.lost_executions == 0 {
                return false;
            }
            self.lost_executions -= 1;
            self.lost.insert(execution.to_owned());
        }
        stats.served_lost_executions += 1;
        true
    }

    /// What to do with this download of file `index` of `execution`.
    pub(crate) fn file_fault(
        &mut self,
        execution: &str,
        index: usize,
        stats: &mut SimulatorStats,
    ) -> FileFault {
        if self.slowdowns_per_file == 0 && self.truncated_per_file == 0 {
            return FileFault::None;
        }
        let calls = self
            .file_calls
            .entry((execution.to_owned(), index))
            .or_default();
        let n = *calls;
        *calls = calls.saturating_add(1);
        if n < self.slowdowns_per_file {
            // Alternate: S3 sends SlowDown both with and without Retry-After.
            let retry_after = stats.served_s3_slowdowns % 2 == 1;
            stats.served_s3_slowdowns += 1;
            return FileFault::SlowDown { retry_after };
        }
        if n - self.slowdowns_per_file < self.truncated_per_file {
            stats.served_truncated_downloads += 1;
            return FileFault::Truncate;
        }
        FileFault::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_replies_rotate_and_stop_after_n_calls_per_execution() {
        let mut faults = DownloadFaults {
            malformed_urls_per_execution: 5,
            ..DownloadFaults::default()
        };
        let mut stats = SimulatorStats::default();
        let served: Vec<_> = (0..6)
            .map(|_| faults.malformed_urls_reply("e1", &mut stats))
            .collect();
        assert_eq!(served[0], Some(MALFORMED_BODIES[0]));
        assert_eq!(served[3], Some(MALFORMED_BODIES[3]));
        assert_eq!(served[4], Some(MALFORMED_BODIES[0]));
        assert_eq!(served[5], None);
        assert!(faults.malformed_urls_reply("e2", &mut stats).is_some());
        assert_eq!(stats.served_malformed_download_urls, 6);
    }

    #[test]
    fn each_file_meets_its_slowdowns_then_its_truncations_then_is_served() {
        let mut faults = DownloadFaults {
            slowdowns_per_file: 2,
            truncated_per_file: 1,
            ..DownloadFaults::default()
        };
        let mut stats = SimulatorStats::default();
        let seen: Vec<_> = (0..4)
            .map(|_| faults.file_fault("e1", 0, &mut stats))
            .collect();
        assert_eq!(
            seen,
            vec![
                FileFault::SlowDown { retry_after: false },
                FileFault::SlowDown { retry_after: true },
                FileFault::Truncate,
                FileFault::None,
            ]
        );
        assert!(matches!(
            faults.file_fault("e1", 1, &mut stats),
            FileFault::SlowDown { .. }
        ));
        assert_eq!(stats.served_s3_slowdowns, 3);
        assert_eq!(stats.served_truncated_downloads, 1);
    }
}
