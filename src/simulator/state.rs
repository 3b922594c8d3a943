//! The simulator's shared state: executions per instance, the switchable faults, tokens,
//! download grants and statistics, behind one lock, and the seeded randomness of fault rolls
//! and run times. The slot scheduler that moves executions through PENDING → RUNNING →
//! PUBLISHING → terminal (creates, cancels, the daily limit) is `super::scheduler`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::config::{GrantRefusal, SimulatorConfig};
use super::download_faults::DownloadFaults;
use super::execution::{Clock, Execution, Status};
use super::instance::Instance;
use super::stats::SimulatorStats;

/// A validated create request.
#[derive(Debug)]
pub(crate) struct NewExecution {
    pub(crate) instance: String,
    pub(crate) workflow_id: String,
    pub(crate) workflow_key: String,
    pub(crate) sql_query: Option<String>,
    pub(crate) parameter_values: Option<Value>,
    pub(crate) start_original: String,
    pub(crate) end_original: String,
    pub(crate) start_date: NaiveDate,
    pub(crate) time_zone: String,
    pub(crate) start_utc: DateTime<Utc>,
    pub(crate) end_utc: DateTime<Utc>,
}

/// Why a cancel was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CancelRefused {
    Unknown,
    /// Only PENDING and RUNNING executions can be cancelled.
    Status(Status),
}

/// Fault settings that `SimulatorControl` may change while the server runs.
#[derive(Debug)]
pub(crate) struct Faults {
    pub(crate) rate_429: f64,
    pub(crate) rate_5xx: f64,
    pub(crate) omit_id_rate: f64,
    pub(crate) create_then_5xx_rate: f64,
    pub(crate) list_lag: Duration,
    pub(crate) daily_limit: u64,
    pub(crate) daily_window: Duration,
    pub(crate) fail_windows: BTreeSet<NaiveDate>,
    pub(crate) reject_windows: BTreeSet<NaiveDate>,
    pub(crate) url_ttl: Duration,
    pub(crate) download: DownloadFaults,
    pub(crate) echo_sql_reformatted: bool,
    /// New executions get hostile text (`execution::HOSTILE_TEXT`) in their id, status, reason.
    pub(crate) hostile_text: bool,
    pub(crate) rate_429_bare: f64,
    pub(crate) fail_validation_sql: Vec<String>,
    /// The token endpoint refuses grants, this way, until this instant.
    pub(crate) refuse_grants: Option<(Instant, GrantRefusal)>,
}

/// A pre-signed download URL the S3 stand-in honours until `expires`.
#[derive(Debug)]
pub(crate) struct UrlGrant {
    pub(crate) execution: String,
    pub(crate) index: usize,
    pub(crate) expires: Instant,
}

/// Everything behind the server, shared by all handlers and the handle.
pub(crate) struct Shared {
    pub(crate) config: SimulatorConfig,
    pub(crate) clock: Clock,
    pub(crate) requests_total: AtomicU64,
    pub(crate) fault_rolls: AtomicU64,
    pub(crate) replies: AtomicU64,
    state: Mutex<State>,
}

pub(crate) struct State {
    pub(crate) faults: Faults,
    pub(crate) tokens: HashMap<String, Instant>,
    /// The refresh token each live access token was granted for, so revoking a refresh token
    /// revokes its access tokens (as LwA does) and no other.
    token_origins: HashMap<String, String>,
    /// Refresh tokens revoked: refused with `invalid_grant`.
    revoked_refresh_tokens: HashSet<String>,
    pub(crate) executions: HashMap<String, Execution>,
    pub(crate) instances: HashMap<String, Instance>,
    pub(crate) urls: HashMap<String, UrlGrant>,
    pub(crate) stats: SimulatorStats,
    /// The next execution's creation sequence number.
    pub(super) next_seq: u64,
    /// When the stats were last reset (or the simulator started): timeline figures cover
    /// executions created since.
    pub(super) stats_since: Instant,
}

