//! The week state machine's writes (DESIGN §3), used only by the DbWriter actor.
//!
//! Every transition is one transaction that also re-derives the collection's status from its weeks,
//! and every `UPDATE` names the state it leaves, so a stale or duplicated message changes nothing
//! (`InvalidTransition`) instead of moving a week backwards.

use chrono::{DateTime, Utc};

use super::fence::{fence_sql, Fence};
use super::{with_pool, Store, StoreError};
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

/// Rows inserted per statement: stays far below both backends' bind-parameter limits.
const ROWS_PER_INSERT: usize = 500;

/// The first submission of a pending collection makes it running (cheaper than a full refresh,
/// which only completions and failures need).
const MARK_RUNNING: &str =
    "UPDATE report_data_collections SET status = 'running', updated_at = $2 \
    WHERE id = $1 AND status = 'pending' AND NOT given_up";

/// Re-derives a collection's status from its weeks; `paused` and `cancelled` are user decisions
/// and stay. Completed only when every week is; failed once nothing is open and a week failed for good.
pub(super) const REFRESH_COLLECTION: &str = "UPDATE report_data_collections SET \
    status = (SELECT CASE \
        WHEN COUNT(*) = SUM(CASE WHEN w.status = 'completed' THEN 1 ELSE 0 END) THEN 'completed' \
        WHEN SUM(CASE WHEN w.status IN ('pending', 'submitting', 'running', 'downloading') \
                       OR (w.status = 'failed' AND w.next_attempt_at IS NOT NULL) \
                 THEN 1 ELSE 0 END) = 0 THEN 'failed' \
        WHEN SUM(CASE WHEN w.status <> 'pending' THEN 1 ELSE 0 END) > 0 THEN 'running' \
        ELSE 'pending' END \
      FROM report_data_weeks w WHERE w.collection_id = $1), \
    error_message = (SELECT CASE \
        WHEN SUM(CASE WHEN w.status = 'failed' AND w.next_attempt_at IS NULL THEN 1 ELSE 0 END) > 0 \
        THEN CAST(SUM(CASE WHEN w.status = 'failed' AND w.next_attempt_at IS NULL THEN 1 ELSE 0 END) AS TEXT) \
             || ' of ' || CAST(COUNT(*) AS TEXT) || ' weeks failed' \
        ELSE NULL END \
      FROM report_data_weeks w WHERE w.collection_id = $1), \
    updated_at = $2 \
    WHERE id = $1 AND status NOT IN ('paused', 'cancelled') AND NOT given_up";

