//! Set-based statements for the group commit's transitions (intents, submitted, execution status,
//! downloading, completed): one statement moves every week of a kind in the batch, so a batch
//! costs about a dozen round trips however many weeks it holds. The weeks' values travel as
//! one JSON array, read as rows by `json_to_recordset` on Postgres and `json_each` on SQLite (the
//! only place the two dialects differ); `RETURNING` tells which weeks moved. Failures (rare, and
//! with a timestamp per week) stay one statement per transition in `batch`. `Kinds` sorts a batch
//! by kind and builds each kind's JSON parameter.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::batch::Transition;
use super::fence::{lease_held, Fence};
use super::progress::refresh_collection_set;
use super::quota::COUNTED_CREATE;
use crate::ids::{CollectionId, ExecutionId};

/// Execution statuses that still hold one of the instance's slots on AMC.
pub(super) const LIVE_EXECUTION: &str = "('submitting', 'pending', 'running', 'publishing')";

/// Rows inserted per statement: stays far below both backends' bind-parameter limits.
pub(super) const ROWS_PER_INSERT: usize = 500;

/// A JSON array parameter read as rows named `v`, with the given (column, Postgres type) pairs.
pub(super) fn json_rows(postgres: bool, param: usize, columns: &[(&str, &str)]) -> String {
    if postgres {
        let typed: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
        format!(
            "json_to_recordset(CAST(${param} AS json)) AS v({})",
            typed.join(", ")
        )
    } else {
        let read: Vec<String> = columns
            .iter()
            .map(|(n, _)| format!("json_extract(value, '$.{n}') AS {n}"))
            .collect();
        format!("(SELECT {} FROM json_each(${param})) AS v", read.join(", "))
    }
}

/// The statements of one backend, formatted once.
pub(super) struct SetStatements {
    pub intents_insert: String,
    pub intents_weeks: String,
    pub mark_running: String,
    pub submitted_executions: String,
    pub submitted_weeks: String,
    pub execution_statuses: String,
    pub downloading_weeks: String,
    pub downloading_executions: String,
    pub completed_weeks: String,
    pub completed_executions: String,
    pub refresh_settled: String,
}

