//! The `Alerter` actor: every `alerts.poll_interval_ms` it runs one bounded round — write the
//! alerts its `Watch` observed (credentials, daily limit), then claim a few due alerts from the
//! outbox and post them one by one — and never more than one round at a time. It shares no
//! mailbox or lock with the pipeline: a slow or dead webhook delays alerts, never weeks.
//!
//! It writes only `alert_outbox` (its own table; the DbWriter keeps every write of the state
//! machine). Several processes may deliver from one Postgres: rows are leased (`claim_alerts`),
//! and a lease that expires with its process is taken over, so an alert goes out at least once.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;

use super::{retry_delay, Watch, Webhook};
use crate::actors::collection::GetCollectionProgress;
use crate::actors::gateway::{AmcGateway, GetGatewayStatus};
use crate::actors::supervisor::{GetSupervisorStatus, Supervisor};
use crate::ids::CollectionId;
use crate::store::{NewAlert, Store};

/// How long an actor may take to answer the alerter's questions.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Alerts claimed (and posted one after the other) per round.
const CLAIM_BATCH: i64 = 20;
/// Longest pause between two looks at the collections' daily-limit waits.
const QUOTA_LOOK_EVERY: Duration = Duration::from_secs(30);

/// The alerter's pacing (from `[alerts]`).
#[derive(Debug, Clone)]
pub struct AlerterSettings {
    pub poll_interval: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub quota_waiting_after: Duration,
    /// The process's lease owner name (claims of the outbox are made under it).
    pub owner: String,
}

impl AlerterSettings {
    pub fn from_config(settings: &crate::config::AlertsSettings, owner: &str) -> Self {
        Self {
            poll_interval: settings.poll_interval(),
            backoff_base: settings.backoff_base(),
            backoff_max: settings.backoff_max(),
            quota_waiting_after: settings.quota_waiting_after(),
            owner: owner.to_string(),
        }
    }

    /// How often waits for the daily limit are looked at: often enough to report a wait soon
    /// after it passed the threshold, rarely enough not to ask every collection every round.
    fn quota_look_every(&self) -> Duration {
        (self.quota_waiting_after / 4)
            .clamp(self.poll_interval, QUOTA_LOOK_EVERY.max(self.poll_interval))
    }
}

/// What a round carries from one to the next.
#[derive(Default)]
struct RoundState {
    watch: Watch,
    /// Observed alerts not written yet (the database failed): written next round.
    unsaved: Vec<NewAlert>,
    last_quota_look: Option<tokio::time::Instant>,
    last_prune: Option<tokio::time::Instant>,
}

/// Delivers the outbox's alerts to the webhook.
pub struct Alerter {
    store: Store,
    webhook: Webhook,
    settings: AlerterSettings,
    gateway: Addr<AmcGateway>,
    supervisor: Addr<Supervisor>,
    /// `None` while a round runs (it holds the state).
    state: Option<RoundState>,
    /// Held by the running round; `StopAlerter` waits for it.
    round: Arc<tokio::sync::Mutex<()>>,
    stopping: bool,
}

impl Alerter {
    pub fn new(
        store: Store,
        webhook: Webhook,
        settings: AlerterSettings,
        gateway: Addr<AmcGateway>,
        supervisor: Addr<Supervisor>,
    ) -> Self {
        Self {
            store,
            webhook,
            settings,
            gateway,
            supervisor,
            state: Some(RoundState::default()),
            round: Arc::new(tokio::sync::Mutex::new(())),
            stopping: false,
        }
    }

    fn start_round(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let Some(mut state) = self.state.take() else {
            return; // the previous round is still running
        };
        let Ok(guard) = self.round.clone().try_lock_owned() else {
            self.state = Some(state);
            return;
        };
        let store = self.store.clone();
        let webhook = self.webhook.clone();
        let settings = self.settings.clone();
        let gateway = self.gateway.clone();
        let supervisor = self.supervisor.clone();
        let round = async move {
            observe(&mut state, &gateway, &supervisor, &settings).await;
            save(&store, &mut state.unsaved).await;
            deliver(&store, &webhook, &settings).await;
            prune(&store, &mut state.last_prune).await;
            drop(guard);
            state
        };
        ctx.spawn(round.into_actor(self).map(|state, act, _| {
            act.state = Some(state);
        }));
    }
}

impl Actor for Alerter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(host = %self.webhook.host(), "Alerts are posted to the webhook.");
        self.start_round(ctx);
        ctx.run_interval(self.settings.poll_interval, |act, ctx| act.start_round(ctx));
    }
}

/// Stops the alerter after its current round (if any) and one last delivery of what is due
/// (e.g. the `collection.completed` of a `run --exit-when-idle`), bounded in time, so no query
/// of it is left pending when the runtime stops. Undelivered alerts wait for the next start.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAlerter;

impl Handler<StopAlerter> for Alerter {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _msg: StopAlerter, _ctx: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        let round = self.round.clone();
        let store = self.store.clone();
        let webhook = self.webhook.clone();
        let settings = self.settings.clone();
        let mut state = self.state.take();
        let last = webhook.timeout.saturating_mul(2) + Duration::from_secs(5);
        Box::pin(
            async move {
                let _ended = round.lock_owned().await;
                if let Some(state) = state.as_mut() {
                    save(&store, &mut state.unsaved).await;
                }
                let _ = tokio::time::timeout(last, deliver(&store, &webhook, &settings)).await;
            }
            .into_actor(self)
            .map(|(), _act, ctx| ctx.stop()),
        )
    }
}

