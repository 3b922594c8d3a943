//! Applying the operator's `cancel` on AMC: executions of cancelled weeks still in flight are
//! cancelled through the gateway (the CLI cannot: only the gateway talks to AMC).

use actix::prelude::*;

use crate::actors::db_writer::{DbWriter, RecordTransition};
use crate::actors::gateway::{
    instance_ref, AmcGateway, CancelExecution, GatewayError, PollExecution,
};
use crate::amc::{AmcError, InstanceRef};
use crate::status::ExecutionStatus;
use crate::store::ExecutionToCancel;
use crate::store::{StatusReport, Store, Transition};

/// Cancels on AMC the executions of weeks the operator cancelled (the CLI cannot: only the
/// gateway talks to AMC). A 400 means AMC already ended it: the execution is read to store how.
pub(super) async fn sweep_cancellations(
    store: Store,
    gateway: Addr<AmcGateway>,
    db: Addr<DbWriter>,
) {
    let executions = match store.executions_to_cancel().await {
        Ok(executions) => executions,
        Err(error) => {
            tracing::warn!(%error, "Looking for executions to cancel failed.");
            return;
        }
    };
    for execution in executions {
        let Ok(Ok(instance)) = store
            .instance_by_id(execution.instance_id)
            .await
            .map(|instance| instance_ref(&instance))
        else {
            continue;
        };
        let Some((amc_status, reason)) = cancel(&gateway, &instance, &execution).await else {
            continue;
        };
        tracing::info!(execution_id = %execution.id, amc_execution_id = %execution.amc_execution_id, %amc_status, "AMC execution of a cancelled week ended.");
        let _ = db
            .send(RecordTransition {
                transition: Transition::ExecutionStatus(StatusReport {
                    execution_id: execution.id,
                    status: amc_status,
                    status_reason: Some(reason),
                }),
            })
            .await;
    }
}

/// Cancels one execution on AMC; returns how it ended (status, reason), or `None` to try again at
/// the next sweep.
async fn cancel(
    gateway: &Addr<AmcGateway>,
    instance: &InstanceRef,
    execution: &ExecutionToCancel,
) -> Option<(ExecutionStatus, String)> {
    let request = CancelExecution {
        instance: instance.clone(),

        amc_execution_id: execution.amc_execution_id.clone(),
    };
    match gateway.send(request).await {
        Ok(Ok(())) => Some((
            ExecutionStatus::Cancelled,
            "cancelled by the operator".to_string(),
        )),
        // AMC refuses to cancel an execution that already ended: store how it ended (it may have
        // SUCCEEDED), so the record and the slot count are true.
        Ok(Err(GatewayError::Amc(AmcError::Http { status: 400, .. }))) => {
            how_it_ended(gateway, instance, execution).await
        }
        Ok(Err(GatewayError::Amc(AmcError::Http { status: 404, .. }))) => Some((
            ExecutionStatus::Deleted,
            "AMC no longer knows the execution".to_string(),
        )),
        Ok(Err(error)) => {
            tracing::warn!(%error, amc_execution_id = %execution.amc_execution_id, "Cancelling an AMC execution failed; will retry.");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "Gateway unavailable while cancelling.");
            None
        }
    }
}

/// Reads an execution AMC would not cancel: its terminal status and reason, or `None` while it
/// still runs (or cannot be read).
async fn how_it_ended(
    gateway: &Addr<AmcGateway>,
    instance: &InstanceRef,
    execution: &ExecutionToCancel,
) -> Option<(ExecutionStatus, String)> {
    let poll = PollExecution {
        instance: instance.clone(),

        amc_execution_id: execution.amc_execution_id.clone(),
    };
    match gateway.send(poll).await {
        Ok(Ok(info)) if info.status.is_terminal() => Some((
            ExecutionStatus::from_amc(&info.status),
            info.status_reason
                .unwrap_or_else(|| "ended before the operator's cancel reached AMC".into()),
        )),
        Ok(Ok(info)) => {
            tracing::warn!(amc_status = %info.status.as_str(), "AMC refused a cancel of a running execution; will retry.");
            None
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "Reading an execution AMC would not cancel failed; will retry.");
            None
        }
        Err(error) => {
            tracing::warn!(%error, "Gateway unavailable while cancelling.");
            None
        }
    }
}
