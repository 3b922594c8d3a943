//! `running` (or a `failed`/`pending` week whose execution succeeded) → `downloading`.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{fenced, id_list, on_tx, Kind, Sql, Tx};
use crate::ids::ExecutionId;
use crate::status::{ExecutionStatus, WeekStatus};
use crate::store::batch::Transition;

/// `$3`: `downloading`, `$4`/`$5`/`$6`: `running`, `failed`, `pending`. A download tried again
/// after a failed one counts as an attempt, so results AMC never delivers end the week for good
/// instead of being asked for forever. (`RETURNING` and `+`: see `submitted::WEEKS`.)
const WEEKS: Sql = Sql {
    postgres: "UPDATE report_data_weeks AS w SET status = $3, error_message = NULL, \
        attempts = CASE WHEN w.status = $5 THEN w.attempts + 1 ELSE w.attempts END, \
        next_attempt_at = NULL, updated_at = $2 \
        FROM json_to_recordset(CAST($1 AS json)) AS v(execution_id uuid, owner text, epoch bigint) \
        WHERE w.execution_id = v.execution_id AND w.status IN ($4, $5, $6) \
        AND (SELECT f.lease_owner = v.owner AND f.lease_epoch = v.epoch \
             FROM report_data_collections f WHERE f.id = w.collection_id) \
        RETURNING w.execution_id",
    sqlite: "UPDATE report_data_weeks AS w SET status = $3, error_message = NULL, \
        attempts = CASE WHEN w.status = $5 THEN w.attempts + 1 ELSE w.attempts END, \
        next_attempt_at = NULL, updated_at = $2 \
        FROM (SELECT json_extract(value, '$.execution_id') AS execution_id, \
            json_extract(value, '$.owner') AS owner, json_extract(value, '$.epoch') AS epoch \
            FROM json_each($1)) AS v \
        WHERE w.execution_id = v.execution_id AND +w.status IN ($4, $5, $6) \
        AND (SELECT f.lease_owner = v.owner AND f.lease_epoch = v.epoch \
             FROM report_data_collections f WHERE f.id = w.collection_id) \
        RETURNING execution_id",
};

/// The executions of the weeks that moved: `$3` `succeeded`.
const EXECUTIONS: Sql = Sql {
    postgres: "UPDATE workflow_executions SET status = $3, updated_at = $2 WHERE id IN \
        (SELECT v.id FROM json_to_recordset(CAST($1 AS json)) AS v(id uuid))",
    sqlite: "UPDATE workflow_executions SET status = $3, updated_at = $2 WHERE id IN \
        (SELECT json_extract(value, '$.id') FROM json_each($1))",
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
        Transition::Downloading {
            execution_id,
            fence,
            ..
        } => Some(fenced(fence, json!({ "execution_id": execution_id }))),
        _ => None,
    });
    let sql = tx.sql(&WEEKS);
    let moved: Vec<ExecutionId> = on_tx!(tx, |conn| sqlx::query_scalar(sql)
        .bind(&rows)
        .bind(now)
        .bind(WeekStatus::Downloading.as_str())
        .bind(WeekStatus::Running.as_str())
        .bind(WeekStatus::Failed.as_str())
        .bind(WeekStatus::Pending.as_str())
        .fetch_all(conn)
        .await)?;
    if !moved.is_empty() {
        let sql = tx.sql(&EXECUTIONS);
        on_tx!(tx, |conn| sqlx::query(sql)
            .bind(id_list(&moved))
            .bind(now)
            .bind(ExecutionStatus::Succeeded.as_str())
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
    }
    kind.mark_moved(&moved, applied);
    Ok(())
}
