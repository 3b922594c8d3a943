//! `running` (or a `failed`/`pending` week whose execution succeeded) → `downloading`. Refused
//! when no week in those states holds the execution any more (cancelled, or moved on) or the lease
//! was lost.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::refused::{stale_or_lease_lost, Refused};
use super::{fenced, id_list, json_rows, mark_moved, on_tx, Edge, Of, Sql, Tx};
use crate::ids::{CollectionId, ExecutionId};
use crate::status::{ExecutionStatus, WeekStatus};
use crate::store::fence::Fence;
use crate::store::Store;

/// AMC said SUCCEEDED: the week's execution is to be downloaded.
#[derive(Debug, Clone)]
pub struct Downloading {
    pub collection_id: CollectionId,
    pub execution_id: ExecutionId,
    pub fence: Fence,
}

/// `running`, or the week's own execution succeeded after the week `failed` (a download tried
/// again) or was put back to `pending` by retry-failed.
pub(super) const FROM: [WeekStatus; 3] =
    [WeekStatus::Running, WeekStatus::Failed, WeekStatus::Pending];
pub(super) const TO: WeekStatus = WeekStatus::Downloading;
pub(super) const EDGE: Edge = Edge {
    label: "Downloading",
    from: &FROM,
    to: TO,
};

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
    downloading: &Of<'_, Downloading>,
    now: DateTime<Utc>,
    applied: &mut [bool],
) -> Result<(), sqlx::Error> {
    if downloading.is_empty() {
        return Ok(());
    }
    let rows = json_rows(downloading, |_, p| {
        fenced(&p.fence, json!({ "execution_id": p.execution_id }))
    });
    let sql = tx.sql(&WEEKS);
    // `$5` is also the state whose leaving counts an attempt (`failed`).
    let [running, failed, pending] = FROM.map(WeekStatus::as_str);
    let moved: Vec<ExecutionId> = on_tx!(tx, |conn| sqlx::query_scalar(sql)
        .bind(&rows)
        .bind(now)
        .bind(TO.as_str())
        .bind(running)
        .bind(failed)
        .bind(pending)
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
    mark_moved(downloading, |p| p.execution_id, &moved, applied);
    Ok(())
}

pub(super) async fn why_refused(store: &Store, p: &Downloading) -> Refused {
    let what = format!("no running week holds execution {}", p.execution_id);
    stale_or_lease_lost(store, p.collection_id, &p.fence, what).await
}