impl SetStatements {
    pub(super) fn new(postgres: bool) -> Self {
        // SQLite's RETURNING names only the updated table, and not by its alias; Postgres needs
        // the alias, as the rows source has a column of the same name.
        let returned = if postgres { "w." } else { "" };
        let fence = lease_held("w.collection_id", "v.owner", "v.epoch");
        // Without statistics SQLite drove these joins from the status index and re-read the JSON
        // for every week in that state; a unary `+` (SQLite's idiom) keeps it on the id indexes.
        let status = if postgres { "w.status" } else { "+w.status" };
        let ids = |param| json_rows(postgres, param, &[("id", "uuid")]);
        let fenced = |param, extra: &[(&str, &str)]| {
            let mut columns = extra.to_vec();
            columns.extend([("owner", "text"), ("epoch", "bigint")]);
            json_rows(postgres, param, &columns)
        };
        Self {
            // Each intent is placed among the batch's intents of its instance (in batch order)
            // and inserted only while the instance's executions in flight, over every process,
            // stay within its limit (a cancelled week counts until AMC confirms its execution
            // ended), and its creates since `$3` stay within the daily limit (counted only when
            // there is one); the rest are refused as `SlotsFull` or `QuotaFull`.
            intents_insert: format!(
                "INSERT INTO workflow_executions (id, week_id, collection_id, instance_id, \
                 idempotency_key, status, time_window_start, time_window_end, time_zone, \
                 parameters, attempt, created_at, updated_at) \
                 SELECT x.execution_id, x.week_id, x.collection_id, x.instance_id, \
                 x.idempotency_key, 'submitting', x.window_start, x.window_end, x.time_zone, \
                 x.parameters, x.attempts + 1, $2, $2 FROM (\
                   SELECT v.execution_id, v.week_id, v.collection_id, v.instance_id, \
                   v.idempotency_key, v.window_start, v.window_end, v.time_zone, v.parameters, \
                   v.max_in_flight, v.max_creates, w.attempts, \
                   ROW_NUMBER() OVER (PARTITION BY c.instance_id ORDER BY v.ord) AS place, \
                   (SELECT COUNT(*) FROM report_data_weeks k \
                    JOIN report_data_collections kc ON kc.id = k.collection_id \
                    WHERE kc.instance_id = c.instance_id \
                    AND (k.status IN ('submitting', 'running') OR (k.status = 'cancelled' \
                     AND EXISTS (SELECT 1 FROM workflow_executions ke WHERE ke.id = k.execution_id \
                      AND ke.amc_execution_id IS NOT NULL AND ke.status IN {LIVE_EXECUTION})))) AS busy \
                   FROM {} JOIN report_data_weeks w ON w.id = v.week_id \
                   JOIN report_data_collections c ON c.id = w.collection_id \
                   WHERE {status} IN ('pending', 'failed') \
                   AND c.status IN ('pending', 'running') AND {fence}\
                 ) AS x WHERE x.busy + x.place <= x.max_in_flight \
                 AND (x.max_creates = 0 OR x.place + (SELECT COUNT(*) FROM workflow_executions q \
                  WHERE q.instance_id = x.instance_id AND {COUNTED_CREATE}) <= x.max_creates) \
                 RETURNING id",
                fenced(
                    1,
                    &[
                        ("ord", "bigint"),
                        ("execution_id", "uuid"),
                        ("week_id", "uuid"),
                        ("collection_id", "uuid"),
                        ("instance_id", "uuid"),
                        ("idempotency_key", "text"),
                        ("window_start", "text"),
                        ("window_end", "text"),
                        ("time_zone", "text"),
                        ("parameters", "jsonb"),
                        ("max_in_flight", "bigint"),
                        ("max_creates", "bigint"),
                    ]
                )
            ),
            intents_weeks: format!(
                "UPDATE report_data_weeks AS w SET status = 'submitting', \
                 execution_id = v.execution_id, amc_execution_id = NULL, row_count = NULL, \
                 data_checksum = NULL, error_message = NULL, attempts = attempts + 1, \
                 next_attempt_at = NULL, started_at = $2, updated_at = $2 FROM {} \
                 WHERE w.id = v.week_id AND {status} IN ('pending', 'failed')",
                json_rows(
                    postgres,
                    1,
                    &[("execution_id", "uuid"), ("week_id", "uuid")]
                )
            ),
            // The first submission of a pending collection makes it running (cheaper than a full
            // refresh, which only completions and failures need).
            mark_running: format!(
                "UPDATE report_data_collections SET status = 'running', updated_at = $2 \
                 WHERE id IN (SELECT v.id FROM {}) AND status = 'pending' AND NOT given_up",
                ids(1)
            ),
            submitted_executions: format!(
                "UPDATE workflow_executions AS e SET amc_execution_id = v.amc, status = 'pending', \
                 submitted_at = $2, updated_at = $2 FROM {} WHERE e.id = v.execution_id",
                json_rows(postgres, 1, &[("execution_id", "uuid"), ("amc", "text")])
            ),
            submitted_weeks: format!(
                "UPDATE report_data_weeks AS w SET status = 'running', amc_execution_id = v.amc, \
                 updated_at = $2 FROM {} WHERE w.execution_id = v.execution_id \
                 AND {status} = 'submitting' AND {fence} RETURNING {returned}execution_id",
                fenced(1, &[("execution_id", "uuid"), ("amc", "text")])
            ),
            execution_statuses: format!(
                "UPDATE workflow_executions AS e SET status = v.status, status_reason = v.reason, \
                 updated_at = $2 FROM {} WHERE e.id = v.execution_id",
                json_rows(
                    postgres,
                    1,
                    &[
                        ("execution_id", "uuid"),
                        ("status", "text"),
                        ("reason", "text")
                    ]
                )
            ),
            downloading_weeks: format!(
                // A download tried again after a failed one counts as an attempt, so results AMC
                // never delivers end the week for good instead of being asked for forever.
                "UPDATE report_data_weeks AS w SET status = 'downloading', error_message = NULL, \
                 attempts = CASE WHEN w.status = 'failed' THEN w.attempts + 1 ELSE w.attempts END, \
                 next_attempt_at = NULL, updated_at = $2 FROM {} \
                 WHERE w.execution_id = v.execution_id \
                 AND {status} IN ('running', 'failed', 'pending') AND {fence} \
                 RETURNING {returned}execution_id",
                fenced(1, &[("execution_id", "uuid")])
            ),
            downloading_executions: format!(
                "UPDATE workflow_executions SET status = 'succeeded', updated_at = $2 \
                 WHERE id IN (SELECT v.id FROM {})",
                ids(1)
            ),
            completed_weeks: format!(
                "UPDATE report_data_weeks AS w SET status = 'completed', row_count = v.row_count, \
                 data_checksum = v.checksum, amc_execution_id = v.amc, error_message = NULL, \
                 completed_at = $2, updated_at = $2, result_columns = v.columns FROM {} \
                 WHERE w.id = v.week_id AND w.execution_id = v.execution_id \
                 AND {status} = 'downloading' AND {fence} RETURNING {returned}execution_id",
                fenced(
                    1,
                    &[
                        ("week_id", "uuid"),
                        ("execution_id", "uuid"),
                        ("row_count", "bigint"),
                        ("checksum", "text"),
                        ("amc", "text"),
                        ("columns", "jsonb"),
                    ]
                )
            ),
            completed_executions: format!(
                "UPDATE workflow_executions SET status = 'succeeded', completed_at = $2, \
                 updated_at = $2 WHERE id IN (SELECT v.id FROM {})",
                ids(1)
            ),
            // `progress::REFRESH_COLLECTION` for many collections at once, only where no week is
            // open any more (before that a completion cannot change the collection's status).
            refresh_settled: format!(
                "{} WHERE id IN (SELECT v.id FROM {}) \
                 AND status NOT IN ('paused', 'cancelled') AND NOT given_up \
                 AND NOT EXISTS (SELECT 1 FROM report_data_weeks o \
                     WHERE o.collection_id = report_data_collections.id \
                     AND o.status IN ('pending', 'submitting', 'running', 'downloading'))",
                refresh_collection_set("report_data_collections.id"),
                ids(1)
            ),
        }
    }
}

