//! An execution AMC no longer has: its results can never be downloaded, but the week can be
//! collected by a new execution, so its attempt fails as retryable instead of for good.

use super::outcome::WeekOutcome;
use super::steps::{fail_attempt, WeekContext};
use crate::actors::gateway::GatewayError;
use crate::amc::{AmcError, Endpoint};
use crate::ids::ExecutionId;
use crate::status::ExecutionStatus;
use crate::store::model::Week;

/// Stored status of an execution that SUCCEEDED but whose results AMC will never deliver. Not
/// "succeeded": the next attempt would download the same execution again instead of creating one.
pub(super) const UNDELIVERABLE_STATUS: ExecutionStatus = ExecutionStatus::Failed;

/// Whether AMC no longer has the execution: observed, AMC answers downloadUrls of an execution it
/// no longer keeps with 404 "Workflow execution ... not found", even one that SUCCEEDED. The
/// same request can only fail again.
pub(super) fn is_lost(error: &GatewayError) -> bool {
    matches!(
        error,
        GatewayError::Amc(AmcError::Http {
            endpoint: Endpoint::DownloadUrls,
            status: 404,
            ..
        })
    )
}

/// Fails the attempt of an execution AMC lost, retryable and with the execution stored as not
/// succeeded: the next attempt (or `retry-failed`) submits a new execution instead of asking
/// for the lost one's results again.
pub(super) async fn resubmit(
    cx: &WeekContext,
    week: &Week,
    execution_id: ExecutionId,
    amc_execution_id: &str,
    error: &GatewayError,
) -> WeekOutcome {
    let reason = format!(
        "AMC no longer has execution {amc_execution_id}; the week is submitted again: {error}"
    );
    let status = Some(UNDELIVERABLE_STATUS);
    fail_attempt(cx, week, Some(execution_id), status, &reason, true).await
}
