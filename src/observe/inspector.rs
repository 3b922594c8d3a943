//! The `Inspector` actor: answers inspection queries (the tree, metrics text, readiness, the
//! dump) and logs the periodic tree summary, on the daemon's own runtime.

use std::time::Duration;

use actix::prelude::*;

use super::{
    metrics, with_timeout, ActorSnapshot, Dump, ObserveError, Targets, TreeStatus, ASK_TIMEOUT,
};
use crate::actors::gateway::GetGatewayStatus;
use crate::actors::supervisor::GetSupervisorStatus;

/// Whether the daemon should receive work: `Ready`, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Ready, but some credential sets fail: their instances wait, the others run.
    Degraded(String),
    NotReady(String),
}

/// Answers inspection queries and logs the periodic tree summary. Lives on the daemon's arbiter.
pub struct Inspector {
    targets: Targets,
    /// `None` turns the periodic summary off.
    tree_log_interval: Option<Duration>,
}

impl Inspector {
    pub fn new(targets: Targets, tree_log_interval: Option<Duration>) -> Self {
        Self {
            targets,
            tree_log_interval,
        }
    }

    /// Schedules the next summary only after this one is logged, so slow answers never pile up.
    fn schedule_tree_log(&self, ctx: &mut Context<Self>) {
        let Some(interval) = self.tree_log_interval else {
            return;
        };
        ctx.run_later(interval, |act, ctx| {
            let targets = act.targets.clone();
            ctx.spawn(
                async move {
                    match ActorSnapshot::take(&targets, true).await {
                        Ok(snapshot) => snapshot.tree().log_summary(),
                        Err(error) => tracing::warn!(%error, "Actor tree summary unavailable."),
                    }
                }
                .into_actor(act)
                .map(|(), act, ctx| act.schedule_tree_log(ctx)),
            );
        });
    }
}

impl Actor for Inspector {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.schedule_tree_log(ctx);
    }
}

/// The actor tree (`/status`).
#[derive(Message)]
#[rtype(result = "Result<TreeStatus, ObserveError>")]
pub struct GetTree;

/// The Prometheus exposition text (`/metrics`).
#[derive(Message)]
#[rtype(result = "Result<String, ObserveError>")]
pub struct GetMetrics;

/// Readiness (`/readyz`): the supervisor is not shutting down, Login-with-Amazon grants tokens
/// (no credentials outage) and the database answers.
#[derive(Message)]
#[rtype(result = "Readiness")]
pub struct CheckReadiness;

/// Takes the full dump (SIGUSR1); the caller logs it.
#[derive(Message)]
#[rtype(result = "Result<Dump, ObserveError>")]
pub struct TakeDump;

impl Handler<GetTree> for Inspector {
    type Result = ResponseFuture<Result<TreeStatus, ObserveError>>;

    fn handle(&mut self, _msg: GetTree, _ctx: &mut Self::Context) -> Self::Result {
        let targets = self.targets.clone();
        Box::pin(async move {
            let mut tree = ActorSnapshot::take(&targets, true).await?.tree();
            // Alerts: a database that does not answer leaves the rest of the tree.
            if targets.alerts_enabled {
                tree.alerts = with_timeout(ASK_TIMEOUT, targets.store.undelivered_alerts())
                    .await
                    .ok();
            }
            tree.held = with_timeout(ASK_TIMEOUT, targets.store.held_collections())
                .await
                .unwrap_or_default();
            Ok(tree)
        })
    }
}

impl Handler<GetMetrics> for Inspector {
    type Result = ResponseFuture<Result<String, ObserveError>>;

    fn handle(&mut self, _msg: GetMetrics, _ctx: &mut Self::Context) -> Self::Result {
        let targets = self.targets.clone();
        Box::pin(async move { metrics::scrape(&targets).await })
    }
}

impl Handler<CheckReadiness> for Inspector {
    type Result = ResponseFuture<Readiness>;

    fn handle(&mut self, _msg: CheckReadiness, _ctx: &mut Self::Context) -> Self::Result {
        let targets = self.targets.clone();
        Box::pin(async move {
            let status = targets
                .supervisor
                .send(GetSupervisorStatus)
                .timeout(ASK_TIMEOUT)
                .await;
            match status {
                Ok(status) if status.shutting_down => {
                    return Readiness::NotReady("shutting down".into())
                }
                Ok(_) => {}
                Err(error) => {
                    return Readiness::NotReady(format!("supervisor did not answer: {error}"))
                }
            }
            // While credentials fail no AMC call can be made: not ready, and say why.
            match targets
                .gateway
                .send(GetGatewayStatus)
                .timeout(ASK_TIMEOUT)
                .await
            {
                Ok(gateway) => {
                    // Not ready when no set serving instances works; a failing set beside working
                    // ones holds only its instances: ready, with the reason.
                    let another_works = gateway.credential_sets.iter().any(|set| {
                        set.name != crate::amc::DEFAULT_CREDENTIAL_SET
                            && set.state == crate::amc::CredentialSetState::Ok
                            && !set.instances.is_empty()
                    });
                    if let Some(reason) = gateway.credentials.describe() {
                        if !another_works {
                            return Readiness::NotReady(reason);
                        }
                    }
                    let failing: Vec<String> = gateway
                        .credential_sets
                        .iter()
                        .filter_map(|set| set.describe())
                        .collect();
                    if !failing.is_empty() {
                        return match with_timeout(ASK_TIMEOUT, targets.store.ping()).await {
                            Ok(()) => Readiness::Degraded(failing.join("; ")),
                            Err(error) => Readiness::NotReady(error.to_string()),
                        };
                    }
                }
                Err(error) => {
                    return Readiness::NotReady(format!("gateway did not answer: {error}"))
                }
            }
            match with_timeout(ASK_TIMEOUT, targets.store.ping()).await {
                Ok(()) => Readiness::Ready,
                Err(error) => Readiness::NotReady(error.to_string()),
            }
        })
    }
}

impl Handler<TakeDump> for Inspector {
    type Result = ResponseFuture<Result<Dump, ObserveError>>;

    fn handle(&mut self, _msg: TakeDump, _ctx: &mut Self::Context) -> Self::Result {
        let targets = self.targets.clone();
        Box::pin(async move { Dump::take(&targets).await })
    }
}

/// Stops the inspector (and with it the periodic tree log).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopInspector;

impl Handler<StopInspector> for Inspector {
    type Result = ();

    fn handle(&mut self, _msg: StopInspector, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
