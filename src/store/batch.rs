//! Group commit of week transitions (DESIGN §3's state machine, applied in batches).
//!
//! Each transition costs one durable commit when written alone, and the commit (a WAL flush on
//! both backends) is what bounds throughput. The DbWriter therefore hands over every transition
//! that queued up while the previous batch was committing, and `apply_transitions` applies them in
//! one transaction. Every transition keeps its own verdict: each `UPDATE` still names the state it
//! leaves and the lease it holds, so a refused transition changes nothing and is told apart after
//! the commit. A batch that fails as a whole (an SQL error aborts a Postgres transaction) is
//! replayed one transition per transaction, so one bad transition cannot fail its neighbours.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::batch_sets::{distinct, id_list, mark_moved, Kinds, SetStatements, ROWS_PER_INSERT};
use super::fence::{fence_sql, Fence};
use super::progress::{CompletedWeek, ResultRow, SubmissionIntent, REFRESH_COLLECTION};
use super::quota::{quota_since, withdraw_week_sql, REFUSE_EXECUTION};
use super::{with_pool, OutboxTx, Store, StoreError};
use crate::ids::{CollectionId, ExecutionId, WeekId};

/// One write of the week state machine.
#[derive(Debug, Clone)]
pub enum Transition {
    /// `pending`/`failed` → `submitting`: the execution row is inserted before the AMC call.
    Intent(SubmissionIntent),
    /// `submitting` → `running`: the AMC id, stored the moment AMC answers.
    Submitted {
        collection_id: CollectionId,
        execution_id: ExecutionId,
        amc_execution_id: String,
        fence: Fence,
    },
    /// The latest AMC status of an execution (the week does not move).
    ExecutionStatus {
        execution_id: ExecutionId,
        amc_status: String,
        status_reason: Option<String>,
    },
    /// `running` (or a `failed`/`pending` week whose execution succeeded) → `downloading`.
    Downloading {
        collection_id: CollectionId,
        execution_id: ExecutionId,
        fence: Fence,
    },
    /// `downloading` → `completed` with the week's rows, count and checksum. A completed week
    /// never leaves that state, so it has no rows yet (were it otherwise, the rows' primary key
    /// would refuse the write rather than store a week twice).
    Completed(CompletedWeek),
    /// `submitting` → `pending` until `until`: AMC refused the create for a limit, so the
    /// attempt never happened and is not spent; the execution row is marked `refused`.
    Withdrawn {
        collection_id: CollectionId,
        week_id: WeekId,
        execution_id: ExecutionId,
        reason: String,
        until: DateTime<Utc>,
        fence: Fence,
    },
    /// Any open state → `failed`; `retry_at` says when it is tried again (None: for good).
    Failed {
        collection_id: CollectionId,
        week_id: WeekId,
        execution_id: Option<ExecutionId>,
        amc_status: Option<String>,
        reason: String,
        retry_at: Option<DateTime<Utc>>,
        fence: Fence,
    },
}

impl Transition {
    /// The collection whose rows the transition may lock (none for a bare execution status).
    pub fn collection_id(&self) -> Option<CollectionId> {
        match self {
            Transition::Intent(intent) => Some(intent.collection_id),
            Transition::Submitted { collection_id, .. }
            | Transition::Downloading { collection_id, .. }
            | Transition::Withdrawn { collection_id, .. }
            | Transition::Failed { collection_id, .. } => Some(*collection_id),
            Transition::Completed(week) => Some(week.collection_id),
            Transition::ExecutionStatus { .. } => None,
        }
    }

    /// The execution the transition concerns (a failure may have none).
    pub fn execution_id(&self) -> Option<ExecutionId> {
        match self {
            Transition::Intent(intent) => Some(intent.execution_id),
            Transition::Submitted { execution_id, .. }
            | Transition::ExecutionStatus { execution_id, .. }
            | Transition::Downloading { execution_id, .. }
            | Transition::Withdrawn { execution_id, .. } => Some(*execution_id),
            Transition::Completed(week) => Some(week.execution_id),
            Transition::Failed { execution_id, .. } => *execution_id,
        }
    }

