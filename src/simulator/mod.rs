//! In-process fake of the Amazon Marketing Cloud reporting API, the Login-with-Amazon token
//! endpoint and the S3 host that serves results, on loopback, for the `simulate-amc` and `demo`
//! commands, integration tests and benchmarks.
//!
//! Codemap:
//! - `config`: [`SimulatorConfig`], the clap-flattenable knobs (timings, slots, faults).
//! - `state`: executions, switchable faults, tokens and URL grants behind one lock.
//! - `scheduler`: the lazily replayed slot scheduler (creates, cancels, the daily limit).
//! - `instance`: one instance's executions, PENDING queue and slot holders, as `state` keeps
//!   them and `scheduler` moves them.
//! - `stats`: [`SimulatorStats`], the counters tests and benchmarks read, and
//!   [`ReceivedExecution`], each create as received.
//! - `execution`: one execution's status timeline and JSON shape.
//! - `timeline`: how well a client keeps the slots busy (how late it sees runs end, idle slots).
//! - `download_faults`: malformed downloadUrls, cut-off files, S3 SlowDown, failed DOWNLOAD
//!   channels, HTTP-date `Retry-After`.
//! - `results`: [`expected_result_files`], the deterministic CSV results.
//! - `http`: routes, admission checks (faults → token → client id → account headers), replies;
//!   `http::list` pages the list endpoint, `http::s3` serves result files, `http::token` is LwA.
//!
//! **Invariant:** at most `max_running_per_instance` executions of an instance hold a slot
//! (RUNNING or PUBLISHING) at any instant; PENDING ones take freed slots in FIFO order.

mod config;
mod download_faults;
mod execution;
mod http;
mod instance;
mod result_content;
mod results;
mod scheduler;
mod state;
mod stats;
mod timeline;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{ServerHandle, Service};
use actix_web::{web, App, HttpServer};
use chrono::NaiveDate;

pub use config::{
    GrantRefusal, ReplyShape, SimulatorConfig, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_REFRESH_TOKEN,
};
pub use execution::VALIDATION_FAILURE;
pub use result_content::{large_result_summary, LargeFile, ResultContent};
pub use results::{expected_result_files, sql_workflow_key, without_repeated_headers};
pub use stats::{InstanceTimeline, ReceivedExecution, SimulatorStats};

use state::Shared;

/// How long a graceful stop waits for open connections. Clients keep idle keep-alive
/// connections, which would otherwise hold `stop` for actix's default 30 s.
const SHUTDOWN_TIMEOUT_SECS: u64 = 1;

/// Failure to start the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("could not bind the AMC simulator to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start the AMC simulator's HTTP server")]
    Serve(#[source] std::io::Error),
}

/// A running simulator. Dropping it stops the server without waiting; prefer [`Self::stop`].
pub struct SimulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: ServerHandle,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Changes fault injection while the simulator runs. Cheap to clone.
#[derive(Clone)]
pub struct SimulatorControl {
    shared: Arc<Shared>,
}

/// Binds `bind` (port 0 picks a free port) and serves the simulator on the current tokio
/// runtime, inside an `actix::System` or a plain `#[tokio::test]` alike.
pub async fn start(
    bind: SocketAddr,
    config: SimulatorConfig,
) -> Result<SimulatorHandle, SimulatorError> {
    let listener =
        TcpListener::bind(bind).map_err(|source| SimulatorError::Bind { addr: bind, source })?;
    let addr = listener.local_addr().map_err(SimulatorError::Serve)?;
    let shared = Arc::new(Shared::new(config));
    let data = web::Data::from(Arc::clone(&shared));
    let server = HttpServer::new(move || {
        let counted = data.clone();
        App::new()
            .app_data(data.clone())
            .wrap_fn(move |request, service| {
                if http::is_counted(request.path()) {
                    counted.requests_total.fetch_add(1, Ordering::Relaxed);
                }
                service.call(request)
            })
            .configure(http::configure)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)
    .map_err(SimulatorError::Serve)?
    .run();
    let server_handle = server.handle();
    let task = tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(error = %error, "AMC simulator server stopped with an error");
        }
    });
    tracing::info!(%addr, "AMC simulator listening");
    Ok(SimulatorHandle {
        addr,
        shared,
        server: server_handle,
        task: Some(task),
    })
}