impl Store {
    /// `pending`/`failed` → `submitting`: inserts the execution row and links it to the week.
    /// Refused with `SlotsFull` when the instance already has `max_in_flight` executions in flight
    /// in the database (over every process), so the AMC limit holds across processes.
    pub async fn record_intent(&self, intent: &SubmissionIntent) -> Result<(), StoreError> {
        let now = Utc::now();
        let insert = format!(
            "INSERT INTO workflow_executions (id, week_id, collection_id, instance_id, \
            idempotency_key, status, time_window_start, time_window_end, time_zone, parameters, \
            attempt, created_at, updated_at) \
            SELECT $1, $2, $3, $4, $5, 'submitting', $6, $7, $8, $9, w.attempts + 1, $10, $10 \
            FROM report_data_weeks w JOIN report_data_collections c ON c.id = w.collection_id \
            WHERE w.id = $2 AND w.status IN ('pending', 'failed') \
              AND c.status IN ('pending', 'running') AND {} \
              AND (SELECT COUNT(*) FROM report_data_weeks k \
                   JOIN report_data_collections kc ON kc.id = k.collection_id \
                   WHERE kc.instance_id = c.instance_id \
                     AND k.status IN ('submitting', 'running')) < $13",
            fence_sql("w.collection_id", 11, 12)
        );
        let update = "UPDATE report_data_weeks SET status = 'submitting', execution_id = $1, \
            amc_execution_id = NULL, row_count = NULL, data_checksum = NULL, error_message = NULL, \
            attempts = attempts + 1, next_attempt_at = NULL, started_at = $3, updated_at = $3 \
            WHERE id = $2 AND status IN ('pending', 'failed')";
        // Postgres: serialise intents per instance so two processes cannot both take the last slot.
        let lock_key = i64::from_be_bytes(
            intent.instance_id.as_uuid().as_bytes()[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        let postgres = matches!(self, Store::Postgres(_));
        let affected = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(lock_key)
                    .execute(&mut *tx)
                    .await?;
            }
            let inserted = sqlx::query(&insert)
                .bind(intent.execution_id)
                .bind(intent.week_id)
                .bind(intent.collection_id)
                .bind(intent.instance_id)
                .bind(&intent.idempotency_key)
                .bind(&intent.window_start)
                .bind(&intent.window_end)
                .bind(&intent.time_zone)
                .bind(&intent.parameters)
                .bind(now)
                .bind(&intent.fence.owner)
                .bind(intent.fence.epoch)
                .bind(intent.max_in_flight)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 1 {
                sqlx::query(update)
                    .bind(intent.execution_id)
                    .bind(intent.week_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(MARK_RUNNING)
                    .bind(intent.collection_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(inserted)
        })?;
        if affected == 1 {
            return Ok(());
        }
        Err(self.why_intent_refused(intent).await)
    }

    /// `submitting` → `running`: stores the AMC id the moment AMC answers (or it is adopted).
    pub async fn record_submitted(
        &self,
        collection_id: CollectionId,
        execution_id: ExecutionId,
        amc_execution_id: &str,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let update_execution = "UPDATE workflow_executions SET amc_execution_id = $2, \
            status = 'pending', submitted_at = $3, updated_at = $3 WHERE id = $1";
        let update_week = format!(
            "UPDATE report_data_weeks SET status = 'running', amc_execution_id = $2, \
            updated_at = $3 WHERE execution_id = $1 AND status = 'submitting' AND {}",
            fence_sql("report_data_weeks.collection_id", 4, 5)
        );
        let affected = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(update_execution)
                .bind(execution_id)
                .bind(amc_execution_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let affected = sqlx::query(&update_week)
                .bind(execution_id)
                .bind(amc_execution_id)
                .bind(now)
                .bind(&fence.owner)
                .bind(fence.epoch)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if affected == 1 {
                sqlx::query(MARK_RUNNING)
                    .bind(collection_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            // The AMC id is kept even when the week moved on (e.g. cancelled meanwhile), so the
            // execution can still be found and cancelled on AMC.
            tx.commit().await?;
            Ok::<_, sqlx::Error>(affected)
        })?;
        if affected == 1 {
            return Ok(());
        }
        let what = format!("no submitting week holds execution {execution_id}");
        Err(self.refused(collection_id, fence, what).await)
    }

    /// Records the latest AMC status of an execution (for tracing; the week does not move).
    pub async fn record_execution_status(
        &self,
        execution_id: ExecutionId,
        amc_status: &str,
        status_reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let sql =
            "UPDATE workflow_executions SET status = $2, status_reason = $3, updated_at = $4 \
                   WHERE id = $1";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(execution_id)
            .bind(amc_status)
            .bind(status_reason)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// `running` (or a `failed`/`pending` week whose execution succeeded) → `downloading`.
    pub async fn record_downloading(
        &self,
        collection_id: CollectionId,
        execution_id: ExecutionId,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let update_execution = "UPDATE workflow_executions SET status = 'succeeded', \
            updated_at = $2 WHERE id = $1";
        let update_week = format!(
            "UPDATE report_data_weeks SET status = 'downloading', error_message = NULL, \
            next_attempt_at = NULL, updated_at = $2 \
            WHERE execution_id = $1 AND status IN ('running', 'failed', 'pending') AND {}",
            fence_sql("report_data_weeks.collection_id", 3, 4)
        );
        let affected = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(update_execution)
                .bind(execution_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let affected = sqlx::query(&update_week)
                .bind(execution_id)
                .bind(now)
                .bind(&fence.owner)
                .bind(fence.epoch)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if affected == 1 {
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(affected)
        })?;
        if affected == 1 {
            return Ok(());
        }
        let what = format!("no running week holds execution {execution_id}");
        Err(self.refused(collection_id, fence, what).await)
    }

    /// `downloading` → `completed`: replaces the week's rows and stores count and checksum, in one
    /// transaction with the state change.
    pub async fn record_completed(&self, week: &CompletedWeek) -> Result<(), StoreError> {
        let now = Utc::now();
        let delete_rows = "DELETE FROM report_data_rows WHERE week_id = $1";
        let update_week = format!(
            "UPDATE report_data_weeks SET status = 'completed', row_count = $3, \
            data_checksum = $4, amc_execution_id = $5, error_message = NULL, completed_at = $6, \
            updated_at = $6, result_columns = $7 \
            WHERE id = $1 AND execution_id = $2 AND status = 'downloading' AND {}",
            fence_sql("report_data_weeks.collection_id", 8, 9)
        );
        let columns = serde_json::Value::from(week.columns.clone());
        let update_execution = "UPDATE workflow_executions SET status = 'succeeded', \
            completed_at = $2, updated_at = $2 WHERE id = $1";
        let affected = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(&update_week)
                .bind(week.week_id)
                .bind(week.execution_id)
                .bind(week.row_count)
                .bind(&week.data_checksum)
                .bind(&week.amc_execution_id)
                .bind(now)
                .bind(&columns)
                .bind(&week.fence.owner)
                .bind(week.fence.epoch)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if affected == 1 {
                sqlx::query(delete_rows)
                    .bind(week.week_id)
                    .execute(&mut *tx)
                    .await?;
                for chunk in week.rows.chunks(ROWS_PER_INSERT) {
                    let mut builder = sqlx::QueryBuilder::new(
                        "INSERT INTO report_data_rows \
                         (week_id, file_index, row_index, collection_id, execution_id, data) ",
                    );
                    builder.push_values(chunk, |mut values, row| {
                        values
                            .push_bind(week.week_id)
                            .push_bind(row.file_index)
                            .push_bind(row.row_index)
                            .push_bind(week.collection_id)
                            .push_bind(week.execution_id)
                            .push_bind(&row.data);
                    });
                    builder.build().execute(&mut *tx).await?;
                }
                sqlx::query(update_execution)
                    .bind(week.execution_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(REFRESH_COLLECTION)
                    .bind(week.collection_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(affected)
        })?;
        if affected == 1 {
            return Ok(());
        }
        let what = format!(
            "week {} is not downloading execution {}",
            week.week_id, week.execution_id
        );
        Err(self.refused(week.collection_id, &week.fence, what).await)
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
        let now = Utc::now();
        let update_week = format!(
            "UPDATE report_data_weeks SET status = 'failed', error_message = $2, \
            next_attempt_at = $3, updated_at = $4 \
            WHERE id = $1 AND status IN ('pending', 'submitting', 'running', 'downloading', 'failed') \
            AND {}",
            fence_sql("report_data_weeks.collection_id", 5, 6)
        );
        let update_execution = "UPDATE workflow_executions SET status = $2, status_reason = $3, \
            completed_at = $4, updated_at = $4 WHERE id = $1";
        let affected = with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let affected = sqlx::query(&update_week)
                .bind(week_id)
                .bind(reason)
                .bind(retry_at)
                .bind(now)
                .bind(&fence.owner)
                .bind(fence.epoch)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if let (1, Some(execution_id)) = (affected, execution_id) {
                sqlx::query(update_execution)
                    .bind(execution_id)
                    .bind(amc_status.unwrap_or("failed"))
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            // A week that will be retried leaves the collection's status as it is.
            if affected == 1 && retry_at.is_none() {
                sqlx::query(REFRESH_COLLECTION)
                    .bind(collection_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            if affected == 1 {
                tx.commit().await?;
            }
            Ok::<_, sqlx::Error>(affected)
        })?;
        if affected == 1 {
            return Ok(());
        }
        let what = format!("week {week_id} cannot fail from its state");
        Err(self.refused(collection_id, fence, what).await)
    }

    /// Re-derives a collection's status (after a restart or a user action).
    pub async fn refresh_collection_status(&self, id: CollectionId) -> Result<(), StoreError> {
        with_pool!(self, |pool| sqlx::query(REFRESH_COLLECTION)
            .bind(id)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }

    /// Marks a collection failed with a reason (e.g. its actor crashed past the restart limit).
    pub async fn fail_collection(&self, id: CollectionId, reason: &str) -> Result<(), StoreError> {
        // Failed for good and unleased in one statement, so no scan can claim it in between.
        let sql = "UPDATE report_data_collections SET status = 'failed', error_message = $2, \
                   given_up = TRUE, lease_owner = NULL, lease_expires_at = NULL, updated_at = $3 \
                   WHERE id = $1";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(reason)
            .bind(Utc::now())
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(())
    }
}
