//! Credential sets: one Login-with-Amazon login per set, one access token per set.
//!
//! The `[amc]` credentials are the set named `default`; every other set is a
//! `CredentialSource` (where its secrets are, never the secrets) registered at start-up or met
//! on a call for an instance linked to it. Each set has its own token cache, its own outage
//! state and backoff (`credentials`), so LwA refusing one login holds only the calls of the
//! instances using it: theirs wait, the others' go on.
//!
//! Secrets are read when a token is refreshed (so a rotated file is picked up), kept in
//! `SecretString`s, and a set whose secret cannot be read (variable unset, file missing) is
//! *unavailable*: an outage with that reason, retried with the same backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::bearer::{CachedToken, NO_TOKEN};
use super::config::{CredentialSource, InstanceRef, SecretLocation};
use super::credentials::{Credentials, CredentialsSnapshot};

/// The name under which the `[amc]` credentials appear in status, metrics and alerts.
pub const DEFAULT_CREDENTIAL_SET: &str = "default";

/// First pause before an unavailable set's secrets are read again.
const UNAVAILABLE_FIRST_RETRY: Duration = Duration::from_secs(5);

/// The three secrets of a refresh, read for one attempt.
pub(crate) struct Resolved {
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) refresh_token: SecretString,
}

/// Where a set's secrets come from.
enum Secrets {
    /// `[amc]`: given by the configuration.
    Configured(SecretString),
    Located(CredentialSource),
}

/// One set's token cache and outage state.
pub(crate) struct TokenSource {
    pub(crate) name: String,
    secrets: Secrets,
    pub(crate) token: tokio::sync::Mutex<Option<CachedToken>>,
    pub(crate) expires_at_ms: AtomicI64,
    pub(crate) credentials: Credentials,
    /// AMC instance ids whose calls used this set (for status: which instances it holds).
    instances: Mutex<BTreeSet<String>>,
}

impl TokenSource {
    fn new(name: String, secrets: Secrets) -> Self {
        Self {
            name,
            secrets,
            token: tokio::sync::Mutex::new(None),
            expires_at_ms: AtomicI64::new(NO_TOKEN),
            credentials: Credentials::default(),
            instances: Mutex::new(BTreeSet::new()),
        }
    }

    /// Reads the set's secrets now; `Err` is the reason, naming the variable or file only.
    pub(crate) fn resolve(
        &self,
        default_client_id: &str,
        default_client_secret: &SecretString,
    ) -> Result<Resolved, String> {
        match &self.secrets {
            Secrets::Configured(refresh_token) => Ok(Resolved {
                client_id: default_client_id.to_string(),
                client_secret: default_client_secret.clone(),
                refresh_token: refresh_token.clone(),
            }),
            Secrets::Located(source) => {
                let client_id = match &source.client_id {
                    Some(location) => {
                        secrecy::ExposeSecret::expose_secret(&read_secret(location)?).to_string()
                    }
                    None => default_client_id.to_string(),
                };
                let client_secret = match &source.client_secret {
                    Some(location) => read_secret(location)?,
                    None => default_client_secret.clone(),
                };
                Ok(Resolved {
                    client_id,
                    client_secret,
                    refresh_token: read_secret(&source.refresh_token)?,
                })
            }
        }
    }

    pub(crate) fn expiry(&self) -> Option<DateTime<Utc>> {
        match self.expires_at_ms.load(Ordering::Relaxed) {
            NO_TOKEN => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    fn status(&self) -> CredentialSetStatus {
        let credentials = self.credentials.snapshot();
        let state = match (credentials.failing, credentials.unavailable) {
            (false, _) => CredentialSetState::Ok,
            (true, false) => CredentialSetState::Failing,
            (true, true) => CredentialSetState::Unavailable,
        };
        let instances = self
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        CredentialSetStatus {
            name: self.name.clone(),
            state,
            instances,
            token_expires_at: self.expiry(),
            credentials,
        }
    }
}

/// Reads one secret. The reason of a failure names the variable or the file, never content.
pub fn read_secret(location: &SecretLocation) -> Result<SecretString, String> {
    let raw = match location {
        SecretLocation::Env(name) => match std::env::var(name) {
            Ok(value) => value,
            Err(std::env::VarError::NotPresent) => {
                return Err(format!("environment variable {name} is unset"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(format!("environment variable {name} is not valid UTF-8"))
            }
        },
        // A secret file is a few bytes; reading it blocks no longer than a stat would.
        SecretLocation::File(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("file {} cannot be read ({})", path.display(), e.kind()))?,
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(format!("{location} is empty"));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

/// A set's state as status, metrics and `credentials list` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialSetState {
    /// Tokens are granted (or none was needed yet).
    Ok,
    /// Login-with-Amazon refuses or fails the refresh: the set's instances wait.
    Failing,
    /// A secret cannot be read (variable unset, file missing): the set's instances wait.
    Unavailable,
}

impl CredentialSetState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CredentialSetState::Ok => "ok",
            CredentialSetState::Failing => "failing",
            CredentialSetState::Unavailable => "unavailable",
        }
    }
}

/// One credential set as the gateway reports it. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialSetStatus {
    pub name: String,
    pub state: CredentialSetState,
    /// AMC instance ids whose calls used the set since the daemon started.
    pub instances: Vec<String>,
    pub token_expires_at: Option<DateTime<Utc>>,
    pub credentials: CredentialsSnapshot,
}

impl CredentialSetStatus {
    /// `credential set NAME failing since T: reason`, or `None` when the set is ok.
    pub fn describe(&self) -> Option<String> {
        let line = self.credentials.describe()?;
        let rest = line.strip_prefix("credentials ").unwrap_or(&line);
        let state = match self.state {
            CredentialSetState::Unavailable => "unavailable",
            _ => "failing",
        };
        let rest = rest.strip_prefix("failing ").unwrap_or(rest);
        Some(format!("credential set {} {state} {rest}", self.name))
    }
}

/// Every set the client knows: `[amc]`'s and the named ones.
pub(crate) struct CredentialSets {
    pub(crate) default: Arc<TokenSource>,
    named: RwLock<BTreeMap<String, Arc<TokenSource>>>,
}

impl CredentialSets {
    pub(crate) fn new(refresh_token: SecretString) -> Self {
        Self {
            default: Arc::new(TokenSource::new(
                DEFAULT_CREDENTIAL_SET.to_string(),
                Secrets::Configured(refresh_token),
            )),
            named: RwLock::new(BTreeMap::new()),
        }
    }