    /// Rough cost in statements, so the writer can keep a batch (and its transaction) short.
    pub fn weight(&self) -> usize {
        match self {
            Transition::Completed(week) => 4 + week.rows.len() / ROWS_PER_INSERT,
            _ => 2,
        }
    }
}

/// Failing a week, the one transition still written one statement at a time (failures are
/// rare, and their retry times keep each backend's own timestamp encoding as bound parameters).
static FAILED_WEEK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE report_data_weeks SET status = 'failed', error_message = $2, \
        next_attempt_at = $3, updated_at = $4 \
        WHERE id = $1 AND status IN ('pending', 'submitting', 'running', 'downloading', 'failed') \
        AND {}",
        fence_sql("report_data_weeks.collection_id", 5, 6)
    )
});

static WITHDRAW_WEEK: LazyLock<String> = LazyLock::new(withdraw_week_sql);

static SETS_POSTGRES: LazyLock<SetStatements> = LazyLock::new(|| SetStatements::new(true));
static SETS_SQLITE: LazyLock<SetStatements> = LazyLock::new(|| SetStatements::new(false));

const FAILED_EXECUTION: &str = "UPDATE workflow_executions SET status = $2, status_reason = $3, \
    completed_at = $4, updated_at = $4 WHERE id = $1";
/// Postgres: serialise intents per instance so two writers cannot both take the last slot. The
/// keys are locked in ascending order (sorted before the function runs), so batches never deadlock.
const LOCK_INSTANCES: &str = "SELECT pg_advisory_xact_lock(k) FROM \
    (SELECT CAST(x AS BIGINT) AS k FROM unnest(string_to_array($1, ',')) AS x ORDER BY 1) AS keys";

/// The advisory-lock key of an intent's instance (the first 8 bytes of its UUID).
fn lock_key(batch: &[Transition], index: usize) -> i64 {
    let Transition::Intent(intent) = &batch[index] else {
        return 0;
    };
    let uuid = intent.instance_id.as_uuid();
    let mut key = [0u8; 8];
    key.copy_from_slice(&uuid.as_bytes()[..8]);
    i64::from_be_bytes(key)
}

