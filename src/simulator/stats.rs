//! The simulator's counters, exposed as a snapshot to in-process callers and as JSON on
//! `GET /__sim/stats` for out-of-process chaos tests.

use std::collections::BTreeMap;

/// Counters the tests and benchmarks read; a snapshot is returned by `SimulatorHandle::stats`
/// and `GET /__sim/stats`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimulatorStats {
    /// Executions created (a throttled or invalid create counts nothing).
    pub creates_total: u64,
    /// Key `instance|workflowKey|start|end|timeZone` with bounds as submitted (normalised).
    pub creates_per_window: BTreeMap<String, u64>,
    /// Most executions PENDING, RUNNING or PUBLISHING at once, per instance.
    pub max_in_flight_per_instance: BTreeMap<String, u64>,
    /// Most executions holding a slot (RUNNING or PUBLISHING) at once, per instance.
    pub max_running_per_instance: BTreeMap<String, u64>,
    /// AMC calls answered 429 by fault injection.
    pub served_429: u64,
    /// AMC calls answered 500/502/503 by fault injection.
    pub served_5xx: u64,
    /// AMC calls refused for a missing, unknown, expired or revoked access token.
    pub served_401: u64,
    /// Downloads refused with an expired or unknown signature.
    pub served_403_download: u64,
    /// Creates made and then answered 502 anyway.
    pub creates_answered_5xx: u64,
    /// Creates refused for the daily limit.
    pub daily_limit_refusals: u64,
    /// AMC calls answered a bare 429 (no `Retry-After`) by `--rate-429-bare`.
    pub served_bare_429: u64,
    /// Executions created to fail validation (`--fail-validation-sql`).
    pub served_validation_failures: u64,
    /// Most creates of one instance within the daily window.
    pub max_creates_per_daily_window: u64,
    /// Create replies sent without `workflowExecutionId`.
    pub omitted_ids: u64,
    /// Successful cancels.
    pub cancels: u64,
    /// Access tokens issued by the token endpoint.
    pub token_refreshes: u64,
    /// Grants refused by the "LwA refuses grants" fault.
    pub token_refusals: u64,
    /// Every request except the `/__sim/stats` and `/__sim/reset-stats` endpoints.
    pub requests_total: u64,
    /// Admitted GETs of one execution.
    pub gets: u64,
    /// Admitted list calls.
    pub lists: u64,
    /// Admitted downloadUrls calls, successful or not.
    pub download_url_requests: u64,
    /// Result files served.
    pub downloads: u64,
    /// downloadUrls calls answered 200 with a malformed body by fault injection.
    pub served_malformed_download_urls: u64,
    /// Result downloads cut off before their Content-Length by fault injection.
    pub served_truncated_downloads: u64,
    /// Result downloads answered S3 `503 SlowDown` by fault injection.
    pub served_s3_slowdowns: u64,
    /// Replies (get or downloadUrls) reporting a FAILED DOWNLOAD output channel.
    pub served_download_channel_failures: u64,
    /// downloadUrls calls answered 404 for an execution AMC lost (the lost-executions fault).
    pub served_lost_executions: u64,
    /// 429 replies whose `Retry-After` was an HTTP date.
    pub served_retry_after_dates: u64,
    /// Execution objects whose `sqlQuery` echo was served reformatted.
    pub echoed_sql_reformatted: u64,
    /// Create and get replies whose execution carried hostile text (the hostile-text fault).
    pub served_hostile_text: u64,
    /// Result files served from a generated large result.
    pub served_large_results: u64,
    /// Result files served from files a test supplied.
    pub served_custom_results: u64,
    /// Result bodies that trickled forever by fault injection.
    pub served_stalled_downloads: u64,
    /// downloadUrls replies listing no file because the result was not published yet.
    pub served_unpublished_download_urls: u64,
    /// downloadUrls replies that left files for a next page (carrying `nextToken`).
    pub served_download_url_pages: u64,
    /// Result metadata files served.
    pub served_metadata_files: u64,
    /// Later split files served without their header line (headerless continuation).
    pub served_headerless_files: u64,
    /// downloadUrls replies pointing at a plain-http non-loopback host by fault injection.
    pub served_insecure_download_urls: u64,
    /// Executions a GET has reported ended (created since the last stats reset).
    pub seen_ended: u64,
    /// Sum over those of how long after its end a GET first reported it: polling's delay.
    pub seen_ended_delay_ms: u64,
    /// Per instance, how its executions created since the last stats reset used the slots.
    pub timeline_per_instance: BTreeMap<String, InstanceTimeline>,
}

/// How an instance's slots were used by the executions created since the last stats reset;
/// times in milliseconds since that reset (or since the simulator started).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct InstanceTimeline {
    /// Slot time left unused while the client still had executions to start: the integral of
    /// free slots from the first start to the last start, in slot-milliseconds.
    pub idle_ms: u64,
    /// Slot time the executions held (their runs), in slot-milliseconds.
    pub work_ms: u64,
    pub first_start_ms: u64,
    pub last_start_ms: u64,
    /// When the last slot was released.
    pub last_end_ms: u64,
}

/// One execution as AMC received its create: what tests compare with what the collector
/// should have sent (`SimulatorHandle::received`, `GET /__sim/executions`), in creation order.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReceivedExecution {
    pub workflow_execution_id: String,
    pub instance: String,
    pub workflow_id: String,
    /// `workflow.sqlQuery` exactly as received (inline SQL only).
    pub sql_query: Option<String>,
    /// `parameterValues` exactly as received, when the create carried them.
    pub parameter_values: Option<serde_json::Value>,
    /// `timeWindowStart` as submitted (normalised to `yyyy-MM-ddTHH:mm:ss`).
    pub time_window_start: String,
}