impl Shared {
    pub(crate) fn new(config: SimulatorConfig) -> Self {
        let faults = Faults {
            rate_429: config.rate_429,
            rate_5xx: config.rate_5xx,
            omit_id_rate: config.omit_id_rate,
            create_then_5xx_rate: config.create_then_5xx_rate,
            list_lag: Duration::from_millis(config.list_lag_ms),
            daily_limit: config.daily_limit,
            daily_window: Duration::from_millis(config.daily_window_ms),
            fail_windows: config.fail_windows.iter().copied().collect(),
            reject_windows: config.reject_windows.iter().copied().collect(),
            url_ttl: Duration::from_millis(config.url_ttl_ms),
            download: DownloadFaults::new(&config),
            echo_sql_reformatted: config.echo_sql_reformatted,
            hostile_text: config.hostile_text,
            rate_429_bare: config.rate_429_bare,
            fail_validation_sql: config.fail_validation_sql.clone(),
            refuse_grants: (config.refuse_grants_ms > 0).then(|| {
                let refusal = Duration::from_millis(config.refuse_grants_ms);
                (far_after(refusal), config.refuse_grants_kind)
            }),
        };
        let state = State {
            faults,
            tokens: HashMap::new(),
            token_origins: HashMap::new(),
            revoked_refresh_tokens: config
                .revoke_refresh_tokens
                .iter()
                .map(|token| token.expose_secret().to_owned())
                .collect(),
            executions: HashMap::new(),
            instances: HashMap::new(),
            urls: HashMap::new(),
            stats: SimulatorStats::default(),
            next_seq: 0,
            stats_since: Instant::now(),
        };
        Self {
            config,
            clock: Clock::new(),
            requests_total: AtomicU64::new(0),
            fault_rolls: AtomicU64::new(0),
            replies: AtomicU64::new(0),
            state: Mutex::new(state),
        }
    }

    /// Locks the state. A poisoned lock is recovered: every critical section leaves the state
    /// consistent before anything that could panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Three uniform draws in [0, 1) for the next AMC request, from the seed and a request
    /// counter so that a given request sequence always meets the same faults.
    pub(crate) fn rolls(&self) -> [f64; 3] {
        let counter = self.fault_rolls.fetch_add(1, Ordering::Relaxed);
        let mut rng = StdRng::seed_from_u64(mix(self.config.seed, counter));
        [rng.gen(), rng.gen(), rng.gen()]
    }

    /// Whether the next create/get reply wraps the object, per the configured shape.
    pub(crate) fn wrap_next_reply(&self) -> bool {
        use super::config::ReplyShape;
        match self.config.reply_shape {
            ReplyShape::TopLevel => false,
            ReplyShape::Wrapped => true,
            ReplyShape::Mixed => self.replies.fetch_add(1, Ordering::Relaxed) % 2 == 1,
        }
    }

    /// Whether `given` is one of the refresh tokens the simulator grants for (revoked or not).
    pub(crate) fn refresh_token_known(&self, given: &str) -> bool {
        given == self.config.refresh_token.expose_secret()
            || self
                .config
                .extra_refresh_tokens
                .iter()
                .any(|token| token.expose_secret() == given)
    }

    pub(crate) fn credentials(&self) -> (String, String, String) {
        (
            self.config.client_id.clone(),
            self.config.client_secret.expose_secret().to_owned(),
            self.config.refresh_token.expose_secret().to_owned(),
        )
    }

    pub(crate) fn stats_snapshot(&self) -> SimulatorStats {
        let now = Instant::now();
        let mut state = self.lock();
        let names: Vec<String> = state.instances.keys().cloned().collect();
        for name in names {
            state.advance(&self.config, &name, now);
        }
        let mut stats = state.stats.clone();
        stats.requests_total = self.requests_total.load(Ordering::Relaxed);
        stats.timeline_per_instance = state.timelines(&self.config);
        stats
    }

