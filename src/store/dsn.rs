//! Database URLs before anything connects: the one redaction used wherever a URL is shown, and
//! what a Postgres URL says about where it leads (loopback or not, whether TLS verifies the
//! server, Supabase's transaction pooler), read the way sqlx reads it.
//!
//! sqlx logs an unrecognised query parameter together with its value (`sslpassword=...` would be
//! printed), so parameters sqlx does not read are dropped here, by name only, before it sees them.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// Printed instead of a URL that does not parse: a password may sit anywhere in its text.
pub const UNPARSEABLE_URL: &str = "<database URL hidden: it does not parse>";

/// Replaces a secret (password, secret query parameter) in a printed URL.
const HIDDEN: &str = "***";

/// Query parameters sqlx's Postgres driver reads (sqlx-postgres 0.8 `options/parse.rs`).
const SQLX_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// Why a Postgres URL cannot be used; never carries the URL itself.
#[derive(Debug, thiserror::Error)]
pub enum DsnError {
    #[error(
        "is not a valid URL ({0}); characters such as # / ? @ : in the password must be \
         percent-encoded (# is %23)"
    )]
    Unparseable(String),
    #[error(
        "contains `#`, which ends a URL: percent-encode it (%23) where it appears in the password"
    )]
    Fragment,
    #[error(
        "has an `@` after the host: a `/` or `?` in the password must be percent-encoded \
         (%2F, %3F)"
    )]
    SplitPassword,
    #[error("is not a usable Postgres URL: {0}")]
    Options(String),
}

/// Hides every secret of a database URL before it is printed (errors, logs, status, bench).
///
/// The userinfo password and secret-looking query parameters become `***`; a URL that does not
/// parse, or whose parts show that a password character split it (`#`, or an `@` after the
/// host), is never echoed: a fixed placeholder stands for it. SQLite URLs hold no secret.
pub fn redact_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_string();
    }
    // Database URLs have no fragment: a `#` is an unencoded password character.
    if url.contains('#') {
        return UNPARSEABLE_URL.into();
    }
    let Ok(mut parsed) = url::Url::parse(url) else {
        return UNPARSEABLE_URL.into();
    };
    if split_password(&parsed) {
        return UNPARSEABLE_URL.into();
    }
    if parsed.password().is_some() && parsed.set_password(Some(HIDDEN)).is_err() {
        return UNPARSEABLE_URL.into();
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for (key, value) in &pairs {
            let value = if secret_parameter(key) { HIDDEN } else { value };
            query.append_pair(key, value);
        }
        drop(query);
    }
    parsed.to_string()
}

/// An `@` after the host: a `/` or `?` in the password cut the authority short before its `@`.
fn split_password(parsed: &url::Url) -> bool {
    parsed.path().contains('@')
        || parsed.query().is_some_and(|query| query.contains('@'))
        || parsed
            .query_pairs()
            .any(|(key, _)| !plain_parameter_name(&key))
}

/// Whether a query parameter may carry a secret (password, sslpassword, passfile's cousins,
/// tokens, keys).
fn secret_parameter(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "secret", "token", "auth", "key"]
        .iter()
        .any(|word| key.contains(word))
}

/// Parameter names are words; anything else is a piece of something that was never meant to be a
/// parameter name (a split password) and is not shown.
fn plain_parameter_name(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '[' | ']' | '.'))
}

/// Whether a host name or address stays on this machine (127.0.0.0/8, ::1, localhost).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// What a Postgres URL leads to, as sqlx will read it (environment defaults such as `PGSSLMODE`
/// included).
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// What sqlx connects with (unrecognised parameters already dropped).
    pub options: PgConnectOptions,
    /// Host name or address, or the Unix socket directory.
    pub host: String,
    pub port: u16,
    /// Loopback host or Unix socket: nothing crosses a network.
    pub loopback: bool,
    /// Port 6543 of a `*.pooler.supabase.com` host, or `pgbouncer=true` in the URL.
    pub transaction_pooler: bool,
    /// Query parameters dropped because sqlx does not read them (names only).
    pub dropped: Vec<String>,
}

impl PgTarget {
    /// Reads a `postgres://` URL without connecting.
    pub fn parse(url: &str) -> Result<Self, DsnError> {
        let mut parsed =
            url::Url::parse(url).map_err(|error| DsnError::Unparseable(error.to_string()))?;
        if parsed.fragment().is_some() {
            return Err(DsnError::Fragment);
        }
        // Otherwise the rest of the password would become a database or parameter name, and be
        // echoed by the server's errors or by the warning about unknown parameters.
        if split_password(&parsed) {
            return Err(DsnError::SplitPassword);
        }
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        let pgbouncer = pairs
            .iter()
            .any(|(key, value)| key == "pgbouncer" && value.eq_ignore_ascii_case("true"));
        let (kept, dropped): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(key, _)| {
            SQLX_PARAMETERS.contains(&key.as_str()) || key.starts_with("options[")
        });
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(&kept);
        }
        let options = PgConnectOptions::from_str(parsed.as_str())
            .map_err(|error| DsnError::Options(error.to_string()))?;
        let (host, loopback) = match options.get_socket() {
            Some(socket) => (socket.display().to_string(), true),
            None => {
                let host = options.get_host().to_string();
                let loopback = is_loopback_host(&host);
                (host, loopback)
            }
        };
        let port = options.get_port();
        let supabase_transaction_pooler =
            host.to_ascii_lowercase().ends_with(".pooler.supabase.com") && port == 6543;
        Ok(Self {
            options,
            host,
            port,
            loopback,
            transaction_pooler: pgbouncer || supabase_transaction_pooler,
            dropped: dropped.into_iter().map(|(key, _)| key).collect(),
        })
    }

    /// The risk of this connection's TLS settings, when there is one: a connection that leaves
    /// this machine and does not verify the server's certificate.
    pub fn tls_risk(&self) -> Option<String> {
        if self.loopback {
            return None;
        }
        let what = match self.options.get_ssl_mode() {
            PgSslMode::VerifyCa | PgSslMode::VerifyFull => return None,
            PgSslMode::Require => "sslmode=require encrypts but accepts any certificate",
            PgSslMode::Prefer => "sslmode=prefer (the default) accepts any certificate and falls back to no encryption",
            PgSslMode::Allow => "sslmode=allow may not encrypt at all",
            PgSslMode::Disable => "sslmode=disable sends everything in clear",
        };
        Some(format!(
            "the database connection to {} is not verified ({what}): anyone on the network path \
             can impersonate the server and read the data and the password; use \
             sslmode=verify-full&sslrootcert=<the server's CA certificate>",
            self.host
        ))
    }
}

/// The line that refuses a transaction pooler.
pub const TRANSACTION_POOLER: &str = "points at a transaction pooler (Supabase port 6543 or \
     pgbouncer=true), which cannot keep the prepared statements the collector uses: connect \
     through the session pooler (same host, port 5432) or directly (db.<project>.supabase.co:5432)";

#[cfg(test)]
#[path = "dsn_tests.rs"]
mod tests;
