//! `submitting` → `running`: the AMC id, stored the moment AMC answers. Refused when the week is
//! no longer `submitting` with this execution (cancelled, or withdrawn) or the lease was lost.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::refused::{stale_or_lease_lost, Refused};
use super::{fenced, json_rows, mark_moved, on_tx, Edge, Of, Sql, Tx};
use crate::ids::{CollectionId, ExecutionId};
use crate::status::{ExecutionStatus, WeekStatus};
use crate::store::fence::Fence;
use crate::store::Store;

/// The AMC id of an execution, the moment AMC answered the create.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub collection_id: CollectionId,
    pub execution_id: ExecutionId,
    pub amc_execution_id: String,
    pub fence: Fence,
}

pub(super) const FROM: [WeekStatus; 1] = [WeekStatus::Submitting];
pub(super) const TO: WeekStatus = WeekStatus::Running;
pub(super) const EDGE: Edge = Edge {
    label: "Submitted",
    from: &FROM,
    to: TO,
};

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
    submitted: &Of<'_, Submitted>,
    now: DateTime<Utc>,
    applied: &mut [bool],
) -> Result<(), sqlx::Error> {
    if submitted.is_empty() {
        return Ok(());
    }
    let rows = json_rows(submitted, |_, p| {
        fenced(
            &p.fence,
            json!({ "execution_id": p.execution_id, "amc": p.amc_execution_id }),
        )
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
        .bind(TO.as_str())
        .bind(FROM[0].as_str())
        .fetch_all(conn)
        .await)?;
    mark_moved(submitted, |p| p.execution_id, &moved, applied);
    Ok(())
}

pub(super) async fn why_refused(store: &Store, p: &Submitted) -> Refused {
    let what = format!("no submitting week holds execution {}", p.execution_id);
    stale_or_lease_lost(store, p.collection_id, &p.fence, what).await
}
