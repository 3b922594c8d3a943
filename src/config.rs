//! Configuration: one typed tree loaded once at start.
//!
//! Layers, lowest first: built-in defaults, then `config/default.toml` (or `--config FILE`), then
//! environment variables `AMC_COLLECTOR__SECTION__KEY`. Unknown keys, wrong types and out-of-range
//! values are refused here, with the full key path in the message, so no command starts half-configured.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Prefix of every configuration environment variable.
pub const ENV_PREFIX: &str = "AMC_COLLECTOR__";
/// File read when no `--config` is given (skipped silently when absent).
pub const DEFAULT_CONFIG_FILE: &str = "config/default.toml";

/// Errors raised while loading configuration; all are the user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration key `{key}`{origin}: {message}")]
    Invalid {
        key: String,
        origin: String,
        message: String,
    },
    #[error("environment variable {name} does not name a configuration key")]
    BadEnvName { name: String },
}

/// The whole configuration tree.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amc: AmcSettings,
    pub retry: RetrySettings,
    pub scheduler: SchedulerSettings,
    pub collection: CollectionSettings,
    pub http: HttpSettings,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://FILE` (created if missing) or `postgres://...`.
    pub url: String,
    /// Upper bound of the connection pool.
    #[serde(deserialize_with = "de::number")]
    pub max_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://amc-collector.db".into(),
            max_connections: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmcSettings {
    /// When set, the AMC API base URL for every instance whatever its region.
    pub base_url: Option<String>,
    /// Login-with-Amazon token endpoint.
    pub token_url: String,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    /// Delay between two status polls of one execution, in milliseconds.
    #[serde(deserialize_with = "de::number")]
    pub poll_interval_ms: u64,
    /// Executions in flight (PENDING + RUNNING + PUBLISHING) per instance.
    #[serde(deserialize_with = "de::number")]
    pub max_in_flight_per_instance: u32,
    /// Timeout of one HTTP attempt, in milliseconds.
    #[serde(deserialize_with = "de::number")]
    pub request_timeout_ms: u64,
    /// Transient retries (429, 5xx, timeouts) of one AMC call.
    #[serde(deserialize_with = "de::number")]
    pub max_retries: u32,
    /// First HTTP retry delay in milliseconds, doubled per attempt with jitter.
    #[serde(deserialize_with = "de::number")]
    pub backoff_base_ms: u64,
    /// Cap of one HTTP retry delay, in milliseconds.
    #[serde(deserialize_with = "de::number")]
    pub backoff_max_ms: u64,
    /// Global AMC request rate, requests per second (0 = unlimited).
    #[serde(deserialize_with = "de::number")]
    pub max_requests_per_second: u32,
    /// Largest result (all files of one execution) accepted, in bytes.
    #[serde(deserialize_with = "de::number")]
    pub max_result_bytes: u64,
}

impl Default for AmcSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            token_url: "https://api.amazon.com/auth/o2/token".into(),
            client_id: None,
            client_secret: None,
            refresh_token: None,
            poll_interval_ms: 60_000,
            max_in_flight_per_instance: 10,
            request_timeout_ms: 30_000,
            max_retries: 8,
            backoff_base_ms: 500,
            backoff_max_ms: 60_000,
            max_requests_per_second: 20,
            max_result_bytes: 2 * 1024 * 1024 * 1024,
        }
    }
}

