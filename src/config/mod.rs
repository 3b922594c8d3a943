//! Configuration: one typed tree loaded once at start, and the only place defaults live (the
//! `Default` impls below); `access.rs` gives the durations as `Duration` and builds the AMC
//! client's configuration from it.
//!
//! Layers, lowest first: built-in defaults, then `config/default.toml` (or `--config FILE`), then
//! environment variables `AMC_COLLECTOR__SECTION__KEY`. Unknown keys, wrong types and out-of-range
//! values are refused here, with the full key path in the message, so no command starts half-configured.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
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
    /// A key with no default that the command needs (the AMC credentials, for `run`).
    #[error("configuration key `{key}` is required to run (set {env})")]
    Required { key: String, env: String },
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
    pub results: ResultsSettings,
    pub alerts: AlertsSettings,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://FILE` (created if missing) or `postgres://...`.
    pub url: String,
    /// Upper bound of the connection pool.
    #[serde(deserialize_with = "de::number")]
    pub max_connections: u32,
    /// Postgres: the schema holding every table (created if missing; never `public`).
    pub schema: String,
    /// Postgres: refuse to start (rather than warn) when a non-loopback URL does not verify the
    /// server's certificate (`sslmode` other than `verify-full`/`verify-ca`).
    #[serde(deserialize_with = "de::boolean")]
    pub require_verified_tls: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://amc-collector.db".into(),
            max_connections: 10,
            schema: crate::store::DEFAULT_SCHEMA.into(),
            require_verified_tls: false,
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
    /// AMC's daily limit: executions created per instance within `quota_window_seconds`, counted
    /// from the database over every process (0 = no limit).
    #[serde(deserialize_with = "de::number")]
    pub max_creates_per_day: u32,
    /// The rolling window of `max_creates_per_day`, in seconds (AMC: one day).
    #[serde(deserialize_with = "de::number")]
    pub quota_window_seconds: u64,
    /// Largest result (all files of one execution) accepted, in bytes.
    #[serde(deserialize_with = "de::number")]
    pub max_result_bytes: u64,
    /// How long an execution whose status the client does not know is polled before the
    /// attempt fails naming that status, in seconds.
    #[serde(deserialize_with = "de::number")]
    pub unknown_status_max_seconds: u64,
}

impl Default for AmcSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            // Login-with-Amazon for North America; tokens are global, so it serves every region.
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
            // 2 GiB.
            max_result_bytes: 2 * 1024 * 1024 * 1024,
            max_creates_per_day: 30,
            quota_window_seconds: 86_400,
            unknown_status_max_seconds: 86_400,
        }
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

/// How result files are downloaded and stored.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResultsSettings {
    /// Weeks downloading, parsing and storing their result at once over the whole process; each
    /// holds a few MB of buffers whatever the result's size.
    #[serde(deserialize_with = "de::number")]
    pub max_concurrent_downloads: u32,
    /// Deadline of one result file as a whole (a body that trickles or stalls ends there).
    #[serde(deserialize_with = "de::number")]
    pub file_deadline_seconds: u64,
    /// How long after an execution SUCCEEDED its results may stay unpublished (DOWNLOAD channel
    /// PENDING, `downloadUrls` empty or "unavailable") before the attempt fails.
    #[serde(deserialize_with = "de::number")]
    pub publish_grace_seconds: u64,
    /// Postgres: the schema holding each workflow's typed relation (`amc_results.<name>`).
    pub schema: String,
}

impl Default for ResultsSettings {
    fn default() -> Self {
        Self {
            max_concurrent_downloads: 2,
            file_deadline_seconds: 3600,
            publish_grace_seconds: 1800,
            schema: crate::store::typed::DEFAULT_RESULTS_SCHEMA.to_string(),
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

/// The refusal of `key`'s value, naming where it came from (environment variable or file).
fn invalid_key(
    key: &str,
    message: &str,
    env_keys: &[(String, String)],
    file: Option<&Path>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        origin: origin_of(key, env_keys, file),
        message: message.to_string(),
    }
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

mod access;
mod alerts;
mod de;
mod http;
mod validate;

pub use alerts::{AlertFormat, AlertsSettings};
pub use http::HttpSettings;

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod tests;
