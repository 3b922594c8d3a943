//! How long recent executions of a workflow ran on an instance, read for the poll timing of its
//! next executions (`actors::collection::poll_plan`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{with_pool, Store, StoreError};
use crate::ids::{InstanceId, WorkflowId};
use crate::status::ExecutionStatus;

impl Store {
    /// The run times (AMC's answer to the create until the week's results were stored) of the
    /// newest `limit` succeeded executions of `workflow_id` on `instance_id`, newest first.
    pub async fn recent_run_times(
        &self,
        instance_id: InstanceId,
        workflow_id: WorkflowId,
        limit: i64,
    ) -> Result<Vec<Duration>, StoreError> {
        let sql = "SELECT e.submitted_at, e.completed_at FROM workflow_executions e \
             JOIN report_data_collections c ON c.id = e.collection_id \
             WHERE e.instance_id = $1 AND c.workflow_id = $2 AND e.status = $3 \
             AND e.submitted_at IS NOT NULL AND e.completed_at IS NOT NULL \
             ORDER BY e.completed_at DESC LIMIT $4";
        let rows: Vec<(DateTime<Utc>, DateTime<Utc>)> =
            with_pool!(self, |pool| sqlx::query_as(sql)
                .bind(instance_id)
                .bind(workflow_id)
                .bind(ExecutionStatus::Succeeded.as_str())
                .bind(limit)
                .fetch_all(pool)
                .await)?;
        Ok(rows
            .into_iter()
            .filter_map(|(submitted, completed)| (completed - submitted).to_std().ok())
            .collect())
    }
}