impl SimulatorHandle {
    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// AMC API base URL, e.g. `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        let host = if self.addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], self.addr.port()))
        } else {
            self.addr
        };
        format!("http://{host}")
    }

    /// The Login-with-Amazon token endpoint of this simulator.
    pub fn token_url(&self) -> String {
        format!("{}/auth/o2/token", self.base_url())
    }

    /// A snapshot of the counters, with every instance's scheduler brought up to now.
    pub fn stats(&self) -> SimulatorStats {
        self.shared.stats_snapshot()
    }

    /// Every execution created so far as AMC received it (`sqlQuery`, `parameterValues`, ...),
    /// oldest first.
    pub fn received(&self) -> Vec<ReceivedExecution> {
        self.shared.received()
    }

    /// `(client_id, client_secret, refresh_token)` the token endpoint accepts.
    pub fn credentials(&self) -> (String, String, String) {
        self.shared.credentials()
    }

    /// A handle to change faults at run time.
    pub fn control(&self) -> SimulatorControl {
        SimulatorControl {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stops accepting connections, lets in-flight requests finish (bounded by a short
    /// timeout) and waits for the server task to end.
    pub async fn stop(mut self) {
        self.server.stop(true).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        if self.task.is_some() {
            // The stop command is sent synchronously; the returned future only awaits completion.
            drop(self.server.stop(false));
        }
    }
}

impl SimulatorControl {
    /// Probability (0..=1) that an AMC call answers 429.
    pub fn set_rate_429(&self, rate: f64) {
        self.shared.lock().faults.rate_429 = rate;
    }

    /// Probability (0..=1) that an AMC call answers 500/502/503.
    pub fn set_rate_5xx(&self, rate: f64) {
        self.shared.lock().faults.rate_5xx = rate;
    }

    /// Probability (0..=1) that a create reply omits `workflowExecutionId`.
    pub fn set_omit_id_rate(&self, rate: f64) {
        self.shared.lock().faults.omit_id_rate = rate;
    }

    /// Probability (0..=1) that a create is made and then answered 502.
    pub fn set_create_then_5xx_rate(&self, rate: f64) {
        self.shared.lock().faults.create_then_5xx_rate = rate;
    }

    /// New executions stay out of list replies for `lag`.
    pub fn set_list_lag(&self, lag: Duration) {
        self.shared.lock().faults.list_lag = lag;
    }

    /// AMC's daily limit: `limit` creates per instance within `window` (0 = none).
    pub fn set_daily_limit(&self, limit: u64, window: Duration) {
        let mut state = self.shared.lock();
        state.faults.daily_limit = limit;
        state.faults.daily_window = window;
    }

    /// Executions created from now on whose window starts on `start` end FAILED.
    pub fn fail_window(&self, start: NaiveDate) {
        self.shared.lock().faults.fail_windows.insert(start);
    }

    /// Executions created from now on whose window starts on `start` end REJECTED.
    pub fn reject_window(&self, start: NaiveDate) {
        self.shared.lock().faults.reject_windows.insert(start);
    }

    /// URLs issued from now on live `ttl`, and URLs already issued expire within `ttl` at the
    /// latest, so `Duration::ZERO` invalidates every outstanding URL.
    pub fn expire_urls_after(&self, ttl: Duration) {
        let deadline = Instant::now() + ttl;
        let mut state = self.shared.lock();
        state.faults.url_ttl = ttl;
        for grant in state.urls.values_mut() {
            grant.expires = grant.expires.min(deadline);
        }
    }

    /// The first `n` downloadUrls calls of each succeeded execution (counted from now) answer 200
    /// with a malformed body; 0 turns the fault off.
    pub fn set_malformed_download_urls(&self, n: u32) {
        self.shared
            .lock()
            .faults
            .download
            .malformed_urls_per_execution = n;
    }

    /// The first `n` downloads of each result file stop before their Content-Length.
    pub fn set_truncated_downloads(&self, n: u32) {
        self.shared.lock().faults.download.truncated_per_file = n;
    }

    /// The first `n` downloads of each result file answer S3's `503 SlowDown`.
    pub fn set_s3_slowdowns(&self, n: u32) {
        self.shared.lock().faults.download.slowdowns_per_file = n;
    }

    /// Executions created from now on whose window starts on `start` succeed with a FAILED
    /// DOWNLOAD output channel.
    pub fn fail_download_channel(&self, start: NaiveDate) {
        (self.shared.lock().faults.download.channel_fail_windows).insert(start);
    }

    /// What every succeeded execution serves as its result from now on.
    pub fn set_result_content(&self, content: ResultContent) {
        self.shared.lock().faults.download.content = content;
    }

    /// Whether result bodies trickle forever after their first half (a stalled download).
    pub fn set_stalled_downloads(&self, on: bool) {
        self.shared.lock().faults.download.stall_downloads = on;
    }

    /// downloadUrls from now on point at `http://{host}` (a plain-http, non-loopback host that
    /// is never contacted: the client must refuse the URL); `None` turns the fault off.
    pub fn set_insecure_download_urls(&self, host: Option<&str>) {
        self.shared.lock().faults.download.insecure_url_host = host.map(str::to_string);
    }

    /// Whether 429 replies give `Retry-After` as an HTTP date.
    pub fn set_retry_after_http_date(&self, on: bool) {
        self.shared.lock().faults.download.retry_after_http_date = on;
    }

    /// Whether downloadUrls lists a metadata file, and how far its row count is off the truth.
    pub fn set_metadata_files(&self, on: bool, row_skew: i64) {
        let mut state = self.shared.lock();
        state.faults.download.metadata_files = on;
        state.faults.download.metadata_row_skew = row_skew;
    }

    /// Later split files are served without their header line, or with it.
    pub fn set_headerless_continuation(&self, on: bool) {
        self.shared.lock().faults.download.headerless_continuation = on;
    }

    /// Whether `sqlQuery` echoes (get and list with includeWorkflow=true) are reformatted.
    pub fn set_echo_sql_reformatted(&self, on: bool) {
        self.shared.lock().faults.echo_sql_reformatted = on;
    }

    /// Revokes one refresh token (one credential set's login) and the access tokens granted
    /// for it: their next use gets 401 and the token endpoint refuses it with `invalid_grant`.
    /// The other refresh tokens keep working.
    pub fn revoke_refresh_token(&self, refresh_token: &str) {
        self.shared.lock().revoke_refresh_token(refresh_token);
    }

    /// Invalidates every access token issued so far; their next use gets 401.
    pub fn revoke_access_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// The token endpoint refuses every grant, as `kind` says, for `duration` from now
    /// (`Duration::ZERO` ends a refusal at once). Issued access tokens keep working unless
    /// revoked too, as a real outage would leave them.
    pub fn refuse_grants_for(&self, duration: Duration, kind: GrantRefusal) {
        self.shared.lock().faults.refuse_grants = Some((state::far_after(duration), kind));
    }
}

#[cfg(test)]
mod tests;
