//! The faults the demo's AMC simulator injects: each is one entry of [`FAULTS`] saying what the
//! simulator does (printed once at the start), how it is turned on, and how the collector dealt
//! with it (told in the final summary from the simulator's own counts). A new simulator fault
//! joins the demo by one more entry here.

use crate::simulator::{SimulatorConfig, SimulatorStats};

use super::{DEMO_DAILY_LIMIT, DEMO_DAY_SECS};

/// One injected fault.
pub struct Fault {
    /// What the simulator does, said before the run.
    pub injects: &'static str,
    /// Turns it on in the simulator's configuration.
    pub enable: fn(&mut SimulatorConfig),
    /// How it went, from the simulator's counts after the run.
    pub handled: fn(&SimulatorStats) -> String,
}

/// Every fault the demo turns on. Only harmless ones: each is weathered without failing a week.
pub const FAULTS: &[Fault] = &[
    Fault {
        injects: "throttling: 5 % of API calls answered 429 with Retry-After 1 s",
        enable: |c| (c.rate_429, c.retry_after_secs) = (0.05, 1),
        handled: |s| {
            format!(
                "{} answered 429, each retried after its Retry-After",
                s.served_429
            )
        },
    },
    Fault {
        injects: "bare throttling: 3 % of API calls answered 429 without Retry-After",
        enable: |c| c.rate_429_bare = 0.03,
        handled: |s| {
            format!(
                "{} answered so, each retried with backoff as throttling (never read as the daily limit)",
                s.served_bare_429
            )
        },
    },
    Fault {
        injects: "server errors: 3 % of API calls answered 5xx",
        enable: |c| c.rate_5xx = 0.03,
        handled: |s| format!("{} answered 5xx, retried with backoff", s.served_5xx),
    },
    Fault {
        injects: "creates made on AMC but answered 502 (5 %)",
        enable: |c| c.create_then_5xx_rate = 0.05,
        handled: |s| {
            format!(
                "{} happened; each found by listing AMC's executions and adopted, none sent twice",
                s.creates_answered_5xx
            )
        },
    },
    Fault {
        injects: "create replies without an execution id (5 %)",
        enable: |c| c.omit_id_rate = 0.05,
        handled: |s| {
            format!(
                "{} happened; each found by listing and adopted",
                s.omitted_ids
            )
        },
    },
    Fault {
        injects: "an executions list 200 ms behind, reading unzoned times as Los Angeles time",
        enable: |c| {
            c.list_lag_ms = 200;
            c.list_default_zone = "America/Los_Angeles".into();
        },
        handled: |s| format!("{} listings matched in the instance's time zone", s.lists),
    },
    Fault {
        injects: "a daily limit of executions per instance (12 per simulated 3 s day)",
        enable: |c| (c.daily_limit, c.daily_window_ms) = (DEMO_DAILY_LIMIT, DEMO_DAY_SECS * 1000),
        handled: |s| {
            format!(
                "at most {} creates in a day (counted by the collector beforehand), {} refused by AMC",
                s.max_creates_per_daily_window, s.daily_limit_refusals
            )
        },
    },
    Fault {
        injects: "a Login-with-Amazon outage: token refreshes refused for the first second",
        enable: |c| c.refuse_grants_ms = 1_000,
        handled: |s| {
            format!(
                "{} refreshes refused; AMC calls waited for a token, nothing failed",
                s.token_refusals
            )
        },
    },
    Fault {
        injects: "a malformed downloadUrls reply first for every result (no URLs, null, not JSON)",
        enable: |c| c.malformed_download_urls = 1,
        handled: |s| {
            format!(
                "{} served, each asked again (never stored as 0 rows)",
                s.served_malformed_download_urls
            )
        },
    },
    Fault {
        injects: "every result file cut off mid-transfer on an early download",
        enable: |c| c.truncated_downloads = 1,
        handled: |s| {
            format!(
                "{} cut off, downloaded again and stored whole (checksum of the whole files)",
                s.served_truncated_downloads
            )
        },
    },
    Fault {
        injects: "results published 500 ms after SUCCEEDED (the DOWNLOAD channel PENDING, no files listed)",
        enable: |c| c.publish_lag_ms = 500,
        handled: |s| {
            format!(
                "{} empty listings before publication, each asked again (never stored as 0 rows)",
                s.served_unpublished_download_urls
            )
        },
    },
    Fault {
        injects: "downloadUrls listing one file per page (nextToken)",
        enable: |c| c.download_urls_page_size = 1,
        handled: |s| format!("{} pages served, every one followed", s.served_download_url_pages),
    },
    Fault {
        injects: "split results whose later files start with data (no repeated header)",
        enable: |c| c.headerless_continuation = true,
        handled: |s| {
            format!(
                "{} such files, their first line stored as data under file 0's header",
                s.served_headerless_files
            )
        },
    },
    Fault {
        injects: "an S3 `503 SlowDown` on an early download of every result file",
        enable: |c| c.s3_slowdowns = 1,
        handled: |s| format!("{} served, retried after a pause", s.served_s3_slowdowns),
    },
];

/// The simulator's configuration with every fault of [`FAULTS`] on.
pub fn with_faults(mut config: SimulatorConfig) -> SimulatorConfig {
    for fault in FAULTS {
        (fault.enable)(&mut config);
    }
    config
}

/// The lines said before the run.
pub fn announcement() -> String {
    let mut text = String::from(
        "The simulator will inject these faults (the summary tells how each was handled):",
    );
    for fault in FAULTS {
        text.push_str("\n  - ");
        text.push_str(fault.injects);
    }
    text
}

/// The summary's lines, one per fault.
pub fn how_handled(stats: &SimulatorStats) -> String {
    let mut text = String::from("How each fault was handled:");
    for fault in FAULTS {
        text.push_str(&format!(
            "\n  - {}: {}",
            fault.injects,
            (fault.handled)(stats)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_is_announced_and_told_in_the_summary() {
        let stats = SimulatorStats::default();
        let (said, told) = (announcement(), how_handled(&stats));
        for fault in FAULTS {
            assert!(said.contains(fault.injects), "{said}");
            assert!(told.contains(fault.injects), "{told}");
        }
        assert_eq!(told.lines().count(), FAULTS.len() + 1);
    }

    #[test]
    fn the_faults_are_turned_on_in_the_simulator() {
        let config = with_faults(SimulatorConfig::default());
        assert_eq!(config.refuse_grants_ms, 1_000);
        assert_eq!(config.daily_limit, DEMO_DAILY_LIMIT);
        assert_eq!(config.truncated_downloads, 1);
        let said = format!("{DEMO_DAILY_LIMIT} per simulated {DEMO_DAY_SECS} s day");
        assert!(FAULTS.iter().any(|f| f.injects.contains(&said)), "{said}");
    }
}