impl Store {
    /// Applies the transitions in one transaction and returns each one's verdict, in order.
    /// A failed batch is replayed one transition per transaction.
    pub async fn apply_transitions(&self, batch: &[Transition]) -> Vec<Result<(), StoreError>> {
        let applied = match self.apply_in_one_transaction(batch).await {
            Ok(applied) => applied.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) if batch.len() == 1 => vec![Err(StoreError::Database(error))],
            Err(error) => {
                tracing::debug!(%error, size = batch.len(), "Batch failed; replaying it one by one.");
                let mut one_by_one = Vec::with_capacity(batch.len());
                for transition in batch {
                    let verdict = self
                        .apply_in_one_transaction(std::slice::from_ref(transition))
                        .await
                        .map(|applied| applied.first().copied().unwrap_or(false))
                        .map_err(StoreError::Database);
                    one_by_one.push(verdict);
                }
                one_by_one
            }
        };
        let mut verdicts = Vec::with_capacity(batch.len());
        for (transition, applied) in batch.iter().zip(applied) {
            verdicts.push(match applied {
                Ok(true) => Ok(()),
                Ok(false) => Err(self.why_refused(transition).await),
                Err(error) => Err(error),
            });
        }
        verdicts
    }

    /// Applies one transition in its own transaction.
    pub async fn apply_transition(&self, transition: Transition) -> Result<(), StoreError> {
        let batch = [transition];
        let mut verdicts = self.apply_transitions(&batch).await;
        verdicts.pop().unwrap_or(Ok(()))
    }

    /// Says, after the fact, why a transition changed nothing.
    async fn why_refused(&self, transition: &Transition) -> StoreError {
        match transition {
            Transition::Intent(intent) => self.why_intent_refused(intent).await,
            Transition::Submitted {
                collection_id,
                execution_id,
                fence,
                ..
            } => {
                let what = format!("no submitting week holds execution {execution_id}");
                self.refused(*collection_id, fence, what).await
            }
            Transition::ExecutionStatus { execution_id, .. } => {
                StoreError::NotFound(format!("no execution {execution_id}"))
            }
            Transition::Downloading {
                collection_id,
                execution_id,
                fence,
            } => {
                let what = format!("no running week holds execution {execution_id}");
                self.refused(*collection_id, fence, what).await
            }
            Transition::Completed(week) => {
                let what = format!(
                    "week {} is not downloading execution {}",
                    week.week_id, week.execution_id
                );
                self.refused(week.collection_id, &week.fence, what).await
            }
            Transition::Withdrawn {
                collection_id,
                week_id,
                fence,
                ..
            } => {
                let what = format!("week {week_id} is no longer submitting");
                self.refused(*collection_id, fence, what).await
            }
            Transition::Failed {
                collection_id,
                week_id,
                fence,
                ..
            } => {
                let what = format!("week {week_id} cannot fail from its state");
                self.refused(*collection_id, fence, what).await
            }
        }
    }

    /// One transaction over the whole batch; `true` where the transition took effect.
    async fn apply_in_one_transaction(
        &self,
        batch: &[Transition],
    ) -> Result<Vec<bool>, sqlx::Error> {
        let now = Utc::now();
        let postgres = matches!(self, Store::Postgres(_));
        let sets: &SetStatements = if postgres {
            &SETS_POSTGRES
        } else {
            &SETS_SQLITE
        };
        let kinds = Kinds::of(batch);
        let mut keys: Vec<i64> = kinds.intents.iter().map(|&i| lock_key(batch, i)).collect();
        keys.sort_unstable();
        keys.dedup();
        let lock_keys = (postgres && !keys.is_empty()).then(|| {
            keys.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        });
        let mut applied = vec![false; batch.len()];
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            if let Some(lock_keys) = &lock_keys {
                sqlx::query(LOCK_INSTANCES)
                    .bind(lock_keys)
                    .execute(&mut *tx)
                    .await?;
            }
            if !kinds.intents.is_empty() {
                let moved: Vec<ExecutionId> = sqlx::query_scalar(&sets.intents_insert)
                    .bind(kinds.json(batch, &kinds.intents))
                    .bind(now)
                    .bind(quota_since(batch, &kinds.intents, now))
                    .fetch_all(&mut *tx)
                    .await?;
                let intents: Vec<&SubmissionIntent> =
                    mark_moved(batch, &kinds.intents, &moved, &mut applied)
                        .into_iter()
                        .filter_map(|transition| match transition {
                            Transition::Intent(intent) => Some(intent),
                            _ => None,
                        })
                        .collect();
                if !intents.is_empty() {
                    let weeks = intents.iter().map(|intent| {
                        serde_json::json!({
                            "execution_id": intent.execution_id, "week_id": intent.week_id,
                        })
                    });
                    sqlx::query(&sets.intents_weeks)
                        .bind(serde_json::Value::from_iter(weeks).to_string())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                let pending = intents
                    .iter()
                    .filter(|intent| intent.collection_may_be_pending)
                    .map(|intent| intent.collection_id);
                let pending = distinct(pending);
                if !pending.is_empty() {
                    sqlx::query(&sets.mark_running)
                        .bind(id_list(pending))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if !kinds.submitted.is_empty() {
                let rows = kinds.json(batch, &kinds.submitted);
                // The AMC id is kept even when the week moved on (e.g. cancelled meanwhile), so
                // the execution can still be found and cancelled on AMC.
                sqlx::query(&sets.submitted_executions)
                    .bind(&rows)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let moved: Vec<ExecutionId> = sqlx::query_scalar(&sets.submitted_weeks)
                    .bind(&rows)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                mark_moved(batch, &kinds.submitted, &moved, &mut applied);
            }
            if !kinds.statuses.is_empty() {
                // Tracing only: an unknown execution is not worth a refusal.
                sqlx::query(&sets.execution_statuses)
                    .bind(kinds.json(batch, &kinds.statuses))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                kinds.statuses.iter().for_each(|&i| applied[i] = true);
            }
            if !kinds.downloading.is_empty() {
                let moved: Vec<ExecutionId> = sqlx::query_scalar(&sets.downloading_weeks)
                    .bind(kinds.json(batch, &kinds.downloading))
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                if !moved.is_empty() {
                    sqlx::query(&sets.downloading_executions)
                        .bind(id_list(&moved))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                mark_moved(batch, &kinds.downloading, &moved, &mut applied);
            }
            if !kinds.completed.is_empty() {
                let moved: Vec<ExecutionId> = sqlx::query_scalar(&sets.completed_weeks)
                    .bind(kinds.json(batch, &kinds.completed))
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await?;
                let weeks: Vec<&CompletedWeek> =
                    mark_moved(batch, &kinds.completed, &moved, &mut applied)
                        .into_iter()
                        .filter_map(|transition| match transition {
                            Transition::Completed(week) => Some(week),
                            _ => None,
                        })
                        .collect();
                let rows: Vec<(&CompletedWeek, &ResultRow)> = weeks
                    .iter()
                    .flat_map(|week| week.rows.iter().map(move |row| (*week, row)))
                    .collect();
                for chunk in rows.chunks(ROWS_PER_INSERT) {
                    let mut builder = sqlx::QueryBuilder::new(
                        "INSERT INTO report_data_rows \
                         (week_id, file_index, row_index, collection_id, execution_id, data) ",
                    );
                    builder.push_values(chunk, |mut values, (week, row)| {
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
                if !weeks.is_empty() {
                    sqlx::query(&sets.completed_executions)
                        .bind(id_list(weeks.iter().map(|week| week.execution_id)))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    // A rerun week's old rows go in the commit that completes the new execution.
                    sqlx::query(super::rerun::drop_superseded_rows(postgres))
                        .bind(id_list(weeks.iter().map(|week| week.week_id)))
                        .execute(&mut *tx)
                        .await?;
                    let collections = distinct(weeks.iter().map(|week| week.collection_id));
                    sqlx::query(&sets.refresh_settled)
                        .bind(id_list(&collections))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    // Alerts (issue 15): collections these completions ended.
                    tx.alert_collections(&collections, now, false).await?;
                }
            }
            for &i in &kinds.failed {
                // Failing and withdrawing a week are one fenced statement of the same shape,
                // then the execution's own row.
                let (sql, week_id, reason, at, fence): (&str, _, _, Option<DateTime<Utc>>, _) =
                    match &batch[i] {
                        Transition::Withdrawn {
                            week_id,
                            reason,
                            until,
                            fence,
                            ..
                        } => (&WITHDRAW_WEEK, week_id, reason, Some(*until), fence),
                        Transition::Failed {
                            week_id,
                            reason,
                            retry_at,
                            fence,
                            ..
                        } => (&FAILED_WEEK, week_id, reason, *retry_at, fence),
                        _ => continue,
                    };
                applied[i] = sqlx::query(sql)
                    .bind(week_id)
                    .bind(reason)
                    .bind(at)
                    .bind(now)
                    .bind(&fence.owner)
                    .bind(fence.epoch)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !applied[i] {
                    continue;
                }
                match &batch[i] {
                    Transition::Withdrawn { execution_id, .. } => {
                        sqlx::query(REFUSE_EXECUTION)
                            .bind(execution_id)
                            .bind(reason)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Transition::Failed {
                        collection_id,
                        execution_id,
                        amc_status,
                        retry_at,
                        ..
                    } => {
                        if let Some(execution_id) = execution_id {
                            sqlx::query(FAILED_EXECUTION)
                                .bind(execution_id)
                                .bind(amc_status.as_deref().unwrap_or("failed"))
                                .bind(reason)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                        }
                        // A week that will be retried leaves the collection's status as it is.
                        if retry_at.is_none() {
                            sqlx::query(&REFRESH_COLLECTION)
                                .bind(collection_id)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            // Alerts (issue 15): the week, and its collection if this ended it.
                            tx.alert_week_failed(
                                *collection_id,
                                *week_id,
                                *execution_id,
                                reason,
                                now,
                            )
                            .await?;
                        }
                    }
                    _ => {}
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(applied)
    }
}
