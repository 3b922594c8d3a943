//! The `[http]` section: where the inspection endpoint (and the console) listens, the token that
//! guards it, the host names it answers to, and how long a console sign-in lasts. Its checks live
//! here too, so the section stays one file.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use super::{de, invalid_key, ConfigError};

/// Shortest accepted `http.token`: the endpoint may face a network, and a short token is
/// guessed (16 characters of a base64 alphabet are 96 bits).
pub const MIN_TOKEN_CHARS: usize = 16;

/// The runtime inspection endpoint (`/healthz`, `/readyz`, `/metrics`, `/status`, the console).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Serve the endpoint while `run` is running.
    #[serde(deserialize_with = "de::boolean")]
    pub enabled: bool,
    /// Listening address; a non-loopback address requires `token`.
    pub bind: SocketAddr,
    /// Bearer token every request must carry when set.
    pub token: Option<SecretString>,
    /// Host names (`name` or `name:port`) the endpoint answers to besides its bind address,
    /// `localhost`, `127.0.0.1` and `[::1]`: the names a reverse proxy forwards.
    #[serde(deserialize_with = "string_list")]
    pub allowed_hosts: Vec<String>,
    /// How long a console sign-in lasts, in hours.
    #[serde(deserialize_with = "de::number")]
    pub session_hours: u64,
    /// The URL people open the console at, when it is not the bind address (a reverse proxy);
    /// `https://` makes the session cookie `Secure`, and its host is allowed.
    pub public_url: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 9898)),
            token: None,
            allowed_hosts: Vec::new(),
            session_hours: 12,
            public_url: None,
        }
    }
}

impl HttpSettings {
    /// `http.session_hours` as a duration.
    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(self.session_hours.saturating_mul(3600))
    }

    /// Whether the console is reached over https (behind a proxy): its cookie is then `Secure`.
    pub fn secure_cookie(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|url| url.to_ascii_lowercase().starts_with("https://"))
    }

    /// Host names allowed beyond the bind address and loopback: `allowed_hosts`, and the host of
    /// `public_url` (with its port when it names one).
    pub fn extra_hosts(&self) -> Vec<String> {
        let mut hosts = self.allowed_hosts.clone();
        let public = self
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok());
        if let Some(url) = public {
            if let Some(host) = url.host_str() {
                hosts.push(match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                });
            }
        }
        hosts
    }

    /// Range and format checks; the first failure names its key and rule (never the token).
    pub(super) fn validate(
        &self,
        env_keys: &[(String, String)],
        file: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| invalid_key(key, message, env_keys, file);
        if let Some(token) = &self.token {
            if let Some(rule) = token_rule_broken(token.expose_secret()) {
                return Err(invalid("http.token", rule));
            }
        }
        // Anyone who can reach the port can read the tree: beyond loopback, demand a token.
        if !(self.bind.ip().is_loopback() || self.token.is_some()) {
            return Err(invalid(
                "http.bind",
                "is not a loopback address; set http.token to serve it beyond this machine",
            ));
        }
        if !(1..=720).contains(&self.session_hours) {
            return Err(invalid("http.session_hours", "must be in 1..=720"));
        }
        if let Some(bad) = self.allowed_hosts.iter().find(|h| !is_host_name(h)) {
            let message = format!(
                "`{}` is not a host name or host:port",
                crate::escape::escape_controls(bad)
            );
            return Err(invalid("http.allowed_hosts", &message));
        }
        if let Some(raw) = &self.public_url {
            let url = url::Url::parse(raw).ok();
            let usable = url.as_ref().is_some_and(|url| {
                matches!(url.scheme(), "http" | "https") && url.host_str().is_some()
            });
            if !usable {
                return Err(invalid(
                    "http.public_url",
                    "must be an http:// or https:// URL with a host",
                ));
            }
        }
        Ok(())
    }
}

/// The rule a configured token breaks, if any.
fn token_rule_broken(token: &str) -> Option<&'static str> {
    if token.trim() != token {
        // Presented tokens are trimmed, so such a token could never match.
        Some("must not start or end with whitespace")
    } else if token.chars().count() < MIN_TOKEN_CHARS {
        Some("must be at least 16 characters")
    } else {
        None
    }
}

/// `name` or `name:port`, as a `Host` header carries it (`[v6]:port` included).
fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
}

/// A list given as a TOML array or, from the environment, as one comma-separated string.
fn string_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        Text(String),
    }
    let items = match ListOrString::deserialize(deserializer)? {
        ListOrString::List(items) => items,
        ListOrString::Text(text) => text.split(',').map(str::to_string).collect(),
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::token_rule_broken;
    use crate::config::Settings;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::load_from(None, env).map_err(|e| e.to_string())
    }

    #[test]
    fn allowed_hosts_public_url_and_session_hours_are_read_from_the_environment() {
        let settings = load(&[
            (
                "AMC_COLLECTOR__HTTP__ALLOWED_HOSTS",
                "a.example, b.example:8443",
            ),
            (
                "AMC_COLLECTOR__HTTP__PUBLIC_URL",
                "https://console.example:9443/",
            ),
            ("AMC_COLLECTOR__HTTP__SESSION_HOURS", "2"),
        ])
        .unwrap();
        let http = &settings.http;
        assert_eq!(http.allowed_hosts, ["a.example", "b.example:8443"]);
        assert_eq!(
            http.extra_hosts(),
            ["a.example", "b.example:8443", "console.example:9443"]
        );
        assert!(http.secure_cookie());
        assert_eq!(http.session_lifetime().as_secs(), 7200);
        let defaults = load(&[]).unwrap().http;
        assert_eq!(defaults.session_hours, 12);
        assert!(!defaults.secure_cookie());
    }

    #[test]
    fn bad_hosts_urls_and_session_lengths_are_refused_with_their_key() {
        for (key, value, named) in [
            (
                "AMC_COLLECTOR__HTTP__ALLOWED_HOSTS",
                "evil.example/x",
                "http.allowed_hosts",
            ),
            (
                "AMC_COLLECTOR__HTTP__PUBLIC_URL",
                "ftp://x.example",
                "http.public_url",
            ),
            (
                "AMC_COLLECTOR__HTTP__SESSION_HOURS",
                "0",
                "http.session_hours",
            ),
            (
                "AMC_COLLECTOR__HTTP__TOKEN",
                "short",
                "at least 16 characters",
            ),
        ] {
            let error = load(&[(key, value)]).unwrap_err();
            assert!(error.contains(named), "{error}");
        }
    }

    #[test]
    fn a_token_must_be_long_enough_and_without_surrounding_whitespace() {
        assert_eq!(
            token_rule_broken("short"),
            Some("must be at least 16 characters")
        );
        assert_eq!(
            token_rule_broken(" a-token-long-enough-1234 "),
            Some("must not start or end with whitespace")
        );
        assert_eq!(token_rule_broken("a-token-long-enough-1234"), None);
        // Characters, not bytes: sixteen accented letters are long enough, eight are not.
        assert_eq!(token_rule_broken(&"é".repeat(16)), None);
        assert!(token_rule_broken(&"é".repeat(8)).is_some());
    }
}
