//! Applying the operator's `cancel` on AMC: executions of cancelled weeks still in flight are
//! cancelled through the gateway (the CLI cannot: only the gateway talks to AMC).

use actix::prelude::*;

use super::Supervisor;
use crate::actors::db_writer::RecordExecutionStatus;
use crate::actors::gateway::{instance_ref, CancelExecution, GatewayError};
use crate::amc::AmcError;

impl Supervisor {
    /// Cancels on AMC the executions of weeks the operator cancelled (the CLI cannot: only the
    /// gateway talks to AMC). A 400 means AMC already ended it.
    pub(super) fn sweep_cancellations(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let (store, gateway, db) = (self.store.clone(), self.gateway.clone(), self.db.clone());
        let sweep = async move {
            let executions = match store.executions_to_cancel().await {
                Ok(executions) => executions,
                Err(error) => {
                    tracing::warn!(%error, "Looking for executions to cancel failed.");
                    return;
                }
            };
            for execution in executions {
                let Ok(instance) = store.instance_by_id(execution.instance_id).await else {
                    continue;
                };
                let Ok(instance) = instance_ref(&instance) else {
                    continue;
                };
                let request = CancelExecution {
                    instance,
                    execution_id: execution.id,
                    amc_execution_id: execution.amc_execution_id.clone(),
                };
                match gateway.send(request).await {
                    Ok(Ok(())) | Ok(Err(GatewayError::Amc(AmcError::Http { status: 400, .. }))) => {
                        tracing::info!(execution_id = %execution.id, amc_execution_id = %execution.amc_execution_id, "AMC execution of a cancelled week cancelled.");
                        let _ = db
                            .send(RecordExecutionStatus {
                                execution_id: execution.id,
                                amc_status: "cancelled".into(),
                                status_reason: Some("cancelled by the operator".into()),
                            })
                            .await;
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, amc_execution_id = %execution.amc_execution_id, "Cancelling an AMC execution failed; will retry.")
                    }
                    Err(error) => tracing::warn!(%error, "Gateway unavailable while cancelling."),
                }
            }
        };
        ctx.spawn(
            sweep
                .into_actor(self)
                .map(|(), act, _ctx| act.sweeping = false),
        );
    }
}
