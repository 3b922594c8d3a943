//! Simulator configuration: every knob of the fake AMC (timings, slot limit, fault rates, accepted
//! credentials, result sizes) as one clap `Args` struct the CLI can flatten.

use chrono::NaiveDate;
use secrecy::SecretString;

/// Default accepted Login-with-Amazon client id.
pub const DEFAULT_CLIENT_ID: &str = "amzn1.application-oa2-client.sim";
/// Default accepted client secret.
pub const DEFAULT_CLIENT_SECRET: &str = "sim-secret";
/// Default accepted refresh token.
pub const DEFAULT_REFRESH_TOKEN: &str = "Atzr|sim-refresh";

/// How create and get replies carry the execution object. The official model wraps it in
/// `{"workflowExecution": {...}}` while the samples show it at top level; clients must accept both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplyShape {
    /// The execution object is the whole body.
    TopLevel,
    /// The body is `{"workflowExecution": {...}}`.
    Wrapped,
    /// Replies alternate between the two shapes, starting with top level.
    Mixed,
}

/// How the token endpoint refuses grants while the "LwA refuses grants" fault is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GrantRefusal {
    /// 400 `invalid_grant` (a rotated or revoked refresh token).
    InvalidGrant,
    /// 401 `invalid_client` (a rotated client secret).
    InvalidClient,
    /// 503 (an LwA incident).
    Unavailable,
}

