//! The week state machine's writes (DESIGN §3), used only by the DbWriter actor.
//!
//! Every transition is applied in a transaction that also re-derives the collection's status from
//! its weeks, and every `UPDATE` names the state it leaves, so a stale or duplicated message changes
//! nothing (`InvalidTransition`) instead of moving a week backwards. The `record_*` functions apply
//! one transition alone; the DbWriter groups many into one commit through `batch`.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::batch::Transition;
use super::fence::Fence;
use super::quota::CreateQuota;
use super::{with_pool, OutboxTx, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId, InstanceId, WeekId};

/// The intent row written before the AMC create call.
#[derive(Debug, Clone)]
pub struct SubmissionIntent {
    pub week_id: WeekId,
    pub collection_id: CollectionId,
    pub instance_id: InstanceId,
    /// Minted by the collection actor before anything else happens for this attempt.
    pub execution_id: ExecutionId,
    /// Hash of instance + workflow + window + parameters (DESIGN §3).
    pub idempotency_key: String,
    pub window_start: String,
    pub window_end: String,
    pub time_zone: String,
    pub parameters: Option<serde_json::Value>,
    /// Most executions in flight on the instance, over every process sharing the database.
    pub max_in_flight: i64,
    /// The daily limit: executions created on the instance within `quota.window`, over every
    /// process (`quota.max_creates` 0 = no limit).
    pub quota: CreateQuota,
    /// Whether the collection may still be `pending` (it becomes `running` with this intent);
    /// false once an intent of the collection's actor was stored, which saves a statement.
    pub collection_may_be_pending: bool,
    pub fence: Fence,
}

/// One parsed CSV data row, as a JSON object keyed by column name.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub file_index: i32,
    pub row_index: i32,
    pub data: serde_json::Value,
}

/// A week's result, ready to store. It cannot be built without the internal execution UUID and
/// the AMC id, so a completed week without `execution_id` cannot be expressed (the seed's bug).
#[derive(Debug, Clone)]
pub struct CompletedWeek {
    pub week_id: WeekId,
    pub collection_id: CollectionId,
    pub execution_id: ExecutionId,
    pub amc_execution_id: String,
    pub row_count: i64,
    pub data_checksum: String,
    /// Column names in CSV order.
    pub columns: Vec<String>,
    pub rows: Vec<ResultRow>,
    pub fence: Fence,
}

/// Re-derives a collection's status from its weeks; `paused` and `cancelled` are user decisions
/// and stay. Completed only when every week is; failed once nothing is open and a week failed for
/// good. `$1` is the collection, `$2` the time.
pub(super) static REFRESH_COLLECTION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} WHERE id = $1 AND status NOT IN ('paused', 'cancelled') AND NOT given_up",
        refresh_collection_set("$1")
    )
});

/// The `UPDATE … SET` of a collection's derived status, over the collection id expression `id`
/// (a parameter, or a column when many collections are refreshed at once); `$2` is the time.
pub(super) fn refresh_collection_set(id: &str) -> String {
    format!(
        "UPDATE report_data_collections SET \
        status = (SELECT CASE \
            WHEN COUNT(*) = SUM(CASE WHEN w.status = 'completed' THEN 1 ELSE 0 END) THEN 'completed' \
            WHEN SUM(CASE WHEN w.status IN ('pending', 'submitting', 'running', 'downloading') \
                           OR (w.status = 'failed' AND w.next_attempt_at IS NOT NULL) \
                     THEN 1 ELSE 0 END) = 0 THEN 'failed' \
            WHEN SUM(CASE WHEN w.status <> 'pending' THEN 1 ELSE 0 END) > 0 THEN 'running' \
            ELSE 'pending' END \
          FROM report_data_weeks w WHERE w.collection_id = {id}), \
        error_message = (SELECT CASE \
            WHEN SUM(CASE WHEN w.status = 'failed' AND w.next_attempt_at IS NULL THEN 1 ELSE 0 END) > 0 \
            THEN CAST(SUM(CASE WHEN w.status = 'failed' AND w.next_attempt_at IS NULL THEN 1 ELSE 0 END) AS TEXT) \
                 || ' of ' || CAST(COUNT(*) AS TEXT) || ' weeks failed' \
            ELSE NULL END \
          FROM report_data_weeks w WHERE w.collection_id = {id}), \
        updated_at = $2"
    )
}

