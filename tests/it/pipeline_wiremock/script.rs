//! What the scripted AMC of `fake_amc` does beyond the happy path: create faults, reply shapes,
//! FAILED windows, result files, lagging lists and expiring URLs.

use std::collections::HashMap;

use chrono::NaiveDate;

/// An answer AMC gives to a create instead of creating the execution.
#[derive(Debug, Clone, Copy)]
pub enum CreateFault {
    /// 429 with `Retry-After: 0`.
    Throttled,
    /// 500 with a JSON error body.
    ServerError,
}

/// What the fake AMC does beyond the happy path. Windows are keyed by their first day.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Answered, in order, to the first creates of every window before one succeeds.
    pub create_faults: Vec<CreateFault>,
    /// Create replies (2xx) leave out `workflowExecutionId`; the execution exists all the same.
    pub omit_create_id: bool,
    /// A new execution is missing from this many listings before it shows (AMC lists lag).
    pub list_lag: u32,
    /// Create and get replies come as `{"workflowExecution": {...}}`.
    pub wrap_replies: bool,
    /// Status listings (those asking for a page size) are answered 403: every status is then
    /// read with a GET.
    pub refuse_status_listings: bool,
    /// GET answers RUNNING this many times before the terminal status.
    pub running_polls: u32,
    /// Executions of these windows end FAILED with this `statusReason`.
    pub fail_windows: HashMap<NaiveDate, String>,
    /// Result files of these windows; every other window gets `default_files`.
    pub files: HashMap<NaiveDate, Vec<Vec<u8>>>,
    /// The first URLs handed out for an execution are already expired (S3 answers 403).
    pub expire_first_urls: bool,
    /// Executions of these windows stay in a status the client does not know, forever.
    pub unknown_status_windows: Vec<NaiveDate>,
}

impl Script {
    /// The files a window's execution serves, in `downloadUrls` order.
    pub fn files_for(&self, week_start: NaiveDate) -> Vec<Vec<u8>> {
        self.files
            .get(&week_start)
            .cloned()
            .unwrap_or_else(|| default_files(week_start))
    }
}

/// One CSV file of two data rows whose content depends on the week, so checksums differ.
pub fn default_files(week_start: NaiveDate) -> Vec<Vec<u8>> {
    let day = week_start.format("%Y-%m-%d");
    vec![format!("campaign,week,impressions\nalpha,{day},10\nbeta,{day},20\n").into_bytes()]
}
