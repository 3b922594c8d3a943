//! Client configuration and instance addressing: which host, which credentials, how hard to retry.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::AmcError;

/// The Amazon Ads API region hosting an AMC instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Na,
    Eu,
    Fe,
}

impl Region {
    /// The official Amazon Ads API host of the region (the only hosts serving the current AMC API).
    pub fn base_url(&self) -> &'static str {
        match self {
            Region::Na => "https://advertising-api.amazon.com",
            Region::Eu => "https://advertising-api-eu.amazon.com",
            Region::Fe => "https://advertising-api-fe.amazon.com",
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Region::Na => "na",
            Region::Eu => "eu",
            Region::Fe => "fe",
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Region {
    type Err = AmcError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "na" => Ok(Region::Na),
            "eu" => Ok(Region::Eu),
            "fe" => Ok(Region::Fe),
            _ => Err(AmcError::InvalidConfig(format!(
                "unknown region {s:?} (expected na, eu or fe)"
            ))),
        }
    }
}

// Deserialisation goes through `FromStr` so config files accept "NA" as well as "na".
impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// The identity of one AMC instance as the API needs it on every call.
#[derive(Clone, Debug)]
pub struct InstanceRef {
    pub instance_id: String,
    /// AMC account (entity) id sent as `Amazon-Advertising-API-AdvertiserId`.
    pub advertiser_id: String,
    pub marketplace_id: String,
    pub region: Region,
    /// The credential set whose token the instance's calls carry; `None` is the `[amc]` set.
    pub credentials: Option<Arc<CredentialSource>>,
}

/// Where one secret of a credential set is read from: the secret itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretLocation {
    /// An environment variable of the process that refreshes the token (the daemon).
    Env(String),
    /// A file whose content (trimmed) is the secret.
    File(PathBuf),
}

impl fmt::Display for SecretLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretLocation::Env(name) => write!(f, "env {name}"),
            SecretLocation::File(path) => write!(f, "file {}", path.display()),
        }
    }
}

/// A named Login-with-Amazon credential set (one advertiser's login): where its refresh token
/// and, optionally, its client id and secret are read from (absent ones are `[amc]`'s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialSource {
    pub name: String,
    pub refresh_token: SecretLocation,
    pub client_id: Option<SecretLocation>,
    pub client_secret: Option<SecretLocation>,
}

/// Everything the client needs; secrets stay wrapped so `Debug` prints them redacted. It has no
/// defaults of its own: `Settings::client_config` builds it from the configuration, which holds
/// them.
#[derive(Clone, Debug)]
pub struct AmcClientConfig {
    /// When `Some`, used for every instance whatever its region (tests, simulator, proxies).
    pub base_url_override: Option<String>,
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
    /// Deadline of one HTTP attempt (for downloads: of the headers and of each body chunk).
    pub request_timeout: Duration,
    /// Transient retries per call (429, 5xx, timeouts, connect errors, malformed 2xx bodies).
    pub max_retries: u32,
    /// First retry delay; doubled per attempt with full jitter, capped by `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// One global token bucket shared by all AMC API calls; 0 means unlimited.
    pub max_requests_per_second: u32,
    /// Cap on the total bytes downloaded for one execution's results.
    pub max_result_bytes: u64,
    /// Deadline of one result file as a whole (headers and whole body), on top of the per-read
    /// `request_timeout`: a body that trickles forever ends.
    pub download_file_deadline: Duration,
}

impl AmcClientConfig {
    pub(crate) fn validate(&self) -> Result<(), AmcError> {
        if let Some(base) = &self.base_url_override {
            parse_http_url("base_url_override", base)?;
        }
        parse_http_url("token_url", &self.token_url)?;
        if self.client_id.trim().is_empty() {
            return Err(AmcError::InvalidConfig("client_id is empty".into()));
        }
        if reqwest::header::HeaderValue::from_str(&self.client_id).is_err() {
            return Err(AmcError::InvalidConfig(
                "client_id is not a valid header value".into(),
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(AmcError::InvalidConfig("request_timeout is zero".into()));
        }
        if self.download_file_deadline.is_zero() {
            return Err(AmcError::InvalidConfig(
                "download_file_deadline is zero".into(),
            ));
        }
        if self.backoff_max < self.backoff_base {
            return Err(AmcError::InvalidConfig(
                "backoff_max is smaller than backoff_base".into(),
            ));
        }
        Ok(())
    }
}

pub(crate) fn parse_http_url(name: &str, raw: &str) -> Result<url::Url, AmcError> {
    let parsed = url::Url::parse(raw)
        .map_err(|e| AmcError::InvalidConfig(format!("{name} is not a valid URL: {e}")))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(AmcError::InvalidConfig(format!(
            "{name} has unsupported scheme {other:?}"
        ))),
    }
}
