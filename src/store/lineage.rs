//! Which AMC execution belongs to which week: an AMC execution is recorded for one week only
//! (`workflow_executions.amc_execution_id` is unique), so adoption by listing must never take an
//! execution another week (of this collection or another over the same window) already holds.

use super::{with_pool, Store, StoreError};
use crate::ids::ExecutionId;

impl Store {
    /// AMC ids already recorded for any execution of the same request as `execution` (same
    /// instance, workflow, window, zone and parameters: the idempotency key), other than
    /// `execution` itself: earlier attempts of its week and the executions of other
    /// collections' weeks over the same window. None of them may be adopted by `execution`.
    pub async fn recorded_amc_ids(
        &self,
        execution: ExecutionId,
    ) -> Result<Vec<String>, StoreError> {
        let sql = "SELECT o.amc_execution_id FROM workflow_executions o \
                   WHERE o.idempotency_key = \
                       (SELECT me.idempotency_key FROM workflow_executions me WHERE me.id = $1) \
                   AND o.id <> $1 AND o.amc_execution_id IS NOT NULL";
        Ok(with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(execution)
            .fetch_all(pool)
            .await)?)
    }

    /// Whether `amc_execution_id` is recorded for an execution other than `execution`: a
    /// listing found it before the other week stored it, so it is not `execution`'s to adopt.
    pub async fn amc_id_held_elsewhere(
        &self,
        amc_execution_id: &str,
        execution: ExecutionId,
    ) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM workflow_executions \
                   WHERE amc_execution_id = $1 AND id <> $2";
        let held: i64 = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(amc_execution_id)
            .bind(execution)
            .fetch_one(pool)
            .await)?;
        Ok(held > 0)
    }
}
