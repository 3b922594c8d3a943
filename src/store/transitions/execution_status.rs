//! The latest AMC status of an execution, stored as AMC reported it (the week does not move): a
//! non-terminal status while the week is followed, and how a cancelled week's execution ended.
//! Never refused: an unknown execution is not worth a refusal.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::refused::Refused;
use super::{json_rows, on_tx, Of, Sql, Tx};
use crate::ids::ExecutionId;
use crate::status::ExecutionStatus;

/// AMC's latest status of an execution.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub execution_id: ExecutionId,
    pub status: ExecutionStatus,
    pub status_reason: Option<String>,
}

/// AMC's status, as AMC reported it (lower-cased, `ExecutionStatus::from_amc`).
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
pub(super) async fn apply(
    tx: &mut Tx,
    reports: &Of<'_, StatusReport>,
    now: DateTime<Utc>,
    applied: &mut [bool],
) -> Result<(), sqlx::Error> {
    if reports.is_empty() {
        return Ok(());
    }
    let rows = json_rows(reports, |_, p| {
        json!({
            "execution_id": p.execution_id, "status": p.status.as_str(),
            "reason": p.status_reason,
        })
    });
    let sql = tx.sql(&STATUSES);
    on_tx!(tx, |conn| sqlx::query(sql)
        .bind(&rows)
        .bind(now)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    reports.iter().for_each(|&(i, _)| applied[i] = true);
    Ok(())
}

/// Unreachable in practice (every report counts as applied); kept so the verdict is total.
pub(super) fn why_refused(p: &StatusReport) -> Refused {
    Refused::Stale(format!("no execution {}", p.execution_id))
}