    /// The set an instance's calls use (registered on first use), noting the instance.
    pub(crate) fn for_instance(&self, instance: &InstanceRef) -> Arc<TokenSource> {
        let source = match &instance.credentials {
            None => self.default.clone(),
            Some(located) => self.register(located).0,
        };
        source
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(instance.instance_id.clone());
        source
    }

    /// The set named `source.name`, created if new (`true`). Sets are immutable once stored,
    /// so an existing entry is the same set.
    pub(crate) fn register(&self, source: &CredentialSource) -> (Arc<TokenSource>, bool) {
        if let Some(found) = self
            .named
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&source.name)
        {
            return (found.clone(), false);
        }
        let mut named = self.named.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = named.get(&source.name) {
            return (found.clone(), false);
        }
        let created = Arc::new(TokenSource::new(
            source.name.clone(),
            Secrets::Located(source.clone()),
        ));
        named.insert(source.name.clone(), created.clone());
        (created, true)
    }

    /// Marks a newly registered set unavailable at once when its secrets cannot be read, so
    /// status shows why its instances will wait before any of them asks.
    pub(crate) fn check_unavailable(
        &self,
        source: &TokenSource,
        default_client_id: &str,
        default_client_secret: &SecretString,
    ) -> Option<String> {
        let reason = source
            .resolve(default_client_id, default_client_secret)
            .err()?;
        source
            .credentials
            .record_failure(reason.clone(), UNAVAILABLE_FIRST_RETRY, true);
        Some(reason)
    }

    /// Every set, `default` first, then by name.
    pub(crate) fn statuses(&self) -> Vec<CredentialSetStatus> {
        let mut all = vec![self.default.status()];
        all.extend(
            self.named
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .map(|source| source.status()),
        );
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_secret_is_described_by_its_location_only() {
        let unset = SecretLocation::Env("AMC_COLLECTOR_TEST_SURELY_UNSET_VARIABLE".into());
        assert_eq!(
            read_secret(&unset).err().as_deref(),
            Some("environment variable AMC_COLLECTOR_TEST_SURELY_UNSET_VARIABLE is unset")
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = SecretLocation::File(dir.path().join("missing"));
        let reason = read_secret(&missing).err().unwrap();
        assert!(
            reason.starts_with("file ") && reason.contains("cannot be read"),
            "{reason}"
        );
        let path = dir.path().join("token");
        std::fs::write(&path, "  Atzr|secret-value\n").unwrap();
        let read = read_secret(&SecretLocation::File(path.clone())).unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&read),
            "Atzr|secret-value"
        );
        std::fs::write(&path, "\n").unwrap();
        let empty = read_secret(&SecretLocation::File(path)).err().unwrap();
        assert!(
            empty.ends_with(" is empty") && !empty.contains("Atzr"),
            "{empty}"
        );
    }

    #[test]
    fn a_set_whose_variable_is_unset_is_unavailable_with_that_reason() {
        let sets = CredentialSets::new(SecretString::from("Atzr|default"));
        let source = CredentialSource {
            name: "brand-b".into(),
            refresh_token: SecretLocation::Env("AMC_COLLECTOR_TEST_SURELY_UNSET_B".into()),
            client_id: None,
            client_secret: None,
        };
        let (set, created) = sets.register(&source);
        assert!(created);
        assert!(!sets.register(&source).1);
        let reason = sets.check_unavailable(&set, "id", &SecretString::from("s"));
        assert!(reason
            .unwrap()
            .contains("AMC_COLLECTOR_TEST_SURELY_UNSET_B"));
        let statuses = sets.statuses();
        assert_eq!(statuses[0].name, DEFAULT_CREDENTIAL_SET);
        assert_eq!(statuses[0].state, CredentialSetState::Ok);
        assert_eq!(statuses[1].state, CredentialSetState::Unavailable);
        let line = statuses[1].describe().unwrap();
        assert!(
            line.starts_with("credential set brand-b unavailable since "),
            "{line}"
        );
        assert!(
            line.ends_with("AMC_COLLECTOR_TEST_SURELY_UNSET_B is unset"),
            "{line}"
        );
    }
}
