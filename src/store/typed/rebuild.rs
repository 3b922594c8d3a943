//! `amc-collector views rebuild` (and `migrate`, for relations that are missing): every
//! workflow's relation (re)created from the rows already stored, for an install upgraded with
//! data in it. Column order comes from the weeks' recorded columns, types from reading every
//! visible row (never narrower than the types already recorded). Workflows are taken in the
//! order they were created, so names that normalise alike get the same `_2` on every rebuild.

use futures::TryStreamExt;

use super::fill::{load_or_create, reshape_and_refill, save_columns, table_exists};
use crate::ids::WorkflowId;
use crate::results_tables::{ColumnType, TypeObserver};
use crate::status::WeekStatus;
use crate::store::tx::Tx;
use crate::store::{with_pool, Store, StoreError};

/// What a rebuild did: each relation it (re)created with its row count.
#[derive(Debug, Clone, Default)]
pub struct RebuildReport {
    pub rebuilt: Vec<(String, i64)>,
    /// Relations that were there already (only when rebuilding the missing ones).
    pub kept: usize,
}

/// Workflows with rows a relation would show, oldest first.
const WORKFLOWS: &str = "SELECT f.id, f.name FROM workflows f WHERE EXISTS \
    (SELECT 1 FROM report_data_weeks w JOIN report_data_collections c ON c.id = w.collection_id \
     WHERE c.workflow_id = f.id AND (w.status = $1 OR w.rerun_of IS NOT NULL)) \
    ORDER BY f.created_at, f.id";

const COLUMN_LISTS: &str = "SELECT w.result_columns FROM report_data_weeks w \
    JOIN report_data_collections c ON c.id = w.collection_id \
    WHERE c.workflow_id = $1 AND (w.status = $2 OR w.rerun_of IS NOT NULL) \
    AND w.result_columns IS NOT NULL ORDER BY w.week_start_date, w.collection_id";

const VISIBLE_DATA: &str = "SELECT r.data FROM report_data_rows r \
    JOIN report_data_weeks w ON w.id = r.week_id \
    JOIN report_data_collections c ON c.id = w.collection_id \
    WHERE c.workflow_id = $1 AND ((w.status = $2 AND r.execution_id = w.execution_id) \
         OR (w.status <> $2 AND r.execution_id = w.rerun_of))";

impl Store {
    /// Rebuilds every workflow's relation from its stored rows (`only_missing`: only those whose
    /// relation does not exist). Each relation is replaced in one transaction.
    pub async fn rebuild_relations(&self, only_missing: bool) -> Result<RebuildReport, StoreError> {
        let workflows: Vec<(WorkflowId, String)> =
            with_pool!(self, |pool| sqlx::query_as(WORKFLOWS)
                .bind(WeekStatus::Completed.as_str())
                .fetch_all(pool)
                .await)?;
        let mut report = RebuildReport::default();
        for (workflow_id, name) in workflows {
            let (sources, types) = self.observed_columns(workflow_id).await?;
            let mut tx = match self {
                Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
                Store::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            };
            let (mut relation, created) = load_or_create(&mut tx, workflow_id, &name).await?;
            let exists = !created && table_exists(&mut tx, &relation).await?;
            if only_missing && exists {
                report.kept += 1;
                continue;
            }
            let before = relation.columns.clone();
            relation.merge(&sources, &types);
            reshape_and_refill(&mut tx, &relation, exists.then_some(before.as_slice())).await?;
            save_columns(&mut tx, &relation).await?;
            match tx {
                Tx::Postgres(tx) => tx.commit().await?,
                Tx::Sqlite(tx) => tx.commit().await?,
            }
            let count_sql = format!("SELECT COUNT(*) FROM {}", relation.quoted());
            let rows: i64 = with_pool!(self, |pool| sqlx::query_scalar(&count_sql)
                .fetch_one(pool)
                .await)?;
            report.rebuilt.push((relation.relation.clone(), rows));
        }
        Ok(report)
    }

    /// The workflow's result columns in AMC's order and their types over every visible row.
    async fn observed_columns(
        &self,
        workflow_id: WorkflowId,
    ) -> Result<(Vec<String>, Vec<ColumnType>), StoreError> {
        let lists: Vec<sqlx::types::Json<Vec<String>>> =
            with_pool!(self, |pool| sqlx::query_scalar(COLUMN_LISTS)
                .bind(workflow_id)
                .bind(WeekStatus::Completed.as_str())
                .fetch_all(pool)
                .await)?;
        let mut union = crate::results::ColumnUnion::default();
        for list in lists {
            union.add(list.0);
        }
        let mut observer = TypeObserver::default();
        with_pool!(self, |pool| {
            let mut rows =
                sqlx::query_scalar::<_, sqlx::types::Json<serde_json::Value>>(VISIBLE_DATA)
                    .bind(workflow_id)
                    .bind(WeekStatus::Completed.as_str())
                    .fetch(pool);
            while let Some(row) = rows.try_next().await? {
                let Some(object) = row.0.as_object().cloned() else {
                    continue;
                };
                for (key, value) in object {
                    let position = union.add(vec![key])[0];
                    if let Some(text) = value.as_str() {
                        observer.observe(position, text.as_bytes());
                    }
                }
            }
            Ok::<(), sqlx::Error>(())
        })?;
        let types = observer.finish(union.names.len());
        Ok((union.names, types))
    }
}
