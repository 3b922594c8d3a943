//! `submitting` → `running`: the AMC id, stored the moment AMC answers; and the latest AMC status
//! of an execution (the week does not move).

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{fenced, on_tx, Kind, Sql, Tx};
use crate::ids::ExecutionId;
use crate::status::{ExecutionStatus, WeekStatus};
use crate::store::batch::Transition;

/// The AMC id is kept on the execution even when the week moved on (e.g. cancelled meanwhile),
/// so the execution can still be found and cancelled on AMC. `$3`: `pending`.
const EXECUTIONS: Sql = Sql {
    postgres: "UPDATE workflow_executions AS e SET amc_execution_id = v.amc, status = $3, \
        submitted_at = $2, updated_at = $2 \
        FROM json_to_recordset(CAST($1 AS json)) AS v(execution_id uuid, amc text) \
        WHERE e.id = v.execution_id",
    sqlite: "UPDATE workflow_executions AS e SET amc_execution_id = v.amc, status = $3, \
        submitted_at = $2, updated_at = $2 \
        FROM (SELECT json_extract(value, '$.execution_id') AS execution_id, \
              json_extract(value, '$.amc') AS amc FROM json_each($1)) AS v \
        WHERE e.id = v.execution_id",
};

/// `$3`: `running`, `$4`: `submitting`. SQLite's `RETURNING` names only the updated table, and
/// not by its alias; Postgres needs the alias, as `v` has a column of the same name. Without
/// statistics SQLite drove the join from the status index and re-read the JSON for every week in
/// that state; the unary `+` (SQLite's idiom) keeps it on the execution index.
const WEEKS: Sql = Sql {
    postgres: "UPDATE report_data_weeks AS w SET status = $3, amc_execution_id = v.amc, \
        updated_at = $2 FROM json_to_recordset(CAST($1 AS json)) \
            AS v(execution_id uuid, amc text, owner text, epoch bigint) \
        WHERE w.execution_id = v.execution_id AND w.status = $4 \
        AND (SELECT f.lease_owner = v.owner AND f.lease_epoch = v.epoch \
             FROM report_data_collections f WHERE f.id = w.collection_id) \
        RETURNING w.execution_id",
    sqlite: "UPDATE report_data_weeks AS w SET status = $3, amc_execution_id = v.amc, \
        updated_at = $2 FROM (SELECT json_extract(value, '$.execution_id') AS execution_id, \
            json_extract(value, '$.amc') AS amc, json_extract(value, '$.owner') AS owner, \
            json_extract(value, '$.epoch') AS epoch FROM json_each($1)) AS v \
        WHERE w.execution_id = v.execution_id AND +w.status = $4 \
        AND (SELECT f.lease_owner = v.owner AND f.lease_epoch = v.epoch \
             FROM report_data_collections f WHERE f.id = w.collection_id) \
        RETURNING execution_id",
};

pub(super) async fn apply(
    tx: &mut Tx,
    kind: &Kind<'_>,
    now: DateTime<Utc>,
    applied: &mut [bool],
) -> Result<(), sqlx::Error> {
    if kind.is_empty() {
        return Ok(());
    }
    let rows = kind.json(|_, transition| match transition {
        Transition::Submitted {
            execution_id,
            amc_execution_id,
            fence,
            ..
        } => Some(fenced(
            fence,
            json!({ "execution_id": execution_id, "amc": amc_execution_id }),
        )),
        _ => None,
    });
    let sql = tx.sql(&EXECUTIONS);
    on_tx!(tx, |conn| sqlx::query(sql)
        .bind(&rows)
        .bind(now)
        .bind(ExecutionStatus::Pending.as_str())
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    let sql = tx.sql(&WEEKS);
    let moved: Vec<ExecutionId> = on_tx!(tx, |conn| sqlx::query_scalar(sql)
        .bind(&rows)
        .bind(now)
        .bind(WeekStatus::Running.as_str())
        .bind(WeekStatus::Submitting.as_str())
        .fetch_all(conn)
        .await)?;
    kind.mark_moved(&moved, applied);
    Ok(())
}

/// AMC's status, as AMC reported it (lower-cased), not one of ours.
const STATUSES: Sql = Sql {
    postgres: "UPDATE workflow_executions AS e SET status = v.status, status_reason = v.reason, \
        updated_at = $2 FROM json_to_recordset(CAST($1 AS json)) \
            AS v(execution_id uuid, status text, reason text) \
        WHERE e.id = v.execution_id",
    sqlite: "UPDATE workflow_executions AS e SET status = v.status, status_reason = v.reason, \
        updated_at = $2 FROM (SELECT json_extract(value, '$.execution_id') AS execution_id, \
            json_extract(value, '$.status') AS status, json_extract(value, '$.reason') AS reason \
            FROM json_each($1)) AS v \
        WHERE e.id = v.execution_id",
};

/// Tracing only: an unknown execution is not worth a refusal, so every one counts as applied.
pub(super) async fn apply_statuses(
    tx: &mut Tx,
    kind: &Kind<'_>,
    now: DateTime<Utc>,
    applied: &mut [bool],
) -> Result<(), sqlx::Error> {
    if kind.is_empty() {
        return Ok(());
    }
    let rows = kind.json(|_, transition| match transition {
        Transition::ExecutionStatus {
            execution_id,
            amc_status,
            status_reason,
        } => Some(json!({
            "execution_id": execution_id, "status": amc_status, "reason": status_reason,
        })),
        _ => None,
    });
    let sql = tx.sql(&STATUSES);
    on_tx!(tx, |conn| sqlx::query(sql)
        .bind(&rows)
        .bind(now)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    kind.iter().for_each(|(i, _)| applied[i] = true);
    Ok(())
}