/// Looks at the credentials (every round) and the daily-limit waits (now and then).
async fn observe(
    state: &mut RoundState,
    gateway: &Addr<AmcGateway>,
    supervisor: &Addr<Supervisor>,
    settings: &AlerterSettings,
) {
    match gateway.send(GetGatewayStatus).timeout(ASK_TIMEOUT).await {
        Ok(status) => {
            let alerts = state.watch.credential_sets(&status.credential_sets);
            state.unsaved.extend(alerts);
        }
        Err(error) => tracing::debug!(%error, "Alerter: the gateway did not answer."),
    }
    let due = state
        .last_quota_look
        .is_none_or(|at| at.elapsed() >= settings.quota_look_every());
    if !due {
        return;
    }
    state.last_quota_look = Some(tokio::time::Instant::now());
    let Ok(status) = supervisor
        .send(GetSupervisorStatus)
        .timeout(ASK_TIMEOUT)
        .await
    else {
        return;
    };
    let asks = status.children.into_iter().filter_map(|child| {
        let addr = child.addr?;
        Some(async move {
            let reply = addr.send(GetCollectionProgress).timeout(ASK_TIMEOUT).await;
            (child.collection_id, reply.ok())
        })
    });
    let now = Utc::now();
    let waits: Vec<(CollectionId, chrono::DateTime<Utc>)> = futures::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(|(id, progress)| Some((id, progress?.waiting_daily_limit_until?)))
        .filter(|(_, until)| *until > now)
        .collect();
    let alerts = state.watch.quota(now, &waits, settings.quota_waiting_after);
    state.unsaved.extend(alerts);
}

/// Writes the observed alerts; those the database refused stay for the next round.
async fn save(store: &Store, unsaved: &mut Vec<NewAlert>) {
    let mut kept = Vec::new();
    for alert in unsaved.drain(..) {
        if let Err(error) = store.enqueue_alert(&alert).await {
            tracing::warn!(%error, event = alert.event.as_str(), "Alert not written yet.");
            kept.push(alert);
        }
    }
    *unsaved = kept;
}

/// Delivered alerts are kept this long (for `status` and whoever reads the outbox), then deleted.
const DELIVERED_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// How often delivered alerts past `DELIVERED_KEPT` are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes delivered alerts older than `DELIVERED_KEPT`, at most once per `PRUNE_EVERY`, so an
/// outbox of a process running for months stays small. Undelivered alerts are never deleted.
async fn prune(store: &Store, last: &mut Option<tokio::time::Instant>) {
    if last.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
        return;
    }
    *last = Some(tokio::time::Instant::now());
    match store
        .prune_delivered_alerts(Utc::now() - DELIVERED_KEPT)
        .await
    {
        Ok(0) => {}
        Ok(pruned) => tracing::info!(pruned, "Old delivered alerts deleted from the outbox."),
        Err(error) => tracing::warn!(%error, "Old delivered alerts could not be deleted."),
    }
}

/// Claims due alerts and posts them in order. The first failure ends the round: that alert is
/// retried after its backoff, the rest of the claim is released untried (a dead webhook costs
/// one attempt per round, not one per alert).
async fn deliver(store: &Store, webhook: &Webhook, settings: &AlerterSettings) {
    // The lease outlives the worst round (every post timing out), so no other process takes
    // an alert this one is still posting.
    let lease = chrono::TimeDelta::from_std(
        webhook.timeout.saturating_mul(CLAIM_BATCH as u32 + 1) + Duration::from_secs(30),
    )
    .unwrap_or(chrono::TimeDelta::hours(1));
    let until = Utc::now() + lease;
    let claimed = match store
        .claim_alerts(&settings.owner, until, CLAIM_BATCH)
        .await
    {
        Ok(claimed) => claimed,
        Err(error) => {
            tracing::warn!(%error, "Alerts could not be read from the outbox.");
            return;
        }
    };
    let mut pending = claimed.into_iter();
    for alert in pending.by_ref() {
        match webhook.post(&alert).await {
            Ok(()) => {
                tracing::info!(alert_id = alert.id, event = %alert.event, "Alert delivered.");
                if let Err(error) = store.alert_delivered(alert.id).await {
                    // The lease expires and the alert is posted again: at least once.
                    tracing::warn!(%error, alert_id = alert.id, "Delivery not recorded.");
                }
            }
            Err(failure) => {
                let failures = u32::try_from(alert.attempts).unwrap_or(0).saturating_add(1);
                let delay = retry_delay(settings.backoff_base, settings.backoff_max, failures);
                let retry_at = Utc::now()
                    + chrono::TimeDelta::from_std(delay).unwrap_or(chrono::TimeDelta::hours(1));
                tracing::warn!(
                    alert_id = alert.id,
                    event = %alert.event,
                    error = %failure,
                    attempts = failures,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "Alert not delivered; retried later."
                );
                if let Err(error) = store
                    .alert_failed(alert.id, &failure.to_string(), retry_at)
                    .await
                {
                    tracing::warn!(%error, alert_id = alert.id, "Delivery failure not recorded.");
                }
                break;
            }
        }
    }
    let untried: Vec<i64> = pending.map(|alert| alert.id).collect();
    if !untried.is_empty() {
        if let Err(error) = store.release_alerts(&untried).await {
            tracing::debug!(%error, "Untried alerts not released; their lease expires.");
        }
    }
}
