//! Collections AMC will never run, and the evidence for it: holding a collection (it becomes
//! `paused` with AMC's reason in `held_reason`, and a `collection.held` alert is written in the
//! same commit), the reads that decide it (the same failure twice with no week completed), and
//! whether a workflow has ever completed a week on an instance (probing, `actors::collection`).
//! `collection resume` clears the mark (`control.rs`).

use chrono::{DateTime, Utc};

use super::alerts::{AlertEvent, NewAlert, OutboxTx};
use super::{with_pool, Fence, Store, StoreError};
use crate::ids::{CollectionId, InstanceId, WorkflowId};
use crate::status::{CollectionStatus, ExecutionStatus, WeekStatus};

/// Executions that failed with the same reason before anything completed: the collection is held.
pub const SAME_FAILURES_TO_HOLD: i64 = 2;

/// Text that starts a week's `error_message` (and a hold's reason) while AMC refuses its
/// creates without a reason the client can classify (`actors::collection::refusals`).
pub const CREATE_REFUSED: &str = "AMC refuses creates: ";

impl Store {
    /// Holds the collection with `reason` if it is still pending or running under `fence`, and
    /// writes the `collection.held` alert in the same commit. `false` when nothing changed (the
    /// operator paused or cancelled it meanwhile, the lease was lost, or it is held already).
    pub async fn hold_collection(
        &self,
        collection_id: CollectionId,
        reason: &str,
        fence: &Fence,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let sql = "UPDATE report_data_collections SET status = $2, held_reason = $3, \
                   held_at = $4, updated_at = $4 \
                   WHERE id = $1 AND status IN ($5, $6) AND held_reason IS NULL \
                   AND lease_owner = $7 AND lease_epoch = $8";
        let alert = NewAlert {
            event: AlertEvent::CollectionHeld,
            collection_id: Some(collection_id),
            dedup_key: Some(format!(
                "collection.held:{collection_id}:{}",
                now.timestamp()
            )),
            payload: serde_json::json!({ "reason": reason }),
        };
        let held = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(sql)
                .bind(collection_id)
                .bind(CollectionStatus::Paused.as_str())
                .bind(reason)
                .bind(now)
                .bind(CollectionStatus::Pending.as_str())
                .bind(CollectionStatus::Running.as_str())
                .bind(&fence.owner)
                .bind(fence.epoch)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if moved {
                tx.alert_insert(&alert, now).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(moved)
        })?;
        Ok(held)
    }

    /// AMC's reason when at least [`SAME_FAILURES_TO_HOLD`] executions of the collection ended
    /// FAILED or REJECTED with the same `statusReason` and none of its weeks has completed:
    /// such a query fails every run, and each run spends one of the instance's daily executions.
    pub async fn repeated_failure(
        &self,
        collection_id: CollectionId,
    ) -> Result<Option<String>, StoreError> {
        let sql = "SELECT e.status_reason FROM workflow_executions e \
                   WHERE e.collection_id = $1 AND e.amc_execution_id IS NOT NULL \
                   AND e.status IN ($2, $3) AND e.status_reason IS NOT NULL \
                   AND NOT EXISTS (SELECT 1 FROM report_data_weeks w \
                       WHERE w.collection_id = $1 AND w.status = $4) \
                   GROUP BY e.status_reason HAVING COUNT(*) >= $5 \
                   ORDER BY COUNT(*) DESC LIMIT 1";
        Ok(with_pool!(self, |pool| sqlx::query_scalar::<_, String>(
            sql
        )
        .bind(collection_id)
        .bind(ExecutionStatus::Failed.as_str())
        .bind(ExecutionStatus::Rejected.as_str())
        .bind(WeekStatus::Completed.as_str())
        .bind(SAME_FAILURES_TO_HOLD)
        .fetch_optional(pool)
        .await)?)
    }

    /// Whether AMC ever accepted a create of this collection (an execution with an AMC id).
    pub async fn collection_ever_accepted(
        &self,
        collection_id: CollectionId,
    ) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM (SELECT 1 FROM workflow_executions \
                   WHERE collection_id = $1 AND amc_execution_id IS NOT NULL LIMIT 1) AS e";
        let found: i64 = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(collection_id)
            .fetch_one(pool)
            .await)?;
        Ok(found > 0)
    }

    /// Whether `workflow` has completed a week on `instance` (in any collection): until it has,
    /// its collections there run one execution at a time.
    pub async fn workflow_proven_on(
        &self,
        workflow_id: WorkflowId,
        instance_id: InstanceId,
    ) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM (SELECT 1 FROM report_data_weeks w \
                   JOIN report_data_collections c ON c.id = w.collection_id \
                   WHERE c.workflow_id = $1 AND c.instance_id = $2 AND w.status = $3 LIMIT 1) AS d";
        let found: i64 = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(workflow_id)
            .bind(instance_id)
            .bind(WeekStatus::Completed.as_str())
            .fetch_one(pool)
            .await)?;
        Ok(found > 0)
    }

    /// Why and since when a collection is held (`None` when it is not).
    pub async fn held(
        &self,
        collection_id: CollectionId,
    ) -> Result<Option<(String, Option<DateTime<Utc>>)>, StoreError> {
        let sql = "SELECT held_reason, held_at FROM report_data_collections \
                   WHERE id = $1 AND held_reason IS NOT NULL";
        Ok(with_pool!(self, |pool| sqlx::query_as::<
            _,
            (String, Option<DateTime<Utc>>),
        >(sql)
        .bind(collection_id)
        .fetch_optional(pool)
        .await)?)
    }
}

/// A held collection as `status` and `/status` show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct HeldCollection {
    pub collection_id: CollectionId,
    pub reason: String,
    pub held_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Every held collection, oldest hold first (at most 100: a list for a person to read).
    pub async fn held_collections(&self) -> Result<Vec<HeldCollection>, StoreError> {
        let sql = "SELECT id AS collection_id, held_reason AS reason, held_at \
                   FROM report_data_collections WHERE held_reason IS NOT NULL AND status = $1 \
                   ORDER BY held_at, id LIMIT 100";
        Ok(with_pool!(self, |pool| {
            sqlx::query_as::<_, HeldCollection>(sql)
                .bind(CollectionStatus::Paused.as_str())
                .fetch_all(pool)
                .await
        })?)
    }
}

/// The `AMC refuses creates: <message> (since T)` a week of the collection waits on, if any:
/// a pending week whose create AMC refused without a reason the client can classify.
pub fn create_refusal(weeks: &[crate::store::model::Week], now: DateTime<Utc>) -> Option<String> {
    weeks
        .iter()
        .filter(|w| w.status == WeekStatus::Pending && w.next_attempt_at.is_some_and(|at| at > now))
        .filter_map(|w| w.error_message.as_deref())
        .find(|message| message.starts_with(CREATE_REFUSED))
        .map(str::to_owned)
}