/// Configuration of the AMC simulator. Durations are short by default so tests and benchmarks
/// run fast; the shape of the lifecycle is the real one.
#[derive(Clone, Debug, clap::Args)]
pub struct SimulatorConfig {
    /// Minimum time an execution stays PENDING even when a slot is free, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub pending_ms: u64,
    /// Time an execution spends RUNNING once it holds a slot, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub running_ms: u64,
    /// Time an execution spends PUBLISHING (still holding its slot), in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub publishing_ms: u64,
    /// Plus/minus jitter applied to `running_ms`, in percent (0..=100); deterministic per
    /// seed and execution id.
    #[arg(long, default_value_t = 0.0)]
    pub duration_jitter_pct: f64,
    /// Number of executions per instance that may hold a slot (RUNNING or PUBLISHING) at once;
    /// the rest wait PENDING in FIFO order.
    #[arg(long, default_value_t = 10)]
    pub max_running_per_instance: u64,
    /// Probability (0..=1) that any AMC API call answers 429 Too Many Requests.
    #[arg(long, default_value_t = 0.0)]
    pub rate_429: f64,
    /// Value of the `Retry-After` header on 429 replies, in seconds.
    #[arg(long, default_value_t = 1)]
    pub retry_after_secs: u64,
    /// Probability (0..=1) that any AMC API call answers 500, 502 or 503 (rotating).
    #[arg(long, default_value_t = 0.0)]
    pub rate_5xx: f64,
    /// Probability (0..=1) that a successful create reply omits `workflowExecutionId`; the
    /// execution is created anyway.
    #[arg(long, default_value_t = 0.0)]
    pub omit_id_rate: f64,
    /// Probability (0..=1) that a create is made and then answered 502 anyway, as a load
    /// balancer does when AMC answers late.
    #[arg(long, default_value_t = 0.0)]
    pub create_then_5xx_rate: f64,
    /// How long a new execution stays out of list replies, in milliseconds (list lag).
    #[arg(long, default_value_t = 0)]
    pub list_lag_ms: u64,
    /// Zone in which list reads `minCreationTime`/`maxCreationTime` when the request gives no
    /// `timeZone` (AMC does not promise UTC).
    #[arg(long, default_value = "UTC")]
    pub list_default_zone: String,
    /// AMC's daily limit: creates per instance within `daily_window_ms` (0 = none); a create
    /// over it is refused 429 without `Retry-After`, naming the limit.
    #[arg(long, default_value_t = 0)]
    pub daily_limit: u64,
    /// The rolling window of `daily_limit`, in milliseconds.
    #[arg(long, default_value_t = 86_400_000)]
    pub daily_window_ms: u64,
    /// Window start dates (YYYY-MM-DD, local to the submitted zone) whose executions end FAILED.
    #[arg(long, value_name = "YYYY-MM-DD", value_delimiter = ',')]
    pub fail_windows: Vec<NaiveDate>,
    /// Window start dates (YYYY-MM-DD, local to the submitted zone) whose executions end REJECTED
    /// with AMC's overlap text.
    #[arg(long, value_name = "YYYY-MM-DD", value_delimiter = ',')]
    pub reject_windows: Vec<NaiveDate>,
    /// Lifetime of pre-signed download URLs, in milliseconds (AMC: 10 minutes).
    #[arg(long, default_value_t = 600_000)]
    pub url_ttl_ms: u64,
    /// Lifetime of issued access tokens (`expires_in`), in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl_secs: u64,
    /// The token endpoint refuses every grant for this long after start, in milliseconds
    /// (0: never); access tokens already issued keep working.
    #[arg(long, default_value_t = 0)]
    pub refuse_grants_ms: u64,
    /// How grants are refused while `refuse_grants_ms` lasts.
    #[arg(long, value_enum, default_value_t = GrantRefusal::InvalidGrant)]
    pub refuse_grants_kind: GrantRefusal,
    /// Login-with-Amazon client id the simulator accepts.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    pub client_id: String,
    /// Client secret the simulator accepts.
    #[arg(long, default_value = DEFAULT_CLIENT_SECRET, value_parser = parse_secret, hide_default_value = true)]
    pub client_secret: SecretString,
    /// Refresh token the simulator accepts.
    #[arg(long, default_value = DEFAULT_REFRESH_TOKEN, value_parser = parse_secret, hide_default_value = true)]
    pub refresh_token: SecretString,
    /// Another refresh token the simulator accepts (one per credential set; repeatable).
    #[arg(long = "extra-refresh-token", value_name = "TOKEN", value_parser = parse_secret)]
    pub extra_refresh_tokens: Vec<SecretString>,
    /// A refresh token revoked from the start: refused with 400 `invalid_grant` (repeatable;
    /// `POST /__sim/revoke-refresh-token` revokes one while running).
    #[arg(long = "revoke-refresh-token", value_name = "TOKEN", value_parser = parse_secret)]
    pub revoke_refresh_tokens: Vec<SecretString>,
    /// Seed of every random decision (faults, omitted ids, duration jitter).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Shape of create and get replies.
    #[arg(long, value_enum, default_value_t = ReplyShape::Mixed)]
    pub reply_shape: ReplyShape,
    /// Multiplier of result row counts (0 gives header-only files), dimensionless.
    #[arg(long, default_value_t = 1.0)]
    pub rows_scale: f64,
    /// The first N downloadUrls calls of each succeeded execution answer 200 with a malformed body
    /// (no `downloadUrls`, null, a string, non-JSON; in rotation).
    #[arg(long, default_value_t = 0)]
    pub malformed_download_urls: u32,
    /// The first N downloads of each result file stop before the declared Content-Length.
    #[arg(long, default_value_t = 0)]
    pub truncated_downloads: u32,
    /// Every succeeded execution's result is a generated CSV of this many KiB (0 = the small
    /// per-window results), streamed without being held in memory.
    #[arg(long, default_value_t = 0)]
    pub large_result_kb: u64,
    /// Number of files the large result is split into.
    #[arg(long, default_value_t = 1)]
    pub large_result_files: u32,
    /// The first N downloads of each result file answer S3's `503 SlowDown` (every second one
    /// with `Retry-After: 1`).
    #[arg(long, default_value_t = 0)]
    pub s3_slowdowns: u32,
    /// Window start dates (YYYY-MM-DD) whose executions succeed but report a FAILED DOWNLOAD
    /// output channel, and whose downloadUrls stay "unavailable for download".
    #[arg(long, value_name = "YYYY-MM-DD", value_delimiter = ',')]
    pub download_channel_fail_windows: Vec<NaiveDate>,
    /// The first N executions whose results are asked for are lost: AMC no longer has them, and
    /// their downloadUrls answer 404 "Workflow execution ... not found" although they SUCCEEDED.
    #[arg(long, default_value_t = 0)]
    pub lost_executions: u32,
    /// 429 replies give `Retry-After` as an HTTP date instead of seconds.
    #[arg(long, default_value_t = false)]
    pub retry_after_http_date: bool,
    /// Echo `sqlQuery` (get and list with includeWorkflow=true) reformatted: same tokens and
    /// literals, different whitespace, as AMC does not promise a byte-identical echo.
    #[arg(long, default_value_t = false)]
    pub echo_sql_reformatted: bool,
    /// Execution ids, the status of PENDING executions and every `statusReason` carry hostile
    /// text: a newline followed by a forged log line, an ESC sequence and a bidi override.
    #[arg(long, default_value_t = false)]
    pub hostile_text: bool,
    /// Probability (0..=1) that any AMC API call answers a bare 429: no `Retry-After`, the
    /// `amazon-advertising-api-throttled: true` header and a plain "Too Many Requests" body, as
    /// the Ads API throttles (observed in public client issue threads).
    #[arg(long, default_value_t = 0.0)]
    pub rate_429_bare: f64,
    /// SQL substrings: an inline query containing one is accepted at create and FAILED in
    /// validation moments later, every time, with the same `statusReason`.
    #[arg(long, value_name = "SUBSTRING")]
    pub fail_validation_sql: Vec<String>,
    /// HTTP status of the daily limit's refusal (`--daily-limit`); AMC's is not documented.
    #[arg(long, default_value_t = 429)]
    pub daily_limit_status: u16,
    /// Message of the daily limit's refusal (default: one naming the limit per day).
    #[arg(long)]
    pub daily_limit_message: Option<String>,
    /// For this long after an execution SUCCEEDED its DOWNLOAD channel is PENDING and
    /// downloadUrls lists no file (AMC publishes results after the run ends), in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub publish_lag_ms: u64,
    /// downloadUrls lists at most this many files per reply and pages on with `nextToken`
    /// (0: every file in one reply).
    #[arg(long, default_value_t = 0)]
    pub download_urls_page_size: u32,
    /// Split results are served as AMC may write them: only the first file has the header line,
    /// the later files start with data.
    #[arg(long, default_value_t = false)]
    pub headerless_continuation: bool,
    /// downloadUrls lists one metadata file (`metadataDownloadUrls`) saying the result's data
    /// row count and column names.
    #[arg(long, default_value_t = false)]
    pub metadata_files: bool,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            pending_ms: 50,
            running_ms: 200,
            publishing_ms: 50,
            duration_jitter_pct: 0.0,
            max_running_per_instance: 10,
            rate_429: 0.0,
            retry_after_secs: 1,
            rate_5xx: 0.0,
            omit_id_rate: 0.0,
            create_then_5xx_rate: 0.0,
            list_lag_ms: 0,
            list_default_zone: "UTC".to_owned(),
            daily_limit: 0,
            daily_window_ms: 86_400_000,
            fail_windows: Vec::new(),
            reject_windows: Vec::new(),
            url_ttl_ms: 600_000,
            token_ttl_secs: 3600,
            refuse_grants_ms: 0,
            refuse_grants_kind: GrantRefusal::InvalidGrant,
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: SecretString::from(DEFAULT_CLIENT_SECRET),
            refresh_token: SecretString::from(DEFAULT_REFRESH_TOKEN),
            extra_refresh_tokens: Vec::new(),
            revoke_refresh_tokens: Vec::new(),
            seed: 42,
            reply_shape: ReplyShape::Mixed,
            rows_scale: 1.0,
            malformed_download_urls: 0,
            truncated_downloads: 0,
            large_result_kb: 0,
            large_result_files: 1,
            s3_slowdowns: 0,
            download_channel_fail_windows: Vec::new(),
            lost_executions: 0,
            retry_after_http_date: false,
            echo_sql_reformatted: false,
            hostile_text: false,
            rate_429_bare: 0.0,
            fail_validation_sql: Vec::new(),
            daily_limit_status: 429,
            daily_limit_message: None,
            publish_lag_ms: 0,
            download_urls_page_size: 0,
            headerless_continuation: false,
            metadata_files: false,
        }
    }
}

fn parse_secret(raw: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use secrecy::ExposeSecret;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimulatorConfig,
    }

    #[test]
    fn clap_defaults_match_the_default_impl() {
        let parsed = Cli::parse_from(["sim"]).sim;
        let default = SimulatorConfig::default();
        assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
        assert_eq!(parsed.client_secret.expose_secret(), DEFAULT_CLIENT_SECRET);
    }

    #[test]
    fn repeatable_window_flags_and_kebab_case_names_parse() {
        let parsed = Cli::parse_from([
            "sim",
            "--running-ms",
            "5",
            "--fail-windows",
            "2024-01-01",
            "--fail-windows",
            "2024-01-08,2024-01-15",
            "--reply-shape",
            "top-level",
        ])
        .sim;
        assert_eq!(parsed.running_ms, 5);
        assert_eq!(parsed.fail_windows.len(), 3);
        assert_eq!(parsed.reply_shape, ReplyShape::TopLevel);
    }

    #[test]
    fn debug_output_does_not_print_secrets() {
        let text = format!("{:?}", SimulatorConfig::default());
        assert!(!text.contains(DEFAULT_CLIENT_SECRET));
        assert!(!text.contains(DEFAULT_REFRESH_TOKEN));
    }
}
