//! `pending`/`failed` → `submitting`: the execution row is inserted before the AMC call, within
//! the instance's limits over every process: executions in flight (`max_in_flight`) and creates
//! within the daily window (`quota`). An intent that does not fit changes nothing; `why_refused`
//! tells afterwards whether it was the lease, the week's or collection's state, the daily limit
//! or the slots.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::refused::{lease_lost, Refused};
use super::{distinct, fenced, id_list, json_rows, mark_moved, on_tx, Edge, Of, Sql, Tx};
use crate::ids::{CollectionId, ExecutionId, InstanceId, WeekId};
use crate::status::{CollectionStatus, ExecutionStatus, WeekStatus};
use crate::store::fence::Fence;
use crate::store::quota::CreateQuota;
use crate::store::{Store, StoreError};

/// The intent row written before the AMC create call.
#[derive(Debug, Clone)]
pub struct SubmissionIntent {
    pub week_id: WeekId,
    pub collection_id: CollectionId,
    pub instance_id: InstanceId,
    /// Minted by the collection actor before anything else happens for this attempt.
    pub execution_id: ExecutionId,
    /// Hash of instance + workflow + window + parameters.
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

/// The week states an intent leaves (a `failed` one once its retry time passed) and enters.
pub(super) const FROM: [WeekStatus; 2] = [WeekStatus::Pending, WeekStatus::Failed];
pub(super) const TO: WeekStatus = WeekStatus::Submitting;
pub(super) const EDGE: Edge = Edge {
    label: "Intent",
    from: &FROM,
    to: TO,
};
/// The collection states an intent accepts (a paused or closed collection submits nothing).
const COLLECTION_FROM: [CollectionStatus; 2] =
    [CollectionStatus::Pending, CollectionStatus::Running];

/// Postgres: serialise intents per instance so two writers cannot both take the last slot. The
/// keys are locked in ascending order, so batches never deadlock. (SQLite has one writer.)
const LOCK_INSTANCES: &str = "SELECT pg_advisory_xact_lock(k) FROM \
    (SELECT CAST(x AS BIGINT) AS k FROM unnest(string_to_array($1, ',')) AS x ORDER BY 1) AS keys";

/// Each intent is placed among the batch's intents of its instance (in batch order) and inserted
/// only while the instance's executions in flight (`busy`, over every process; a cancelled week
/// counts until AMC confirms its execution ended) stay within its limit, and its creates since
/// `$3` stay within the daily limit (counted only when there is one).
/// `$4` execution `submitting`; weeks `$5` `submitting`, `$6` `running`, `$7` `cancelled`;
/// live executions `$8`..`$11`; weeks `$12` `pending`, `$13` `failed`; collections `$14`
/// `pending`, `$15` `running`.
const INSERT: Sql = Sql {
    postgres: "INSERT INTO workflow_executions (id, week_id, collection_id, instance_id, \
        idempotency_key, status, time_window_start, time_window_end, time_zone, parameters, \
        attempt, created_at, updated_at) \
        SELECT x.execution_id, x.week_id, x.collection_id, x.instance_id, x.idempotency_key, $4, \
        x.window_start, x.window_end, x.time_zone, x.parameters, x.attempts + 1, $2, $2 FROM ( \
          SELECT v.*, w.attempts, \
          ROW_NUMBER() OVER (PARTITION BY c.instance_id ORDER BY v.ord) AS place, \
          (SELECT COUNT(*) FROM report_data_weeks k \
           JOIN report_data_collections kc ON kc.id = k.collection_id \
           WHERE kc.instance_id = c.instance_id AND (k.status IN ($5, $6) OR (k.status = $7 \
            AND EXISTS (SELECT 1 FROM workflow_executions ke WHERE ke.id = k.execution_id \
             AND ke.amc_execution_id IS NOT NULL AND ke.status IN ($8, $9, $10, $11))))) AS busy \
          FROM json_to_recordset(CAST($1 AS json)) AS v(ord bigint, execution_id uuid, \
            week_id uuid, collection_id uuid, instance_id uuid, idempotency_key text, \
            window_start text, window_end text, time_zone text, parameters jsonb, \
            max_in_flight bigint, max_creates bigint, owner text, epoch bigint) \
          JOIN report_data_weeks w ON w.id = v.week_id \
          JOIN report_data_collections c ON c.id = w.collection_id \
          WHERE w.status IN ($12, $13) AND c.status IN ($14, $15) \
          AND (SELECT f.lease_owner = v.owner AND f.lease_epoch = v.epoch \
               FROM report_data_collections f WHERE f.id = w.collection_id) \
        ) AS x WHERE x.busy + x.place <= x.max_in_flight \
        AND (x.max_creates = 0 OR x.place + (SELECT COUNT(*) FROM workflow_executions q \
          WHERE q.instance_id = x.instance_id \
          AND (q.submitted_at > $3 OR (q.submitted_at IS NULL AND q.status = $4))) \
          <= x.max_creates) \
        RETURNING id",
    sqlite: "INSERT INTO workflow_executions (id, week_id, collection_id, instance_id, \
        idempotency_key, status, time_window_start, time_window_end, time_zone, parameters, \
        attempt, created_at, updated_at) \
        SELECT x.execution_id, x.week_id, x.collection_id, x.instance_id, x.idempotency_key, $4, \
        x.window_start, x.window_end, x.time_zone, x.parameters, x.attempts + 1, $2, $2 FROM ( \
          SELECT v.*, w.attempts, \
          ROW_NUMBER() OVER (PARTITION BY c.instance_id ORDER BY v.ord) AS place, \
          (SELECT COUNT(*) FROM report_data_weeks k \
           JOIN report_data_collections kc ON kc.id = k.collection_id \
           WHERE kc.instance_id = c.instance_id AND (k.status IN ($5, $6) OR (k.status = $7 \
            AND EXISTS (SELECT 1 FROM workflow_executions ke WHERE ke.id = k.execution_id \
             AND ke.amc_execution_id IS NOT NULL AND ke.status IN ($8, $9, $10, $11))))) AS busy \
          FROM (SELECT json_extract(value, '$.ord') AS ord, \
            json_extract(value, '$.execution_id') AS execution_id, \
            json_extract(value, '$.week_id') AS week_id, \
            json_extract(value, '$.collection_id') AS collection_id, \
            json_extract(value, '$.instance_id') AS instance_id, \
            json_extract(value, '$.idempotency_key') AS idempotency_key, \
            json_extract(value, '$.window_start') AS window_start, \
            json_extract(value, '$.window_end') AS window_end, \
            json_extract(value, '$.time_zone') AS time_zone, \
            json_extract(value, '$.parameters') AS parameters, \
            json_extract(value, '$.max_in_flight') AS max_in_flight, \
            json_extract(value, '$.max_creates') AS max_creates, \
            json_extract(value, '$.owner') AS owner, json_extract(value, '$.epoch') AS epoch \
            FROM json_each($1)) AS v \
          JOIN report_data_weeks w ON w.id = v.week_id \
          JOIN report_data_collections c ON c.id = w.collection_id \
          WHERE +w.status IN ($12, $13) AND c.status IN ($14, $15) \
          AND (SELECT f.lease_owner = v.owner AND f.lease_epoch = v.epoch \
               FROM report_data_collections f WHERE f.id = w.collection_id) \
        ) AS x WHERE x.busy + x.place <= x.max_in_flight \
        AND (x.max_creates = 0 OR x.place + (SELECT COUNT(*) FROM workflow_executions q \
          WHERE q.instance_id = x.instance_id \
          AND (q.submitted_at > $3 OR (q.submitted_at IS NULL AND q.status = $4))) \
          <= x.max_creates) \
        RETURNING id",
};

/// The weeks of the inserted executions: `$3` `submitting`, from `$4` `pending` or `$5` `failed`.
const WEEKS: Sql = Sql {
    postgres: "UPDATE report_data_weeks AS w SET status = $3, execution_id = v.execution_id, \
        amc_execution_id = NULL, row_count = NULL, data_checksum = NULL, error_message = NULL, \
        attempts = attempts + 1, next_attempt_at = NULL, started_at = $2, updated_at = $2 \
        FROM json_to_recordset(CAST($1 AS json)) AS v(execution_id uuid, week_id uuid) \
        WHERE w.id = v.week_id AND w.status IN ($4, $5)",
    sqlite: "UPDATE report_data_weeks AS w SET status = $3, execution_id = v.execution_id, \
        amc_execution_id = NULL, row_count = NULL, data_checksum = NULL, error_message = NULL, \
        attempts = attempts + 1, next_attempt_at = NULL, started_at = $2, updated_at = $2 \
        FROM (SELECT json_extract(value, '$.execution_id') AS execution_id, \
            json_extract(value, '$.week_id') AS week_id FROM json_each($1)) AS v \
        WHERE w.id = v.week_id AND +w.status IN ($4, $5)",
};

/// The first submission of a pending collection makes it `$3` `running` (cheaper than a full
/// refresh, which only completions and failures need). `$4`: `pending`.
const MARK_RUNNING: Sql = Sql {
    postgres: "UPDATE report_data_collections SET status = $3, updated_at = $2 \
        WHERE id IN (SELECT v.id FROM json_to_recordset(CAST($1 AS json)) AS v(id uuid)) \
        AND status = $4 AND NOT given_up",
    sqlite: "UPDATE report_data_collections SET status = $3, updated_at = $2 \
        WHERE id IN (SELECT json_extract(value, '$.id') FROM json_each($1)) \
        AND status = $4 AND NOT given_up",
};

pub(super) async fn apply(
    tx: &mut Tx,
    intents: &Of<'_, SubmissionIntent>,
    now: DateTime<Utc>,
    applied: &mut [bool],
) -> Result<(), sqlx::Error> {
    if intents.is_empty() {
        return Ok(());
    }
    if let Tx::Postgres(_) = tx {
        on_tx!(tx, |conn| sqlx::query(LOCK_INSTANCES)
            .bind(lock_keys(intents))
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
    }
    let rows = json_rows(intents, |i, intent| {
        fenced(
            &intent.fence,
            json!({
                "ord": i, "execution_id": intent.execution_id,
                "week_id": intent.week_id, "collection_id": intent.collection_id,
                "instance_id": intent.instance_id, "idempotency_key": intent.idempotency_key,
                "window_start": intent.window_start, "window_end": intent.window_end,
                "time_zone": intent.time_zone, "parameters": intent.parameters,
                "max_in_flight": intent.max_in_flight, "max_creates": intent.quota.max_creates,
            }),
        )
    });
    let since = intents
        .iter()
        .map(|(_, intent)| intent.quota.since(now))
        .min();
    let live = ExecutionStatus::LIVE;
    let [live0, live1, live2, live3] = live.each_ref().map(ExecutionStatus::as_str);
    let [from0, from1] = FROM.map(WeekStatus::as_str);
    let [collection0, collection1] = COLLECTION_FROM.map(CollectionStatus::as_str);
    let sql = tx.sql(&INSERT);
    let moved: Vec<ExecutionId> = on_tx!(tx, |conn| sqlx::query_scalar(sql)
        .bind(&rows)
        .bind(now)
        .bind(since.unwrap_or(now))
        .bind(ExecutionStatus::Submitting.as_str())
        .bind(WeekStatus::Submitting.as_str())
        .bind(WeekStatus::Running.as_str())
        .bind(WeekStatus::Cancelled.as_str())
        .bind(live0)
        .bind(live1)
        .bind(live2)
        .bind(live3)
        .bind(from0)
        .bind(from1)
        .bind(collection0)
        .bind(collection1)
        .fetch_all(conn)
        .await)?;
    let stored = mark_moved(intents, |intent| intent.execution_id, &moved, applied);
    if !stored.is_empty() {
        link_weeks(tx, &stored, now).await?;
    }
    Ok(())
}

/// The advisory-lock keys of the intents' instances (the first 8 bytes of each UUID), sorted.
fn lock_keys(intents: &Of<'_, SubmissionIntent>) -> String {
    let mut keys: Vec<i64> = intents
        .iter()
        .map(|(_, intent)| {
            let mut key = [0u8; 8];
            key.copy_from_slice(&intent.instance_id.as_uuid().as_bytes()[..8]);
            i64::from_be_bytes(key)
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let keys: Vec<String> = keys.iter().map(i64::to_string).collect();
    keys.join(",")
}

/// Moves the stored intents' weeks to `submitting`, and their pending collections to `running`.
async fn link_weeks(
    tx: &mut Tx,
    stored: &[&SubmissionIntent],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let weeks = stored
        .iter()
        .map(|intent| json!({ "execution_id": intent.execution_id, "week_id": intent.week_id }));
    let weeks = serde_json::Value::from_iter(weeks).to_string();
    let sql = tx.sql(&WEEKS);
    let [from0, from1] = FROM.map(WeekStatus::as_str);
    on_tx!(tx, |conn| sqlx::query(sql)
        .bind(&weeks)
        .bind(now)
        .bind(TO.as_str())
        .bind(from0)
        .bind(from1)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    let pending = stored
        .iter()
        .filter(|intent| intent.collection_may_be_pending)
        .map(|intent| intent.collection_id);
    let pending = distinct(pending);
    if !pending.is_empty() {
        let sql = tx.sql(&MARK_RUNNING);
        on_tx!(tx, |conn| sqlx::query(sql)
            .bind(id_list(pending))
            .bind(now)
            .bind(CollectionStatus::Running.as_str())
            .bind(CollectionStatus::Pending.as_str())
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
    }
    Ok(())
}

/// Why an intent changed nothing, in the order the statement checks: the lease, the week's state,
/// the collection's state, the daily limit, and otherwise the slots.
pub(super) async fn why_refused(
    store: &Store,
    intent: &SubmissionIntent,
) -> Result<Refused, StoreError> {
    let collection_id = intent.collection_id;
    if lease_lost(store, collection_id, &intent.fence).await {
        return Ok(Refused::LeaseLost { collection_id });
    }
    let (week, _) = store.week_with_execution(intent.week_id).await?;
    if !FROM.contains(&week.status) {
        return Ok(Refused::Stale(format!(
            "week {} is {}, not pending or failed",
            intent.week_id, week.status
        )));
    }
    match store.collection(collection_id).await {
        Ok(Some(c)) if COLLECTION_FROM.contains(&c.status) => {}
        _ => {
            return Ok(Refused::Stale(format!(
                "collection {collection_id} is paused or closed"
            )))
        }
    }
    let quota = store.quota_use(intent.instance_id, intent.quota).await?;
    if let Some(until) = quota.waiting_until {
        return Ok(Refused::QuotaFull {
            limit: quota.limit,
            until,
        });
    }
    Ok(Refused::SlotsFull {
        in_flight: intent.max_in_flight,
    })
}
