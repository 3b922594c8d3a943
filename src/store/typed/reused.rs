//! Weeks completed from another collection's stored execution (`store::reuse`) enter their
//! workflow's relation in the transaction that completes them, like any completed week. The
//! relation already has every column of their rows (the source week of the same workflow was
//! merged into it when it completed), so nothing is reshaped; a workflow whose relation is not
//! built yet is left to `views rebuild`, which fills it from every visible row.

use super::fill::{dialect, insert, table_exists};
use super::sql::{Dialect, Rows};
use super::{RelationRow, RELATION_COLUMNS};
use crate::ids::{WeekId, WorkflowId};
use crate::store::tx::{id_list, on_tx, Tx};

/// Inserts the rows of `weeks` (just completed from stored executions, all of `workflow_id`).
pub(in crate::store) async fn fill_reused(
    tx: &mut Tx,
    workflow_id: WorkflowId,
    weeks: &[WeekId],
) -> Result<(), sqlx::Error> {
    if weeks.is_empty() {
        return Ok(());
    }
    let sqlite = dialect(tx) == Dialect::Sqlite;
    let select = format!("{RELATION_COLUMNS} WHERE workflow_id = $1");
    let row: Option<RelationRow> = on_tx!(tx, |conn| sqlx::query_as(&select)
        .bind(workflow_id)
        .fetch_optional(conn)
        .await)?;
    let Some(row) = row else {
        return Ok(());
    };
    let relation = row.into_relation(sqlite);
    if !table_exists(tx, &relation).await? {
        return Ok(());
    }
    insert(tx, &relation, Rows::Weeks, &id_list(weeks)).await
}
