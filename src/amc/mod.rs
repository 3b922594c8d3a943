//! The AMC HTTP client: the only code in the crate that talks to Amazon Marketing Cloud.
//!
//! Codemap:
//! - `config`: `Region`, `InstanceRef`, `AmcClientConfig`.
//! - `types`: execution request/reply types and their JSON mapping.
//! - `window`: `window_matches`, matching a reported execution to a submitted window.
//! - `executions`: create, get, list, find, cancel.
//! - `download`: pre-signed result downloads.
//! - `metadata`: AMC's result metadata file, read leniently (row count, column names).
//! - `listing`: `downloadUrls` over every page, and whether an empty list means "no rows".
//! - `http`: one authenticated API call and its reply classification.
//! - `bearer`: a set's cached access token and the `Authorization` header it gives.
//! - `token`: Login-with-Amazon access-token refresh into that cache.
//! - `credentials`: the "credentials failing" state (outage, backoff) a failed refresh enters.
//! - `credential_sets`: one token and one outage state per credential set (`[amc]`'s and the
//!   named ones an instance links to), and where a set's secrets are read from.
//! - `retry`: backoff, `Retry-After`, and the global rate limiter.
//! - `stats`: request counters.
//!
//! **Invariant:** secrets live only in `SecretString`s and in `Authorization` headers marked
//! sensitive; no error, log line or `Debug` output contains them.
//!
//! **Retry of create:** a `POST` create is retried only after AMC answered 429 or 5xx (the request
//! was refused or processed with a status line). After a timeout, a dropped connection or an
//! undecodable 2xx body the execution may exist, so the call returns `Timeout`, `Transport` or
//! `Decode` at once and the caller adopts the execution with `find_execution`.

mod bearer;
mod config;
mod credential_sets;
mod credentials;
mod download;
mod error;
mod executions;
mod http;
mod listing;
mod metadata;
mod retry;
mod stats;
mod token;
mod types;
mod window;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use secrecy::SecretString;
use url::Url;

pub use config::{AmcClientConfig, CredentialSource, InstanceRef, Region, SecretLocation};
pub use credential_sets::{
    read_secret, CredentialSetState, CredentialSetStatus, DEFAULT_CREDENTIAL_SET,
};
pub use credentials::{CredentialsSnapshot, CREDENTIALS_BACKOFF_CAP};
pub use download::{url_is_allowed, FileEvent};
pub use error::AmcError;
pub use listing::ResultListing;
pub use metadata::ResultMetadata;
pub use stats::{AmcStats, Endpoint, EndpointStats};
pub use types::{
    CreateExecution, ExecutionInfo, ExecutionStatus, ListFilter, OutputChannel, TimeWindow,
    WorkflowSpec,
};
pub use window::window_matches;

/// Bound on connection setup, separate from the per-attempt deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Cheap to clone: every clone shares one connection pool, token cache, rate limiter and stats.
#[derive(Clone)]
pub struct AmcClient {
    inner: Arc<Inner>,
}

/// Shared state behind `AmcClient`; the submodules add `impl Inner` blocks for their concern.
pub(crate) struct Inner {
    /// For AMC API and token calls: no redirects, since AMC never redirects legitimately.
    api_http: reqwest::Client,
    /// For pre-signed downloads: no default headers, redirects allowed.
    download_http: reqwest::Client,
    base_url_override: Option<Url>,
    token_url: Url,
    /// `[amc]`'s client id and secret: the `default` set's, and any set's that names none.
    client_id: String,
    client_secret: SecretString,
    request_timeout: Duration,
    max_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_result_bytes: u64,
    download_file_deadline: Duration,
    limiter: retry::RateLimiter,
    counters: stats::Counters,
    /// One token cache and outage state per credential set, readable without awaiting.
    sets: credential_sets::CredentialSets,
}

impl AmcClient {
    /// Validates `config` and builds the client; no network traffic happens here.
    pub fn new(config: AmcClientConfig) -> Result<Self, AmcError> {
        config.validate()?;
        let base_url_override = match &config.base_url_override {
            Some(raw) => Some(config::parse_http_url("base_url_override", raw)?),
            None => None,
        };
        let token_url = config::parse_http_url("token_url", &config.token_url)?;
        HeaderValue::from_str(&config.client_id)
            .map_err(|_| AmcError::InvalidConfig("client_id is not a valid header value".into()))?;
        let build_error = |e: reqwest::Error| AmcError::InvalidConfig(format!("http client: {e}"));
        let api_http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(build_error)?;
        let download_http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(download::redirect_policy())
            .build()
            .map_err(build_error)?;
        let inner = Inner {
            api_http,
            download_http,
            base_url_override,
            token_url,
            client_id: config.client_id,
            client_secret: config.client_secret,
            request_timeout: config.request_timeout,
            max_retries: config.max_retries,
            backoff_base: config.backoff_base,
            backoff_max: config.backoff_max,
            max_result_bytes: config.max_result_bytes,
            download_file_deadline: config.download_file_deadline,
            limiter: retry::RateLimiter::new(config.max_requests_per_second),
            counters: stats::Counters::default(),
            sets: credential_sets::CredentialSets::new(config.refresh_token),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> AmcStats {
        self.inner.counters.snapshot()
    }

    /// When the `[amc]` set's cached access token expires; `None` before its first refresh.
    pub fn token_expires_at(&self) -> Option<DateTime<Utc>> {
        self.inner.sets.default.expiry()
    }

    /// Whether Login-with-Amazon is refusing or failing the `[amc]` set's token refreshes (and
    /// since when, why, when it is asked next). Synchronous: safe to call from an actor handler.
    pub fn credentials(&self) -> CredentialsSnapshot {
        self.inner.sets.default.credentials.snapshot()
    }

    /// Every credential set's state, `default` (`[amc]`) first. Synchronous.
    pub fn credential_sets(&self) -> Vec<CredentialSetStatus> {
        self.inner.sets.statuses()
    }

    /// Makes a stored credential set known before any call uses it, so that status shows it;
    /// one whose secrets cannot be read is unavailable from now on (its reason returned).
    pub fn register_credential_set(&self, source: &CredentialSource) -> Option<String> {
        let (set, created) = self.inner.sets.register(source);
        if !created {
            return None;
        }
        self.inner
            .sets
            .check_unavailable(&set, &self.inner.client_id, &self.inner.client_secret)
    }
}

impl fmt::Debug for AmcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmcClient")
            .field(
                "base_url_override",
                &self.inner.base_url_override.as_ref().map(Url::as_str),
            )
            .field("client_id", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// `{base}/amc/reporting/{instanceId}/workflowExecutions[/{extra}...]`, segments escaped.
    pub(crate) fn executions_url(
        &self,
        instance: &InstanceRef,
        extra: &[&str],
    ) -> Result<Url, AmcError> {
        if instance.instance_id.trim().is_empty() || extra.iter().any(|s| s.trim().is_empty()) {
            return Err(AmcError::InvalidConfig(
                "instance id and execution id must not be empty".into(),
            ));
        }
        let mut url = match &self.base_url_override {
            Some(base) => base.clone(),
            None => Url::parse(instance.region.base_url())
                .map_err(|e| AmcError::InvalidConfig(format!("region url: {e}")))?,
        };
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|_| AmcError::InvalidConfig("base url cannot have a path".into()))?;
            segments.pop_if_empty();
            segments.extend(["amc", "reporting", instance.instance_id.as_str()]);
            segments.push("workflowExecutions");
            segments.extend(extra);
        }
        Ok(url)
    }
}