impl AmcSettings {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// AMC executions tried per week before the week stays `failed`.
    #[serde(deserialize_with = "de::number")]
    pub max_attempts: u32,
    /// First delay before a failed week is retried, in milliseconds; doubled per attempt, with jitter.
    #[serde(deserialize_with = "de::number")]
    pub backoff_base_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base_ms: 60_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Postgres lease duration of a collection, in seconds.
    #[serde(deserialize_with = "de::number")]
    pub lease_seconds: u64,
    /// How often the supervisor looks for new runnable collections, in milliseconds.
    #[serde(deserialize_with = "de::number")]
    pub scan_interval_ms: u64,
    /// Graceful shutdown deadline, in seconds.
    #[serde(deserialize_with = "de::number")]
    pub shutdown_deadline_seconds: u64,
    /// Restarts of one collection actor allowed inside `restart_window_seconds`.
    #[serde(deserialize_with = "de::number")]
    pub restart_intensity: u32,
    #[serde(deserialize_with = "de::number")]
    pub restart_window_seconds: u64,
    /// First restart delay of a collection actor, in milliseconds, doubled per restart.
    #[serde(deserialize_with = "de::number")]
    pub restart_backoff_base_ms: u64,
    /// Most collections one process runs at once (others are left for other processes).
    #[serde(deserialize_with = "de::number")]
    pub max_collections: u32,
    /// Collections claimed per scan.
    #[serde(deserialize_with = "de::number")]
    pub claim_batch: u32,
    /// How often the actor tree summary is logged, in seconds (0 = never).
    #[serde(deserialize_with = "de::number")]
    pub tree_log_interval_seconds: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            lease_seconds: 30,
            scan_interval_ms: 2_000,
            shutdown_deadline_seconds: 30,
            restart_intensity: 5,
            restart_window_seconds: 60,
            restart_backoff_base_ms: 500,
            max_collections: 10_000,
            claim_batch: 200,
            tree_log_interval_seconds: 300,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectionSettings {
    /// Days between today and the default end date (AMC attribution settles late).
    #[serde(deserialize_with = "de::number")]
    pub data_lag_days: u32,
    /// Oldest day a week may start, counted back from today (AMC keeps 13 months).
    #[serde(deserialize_with = "de::number")]
    pub retention_days: u32,
}

impl Default for CollectionSettings {
    fn default() -> Self {
        Self {
            data_lag_days: 14,
            retention_days: 395,
        }
    }
}

/// The runtime inspection endpoint (`/healthz`, `/readyz`, `/metrics`, `/status`).
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
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 9898)),
            token: None,
        }
    }
}

impl Settings {
    /// Loads the layers from the real process environment.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(config_file, std::env::vars())
    }

    /// Loads the layers from the given environment (tests pass their own).
    pub fn load_from(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match config_file {
            Some(path) => read_toml(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                read_toml(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => toml::Table::new(),
        };
        let env_keys = overlay_env(&mut table, env)?;
        let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|error| {
                let key = error.path().to_string();
                let message = error.into_inner().to_string();
                // The TOML layer repeats the key; the message already names it once.
                let message = message.replace(&format!(" in `{key}`"), "");
                let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
                ConfigError::Invalid {
                    origin: origin_of(&key, &env_keys, config_file),
                    message,
                    key,
                }
            })?;
        settings.validate(&env_keys, config_file)?;
        Ok(settings)
    }

    fn validate(
        &self,
        env_keys: &[(String, String)],
        file: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let checks: [(&str, bool, &str); 17] = [
            (
                "scheduler.max_collections",
                self.scheduler.max_collections >= 1,
                "must be at least 1",
            ),
            (
                "scheduler.claim_batch",
                (1..=10_000).contains(&self.scheduler.claim_batch),
                "must be in 1..=10000",
            ),
            (
                "database.url",
                self.database.url.starts_with("sqlite:")
                    || self.database.url.starts_with("postgres://")
                    || self.database.url.starts_with("postgresql://"),
                "must start with sqlite:, postgres:// or postgresql://",
            ),
            (
                "database.max_connections",
                (1..=200).contains(&self.database.max_connections),
                "must be in 1..=200",
            ),
            (
                "amc.poll_interval_ms",
                (10..=3_600_000).contains(&self.amc.poll_interval_ms),
                "must be in 10..=3600000",
            ),
            (
                "amc.max_in_flight_per_instance",
                (1..=200).contains(&self.amc.max_in_flight_per_instance),
                "must be in 1..=200",
            ),
            (
                "amc.request_timeout_ms",
                (100..=600_000).contains(&self.amc.request_timeout_ms),
                "must be in 100..=600000",
            ),
            (
                "amc.max_retries",
                self.amc.max_retries <= 50,
                "must be at most 50",
            ),
            (
                "amc.backoff_max_ms",
                self.amc.backoff_max_ms >= self.amc.backoff_base_ms,
                "must be at least amc.backoff_base_ms",
            ),
            (
                "retry.max_attempts",
                (1..=20).contains(&self.retry.max_attempts),
                "must be in 1..=20",
            ),
            (
                "scheduler.lease_seconds",
                (2..=3600).contains(&self.scheduler.lease_seconds),
                "must be in 2..=3600",
            ),
            (
                "scheduler.restart_intensity",
                self.scheduler.restart_intensity >= 1,
                "must be at least 1",
            ),
            (
                "collection.retention_days",
                (7..=3650).contains(&self.collection.retention_days),
                "must be in 7..=3650",
            ),
            (
                "collection.data_lag_days",
                self.collection.data_lag_days < self.collection.retention_days,
                "must be below collection.retention_days",
            ),
            (
                "scheduler.tree_log_interval_seconds",
                self.scheduler.tree_log_interval_seconds <= 86_400,
                "must be at most 86400",
            ),
            (
                "http.token",
                !self
                    .http
                    .token
                    .as_ref()
                    .is_some_and(|token| token.expose_secret().trim().is_empty()),
                "must not be empty",
            ),
            (
                "http.bind",
                // Anyone who can reach the port can read the tree: beyond loopback, demand a token.
                self.http.bind.ip().is_loopback() || self.http.token.is_some(),
                "is not a loopback address; set http.token to serve it beyond this machine",
            ),
        ];
        let urls = [
            ("amc.token_url", Some(self.amc.token_url.as_str())),
            ("amc.base_url", self.amc.base_url.as_deref()),
        ];
        for (key, value) in urls {
            if let Some(value) = value {
                if url::Url::parse(value).is_err() {
                    return Err(invalid(key, env_keys, file, "is not a valid URL"));
                }
            }
        }
        match checks.iter().find(|(_, ok, _)| !ok) {
            Some((key, _, message)) => Err(invalid(key, env_keys, file, message)),
            None => Ok(()),
        }
    }
}