/// A JSON array of `{"id": …}` objects.
pub(super) fn id_list<T: serde::Serialize>(ids: impl IntoIterator<Item = T>) -> String {
    Value::from(
        ids.into_iter()
            .map(|id| json!({ "id": id }))
            .collect::<Vec<_>>(),
    )
    .to_string()
}

/// Distinct collections, in order.
pub(super) fn distinct(ids: impl IntoIterator<Item = CollectionId>) -> Vec<CollectionId> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

/// The batch's transitions by kind (indexes into the batch, in order).
#[derive(Default)]
pub(super) struct Kinds {
    pub intents: Vec<usize>,
    pub submitted: Vec<usize>,
    pub statuses: Vec<usize>,
    pub downloading: Vec<usize>,
    pub completed: Vec<usize>,
    pub failed: Vec<usize>,
}

impl Kinds {
    pub fn of(batch: &[Transition]) -> Self {
        let mut kinds = Kinds::default();
        for (i, transition) in batch.iter().enumerate() {
            let list = match transition {
                Transition::Intent(_) => &mut kinds.intents,
                Transition::Submitted { .. } => &mut kinds.submitted,
                Transition::ExecutionStatus { .. } => &mut kinds.statuses,
                Transition::Downloading { .. } => &mut kinds.downloading,
                Transition::Completed(_) => &mut kinds.completed,
                Transition::Failed { .. } | Transition::Withdrawn { .. } => &mut kinds.failed,
            };
            list.push(i);
        }
        kinds
    }

    /// The set-based statements' JSON parameter for the given transitions.
    pub fn json(&self, batch: &[Transition], indexes: &[usize]) -> String {
        let fenced = |fence: &Fence, mut row: serde_json::Value| {
            row["owner"] = serde_json::json!(fence.owner);
            row["epoch"] = serde_json::json!(fence.epoch);
            row
        };
        let rows: Vec<serde_json::Value> = indexes
            .iter()
            .filter_map(|&i| match &batch[i] {
                Transition::Submitted {
                    execution_id,
                    amc_execution_id,
                    fence,
                    ..
                } => Some(fenced(
                    fence,
                    serde_json::json!({ "execution_id": execution_id, "amc": amc_execution_id }),
                )),
                Transition::ExecutionStatus {
                    execution_id,
                    amc_status,
                    status_reason,
                } => Some(serde_json::json!({
                    "execution_id": execution_id, "status": amc_status, "reason": status_reason,
                })),
                Transition::Downloading {
                    execution_id,
                    fence,
                    ..
                } => Some(fenced(
                    fence,
                    serde_json::json!({ "execution_id": execution_id }),
                )),
                Transition::Completed(week) => Some(fenced(
                    &week.fence,
                    serde_json::json!({
                        "week_id": week.week_id, "execution_id": week.execution_id,
                        "row_count": week.row_count, "checksum": week.data_checksum,
                        "amc": week.amc_execution_id, "columns": week.columns,
                    }),
                )),
                Transition::Intent(intent) => Some(fenced(
                    &intent.fence,
                    serde_json::json!({
                        "ord": i, "execution_id": intent.execution_id,
                        "week_id": intent.week_id, "collection_id": intent.collection_id,
                        "instance_id": intent.instance_id,
                        "idempotency_key": intent.idempotency_key,
                        "window_start": intent.window_start, "window_end": intent.window_end,
                        "time_zone": intent.time_zone, "parameters": intent.parameters,
                        "max_in_flight": intent.max_in_flight,
                        "max_creates": intent.quota.max_creates,
                    }),
                )),
                Transition::Failed { .. } | Transition::Withdrawn { .. } => None,
            })
            .collect();
        serde_json::Value::from(rows).to_string()
    }
}

/// Marks as applied the transitions (at `indexes` of the batch) whose execution is among those a
/// statement moved, and returns them.
pub(super) fn mark_moved<'a>(
    batch: &'a [Transition],
    indexes: &[usize],
    moved: &[ExecutionId],
    applied: &mut [bool],
) -> Vec<&'a Transition> {
    let mut marked = Vec::new();
    for &i in indexes {
        applied[i] = batch[i]
            .execution_id()
            .is_some_and(|id| moved.contains(&id));
        if applied[i] {
            marked.push(&batch[i]);
        }
    }
    marked
}