    /// Every execution created so far, as received, oldest first.
    pub(crate) fn received(&self) -> Vec<super::stats::ReceivedExecution> {
        let state = self.lock();
        let mut executions: Vec<&Execution> = state.executions.values().collect();
        executions.sort_by_key(|execution| execution.seq);
        executions
            .into_iter()
            .map(|execution| super::stats::ReceivedExecution {
                workflow_execution_id: execution.id.clone(),
                instance: execution.instance.clone(),
                workflow_id: execution.workflow_id.clone(),
                sql_query: execution.sql_query.clone(),
                parameter_values: execution.parameter_values.clone(),
                time_window_start: execution.start_original.clone(),
            })
            .collect()
    }

    pub(crate) fn reset_stats(&self) {
        let mut state = self.lock();
        state.stats = SimulatorStats::default();
        state.stats_since = Instant::now();
        drop(state);
        self.requests_total.store(0, Ordering::Relaxed);
    }
}

impl State {
    /// Whether `token` is a live access token.
    pub(crate) fn token_is_valid(&self, token: &str, now: Instant) -> bool {
        self.tokens.get(token).is_some_and(|expires| *expires > now)
    }

    /// Revokes a refresh token and every access token granted for it.
    pub(crate) fn revoke_refresh_token(&mut self, refresh_token: &str) {
        self.revoked_refresh_tokens.insert(refresh_token.to_owned());
        let revoked: Vec<String> = self
            .token_origins
            .iter()
            .filter(|(_, origin)| origin.as_str() == refresh_token)
            .map(|(token, _)| token.clone())
            .collect();
        for token in revoked {
            self.tokens.remove(&token);
            self.token_origins.remove(&token);
        }
    }

    pub(crate) fn refresh_token_revoked(&self, refresh_token: &str) -> bool {
        self.revoked_refresh_tokens.contains(refresh_token)
    }

    pub(crate) fn issue_token(
        &mut self,
        ttl: Duration,
        now: Instant,
        refresh_token: &str,
    ) -> SecretString {
        if self.tokens.len() > 1024 {
            self.tokens.retain(|_, expires| *expires > now);
            let tokens = &self.tokens;
            self.token_origins
                .retain(|token, _| tokens.contains_key(token));
        }
        let token = format!(
            "Atza|{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.tokens.insert(token.clone(), now + ttl);
        self.token_origins
            .insert(token.clone(), refresh_token.to_owned());
        SecretString::from(token)
    }

    /// Registers a fresh pre-signed URL signature for one result file.
    pub(crate) fn grant_url(&mut self, execution: &str, index: usize, now: Instant) -> String {
        if self.urls.len() > 4096 {
            self.urls.retain(|_, grant| grant.expires > now);
        }
        let signature = format!("{}", uuid::Uuid::new_v4().simple());
        self.urls.insert(
            signature.clone(),
            UrlGrant {
                execution: execution.to_owned(),
                index,
                expires: now + self.faults.url_ttl,
            },
        );
        signature
    }
}

/// `running_ms` with the configured ± jitter, stable for a given seed and execution id.
/// `now + duration`, or a century ahead when that overflows (a refusal "forever").
pub(crate) fn far_after(duration: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

pub(super) fn jittered_running(config: &SimulatorConfig, id: &str) -> Duration {
    let base = config.running_ms as f64;
    let pct = config.duration_jitter_pct.clamp(0.0, 100.0);
    if pct == 0.0 {
        return Duration::from_millis(config.running_ms);
    }
    let digest = Sha256::new()
        .chain_update(config.seed.to_le_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    let mut rng = StdRng::from_seed(digest.into());
    let factor = 1.0 + rng.gen_range(-1.0..=1.0) * pct / 100.0;
    Duration::from_millis((base * factor).max(0.0).round() as u64)
}

/// Spreads a counter over the seed space (splitmix64 finaliser) so neighbouring requests get
/// unrelated random streams.
fn mix(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
