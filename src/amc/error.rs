//! The one error type of the AMC client, with the transient/permanent split callers retry on.

use std::time::Duration;

use super::stats::Endpoint;

/// Longest body excerpt kept in an error when the body has no recognised message field.
const SNIPPET_CHARS: usize = 200;

/// Everything an AMC call can fail with. No variant ever carries a secret or a pre-signed URL.
#[derive(Debug, thiserror::Error)]
pub enum AmcError {
    #[error("amc rate limit persisted after retries (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    #[error("amc {endpoint} answered http {status}: {message}")]
    Http {
        endpoint: Endpoint,
        status: u16,
        message: String,
    },
    /// AMC refused a create for a limit (its daily execution limit): wait for the window, never
    /// fail a week for it.
    #[error("amc refused the execution for a limit: {message}")]
    LimitReached {
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("amc transport error: {0}")]
    Transport(String),
    #[error("amc request timed out")]
    Timeout,
    #[error("amc token refresh failed: {0}")]
    Auth(String),
    #[error("amc reply could not be decoded: {0}")]
    Decode(String),
    #[error("pre-signed result url expired and could not be renewed")]
    UrlExpired,
    #[error("amc execution results are not ready for download yet")]
    NotReady,
    #[error("amc results exceed the limit of {limit} bytes")]
    ResultTooLarge { limit: u64 },
    #[error("invalid amc client configuration: {0}")]
    InvalidConfig(String),
    /// A result file took longer than the per-file deadline as a whole (a stalled or trickling
    /// body), even though every single read arrived in time.
    #[error("a result file was not downloaded within {seconds} s")]
    FileDeadline { seconds: u64 },
    /// A download URL that is neither `https` nor plain `http` to a loopback host.
    #[error("refused a result url that is not https ({0})")]
    InsecureUrl(String),
    /// Whoever consumed the streamed result stopped (it failed and says why itself).
    #[error("the result consumer stopped")]
    SinkClosed,
}

impl AmcError {
    /// True when the same call may succeed later unchanged (throttling, server trouble, network).
    pub fn is_transient(&self) -> bool {
        match self {
            AmcError::RateLimited { .. }
            | AmcError::Transport(_)
            | AmcError::Timeout
            | AmcError::Decode(_)
            | AmcError::UrlExpired
            | AmcError::NotReady
            | AmcError::LimitReached { .. }
            // Credentials failing is an outage, never a verdict on the call that needed them.
            | AmcError::Auth(_) => true,
            AmcError::Http { status, .. } => *status == 429 || *status >= 500,
            AmcError::ResultTooLarge { .. }
            | AmcError::InvalidConfig(_)
            | AmcError::FileDeadline { .. }
            | AmcError::InsecureUrl(_)
            | AmcError::SinkClosed => false,
        }
    }

    /// Builds an `Http` error, taking the message from the JSON fields AMC uses, else a body snippet.
    pub(crate) fn http(endpoint: Endpoint, status: u16, body: &[u8]) -> Self {
        AmcError::Http {
            endpoint,
            status,
            message: error_message(body),
        }
    }

    pub(crate) fn from_reqwest(endpoint: Endpoint, err: reqwest::Error) -> Self {
        if err.is_timeout() {
            return AmcError::Timeout;
        }
        // Pre-signed URLs carry credentials in their query string, so the URL is never kept.
        let err = err.without_url();
        let mut text = format!("{endpoint}: {err}");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        AmcError::Transport(text)
    }
}

/// `message`, `statusReason` or `details` from a JSON error body (in that order), else a snippet.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "statusReason", "details"] {
            match map.get(key) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => return snippet(s),
                Some(v) if !v.is_null() && !v.is_string() => return snippet(&v.to_string()),
                _ => {}
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        snippet(text)
    }
}

pub(crate) fn snippet(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(SNIPPET_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    out
}