fn invalid(
    key: &str,
    env_keys: &[(String, String)],
    file: Option<&Path>,
    msg: &str,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        origin: origin_of(key, env_keys, file),
        message: msg.to_string(),
    }
}

fn read_toml(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse::<toml::Table>()
        .map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.message().to_string(),
        })
}

/// Writes every `AMC_COLLECTOR__SECTION__KEY` variable into the table as a string (typed fields
/// parse strings themselves) and returns (dotted key, variable name) pairs for error messages.
fn overlay_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let parts: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let [section, key] = parts.as_slice() else {
            return Err(ConfigError::BadEnvName { name });
        };
        if section.is_empty() || key.is_empty() {
            return Err(ConfigError::BadEnvName { name });
        }
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            return Err(ConfigError::Invalid {
                key: section.clone(),
                origin: String::new(),
                message: "must be a table".into(),
            });
        };
        section_table.insert(key.clone(), toml::Value::String(value));
        applied.push((format!("{section}.{key}"), name));
    }
    Ok(applied)
}

fn origin_of(key: &str, env_keys: &[(String, String)], file: Option<&Path>) -> String {
    if let Some((_, name)) = env_keys.iter().find(|(k, _)| k == key) {
        return format!(" (from {name})");
    }
    match file {
        Some(path) => format!(" (from {})", path.display()),
        None => String::new(),
    }
}

/// Deserializers that accept a value either typed (TOML) or as a string (environment).
mod de {
    use serde::{Deserialize, Deserializer};
    use std::str::FromStr;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Number(i64),
        Text(String),
    }

    pub fn boolean<'de, D>(deserializer: D) -> Result<bool, D::Error>
    where
        D: Deserializer<'de>,
    {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum BoolOrString {
            Bool(bool),
            Text(String),
        }
        match BoolOrString::deserialize(deserializer)? {
            BoolOrString::Bool(b) => Ok(b),
            BoolOrString::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(serde::de::Error::custom(format!(
                    "`{s}` is not a boolean (true or false)"
                ))),
            },
        }
    }

    pub fn number<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr + TryFrom<i64>,
        <T as FromStr>::Err: std::fmt::Display,
    {
        match NumberOrString::deserialize(deserializer)? {
            NumberOrString::Number(n) => {
                T::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is out of range")))
            }
            NumberOrString::Text(s) => s
                .trim()
                .parse::<T>()
                .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a valid number: {e}"))),
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