impl Store {
    /// `pending`/`failed` → `submitting`: inserts the execution row and links it to the week.
    /// Refused with `SlotsFull` when the instance already has `max_in_flight` executions in flight
    /// in the database (over every process), so the AMC limit holds across processes.
    pub async fn record_intent(&self, intent: &SubmissionIntent) -> Result<(), StoreError> {
        self.apply_transition(Transition::Intent(intent.clone()))
            .await
    }

    /// `submitting` → `running`: stores the AMC id the moment AMC answers (or it is adopted).
    pub async fn record_submitted(
        &self,
        collection_id: CollectionId,
        execution_id: ExecutionId,
        amc_execution_id: &str,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        self.apply_transition(Transition::Submitted {
            collection_id,
            execution_id,
            amc_execution_id: amc_execution_id.to_owned(),
            fence: fence.clone(),
        })
        .await
    }

    /// Records the latest AMC status of an execution (for tracing; the week does not move).
    pub async fn record_execution_status(
        &self,
        execution_id: ExecutionId,
        amc_status: &str,
        status_reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.apply_transition(Transition::ExecutionStatus {
            execution_id,
            amc_status: amc_status.to_owned(),
            status_reason: status_reason.map(str::to_owned),
        })
        .await
    }

    /// `running` (or a `failed`/`pending` week whose execution succeeded) → `downloading`.
    pub async fn record_downloading(
        &self,
        collection_id: CollectionId,
        execution_id: ExecutionId,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        self.apply_transition(Transition::Downloading {
            collection_id,
            execution_id,
            fence: fence.clone(),
        })
        .await
    }

    /// `downloading` → `completed`: replaces the week's rows and stores count and checksum, in one
    /// transaction with the state change.
    pub async fn record_completed(&self, week: &CompletedWeek) -> Result<(), StoreError> {
        self.apply_transition(Transition::Completed(week.clone()))
            .await
    }

    /// Any in-flight state → `failed` with the reason. `retry_at` set means the week will be
    /// tried again then; `None` means it failed for good.
    // Each argument is one column of the transition; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_failed(
        &self,
        collection_id: CollectionId,
        week_id: WeekId,
        execution_id: Option<ExecutionId>,
        amc_status: Option<&str>,
        reason: &str,
        retry_at: Option<DateTime<Utc>>,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        self.apply_transition(Transition::Failed {
            collection_id,
            week_id,
            execution_id,
            amc_status: amc_status.map(str::to_owned),
            reason: reason.to_owned(),
            retry_at,
            fence: fence.clone(),
        })
        .await
    }

    /// Re-derives a collection's status (after a restart or a user action).
    pub async fn refresh_collection_status(&self, id: CollectionId) -> Result<(), StoreError> {
        let now = Utc::now();
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(&REFRESH_COLLECTION)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            // Alerts (issue 15): two concurrent group commits each see the other's week still
            // open, so the collection's end may be derived only here.
            tx.alert_collections(&[id], now, false).await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Marks a collection failed with a reason (e.g. its actor crashed past the restart limit).
    pub async fn fail_collection(&self, id: CollectionId, reason: &str) -> Result<(), StoreError> {
        // Failed for good and unleased in one statement, so no scan can claim it in between.
        let sql = "UPDATE report_data_collections SET status = 'failed', error_message = $2, \
                   given_up = TRUE, lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 \
                   WHERE id = $1";
        let now = Utc::now();
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(sql)
                .bind(id)
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            // Alerts (issue 15): `collection.failed`, in the same transaction.
            tx.alert_collections(&[id], now, false).await?;
            tx.commit().await
        })?;
        Ok(())
    }
}
