//! Each workflow's typed relation: Postgres `amc_results.<name>` (schema `results.schema`),
//! SQLite `amc_results_<name>`, a real table holding exactly the rows `collection export` gives
//! (completed weeks by their current execution, a rerun week's old rows until the new execution
//! completes, nothing of cancelled or failed weeks, nothing `keep_weeks` dropped), one typed
//! column per AMC output column.
//!
//! It is filled in the transaction that completes a week (`fill.rs`, called by
//! `transitions/completed.rs`) from the rows the week's ingest staged, so readers switch in the
//! same commit as `export` does. The workflow's columns and their types are kept in
//! `result_relations`; a week whose values need a new column or a wider type reshapes the
//! relation and refills it from the stored rows in that same transaction (`sql.rs` writes the
//! statements, `rebuild.rs` does the same for every workflow on `views rebuild`).

mod fill;
mod rebuild;
mod reused;
mod sql;

pub(super) use fill::fill_completed;
pub(super) use reused::fill_reused;

pub use rebuild::RebuildReport;

use serde::{Deserialize, Serialize};

use super::{with_pool, Store, StoreError};
use crate::ids::WorkflowId;
use crate::results_tables::{relation_columns, ColumnType};

/// Most result columns a relation holds: Postgres allows 1,600 columns per table, six are fixed.
pub const MAX_RESULT_COLUMNS: usize = 1594;

/// The schema Postgres relations go to unless `results.schema` says otherwise.
pub const DEFAULT_RESULTS_SCHEMA: &str = "amc_results";

/// One result column of a relation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationColumn {
    /// AMC's column name (the key of the stored rows).
    pub source: String,
    /// The relation's column name (normalised, unique).
    pub column: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
}

/// A workflow's relation as `result_relations` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relation {
    #[serde(skip)]
    pub workflow_id: WorkflowId,
    /// Postgres: the schema; SQLite: empty.
    #[serde(skip)]
    pub schema: String,
    /// The name without schema or prefix (`weekly_traffic`).
    #[serde(skip)]
    pub name: String,
    /// What a query names: `amc_results.weekly_traffic` / `amc_results_weekly_traffic`.
    pub relation: String,
    pub columns: Vec<RelationColumn>,
}

impl Relation {
    pub(super) fn new(workflow_id: WorkflowId, schema: String, name: String, sqlite: bool) -> Self {
        let relation = if sqlite {
            format!("amc_results_{name}")
        } else {
            format!("{schema}.{name}")
        };
        Relation {
            workflow_id,
            schema,
            name,
            relation,
            columns: Vec::new(),
        }
    }

    /// The relation quoted for SQL (its parts are normalised identifiers, never raw text).
    pub(super) fn quoted(&self) -> String {
        if self.schema.is_empty() {
            format!("\"amc_results_{}\"", self.name)
        } else {
            format!("\"{}\".\"{}\"", self.schema, self.name)
        }
    }

    /// Adds a week's columns: new ones at the end, existing ones widened to hold its values.
    /// Returns whether anything changed. Columns past `MAX_RESULT_COLUMNS` are left out.
    pub fn merge(&mut self, sources: &[String], types: &[ColumnType]) -> bool {
        let mut changed = false;
        for (index, source) in sources.iter().enumerate() {
            let seen = types.get(index).copied().unwrap_or(ColumnType::Text);
            let full = self.columns.len() >= MAX_RESULT_COLUMNS;
            match self.columns.iter_mut().find(|c| &c.source == source) {
                Some(column) => {
                    let wider = column.column_type.join(seen);
                    changed |= wider != column.column_type;
                    column.column_type = wider;
                }
                None if !full => {
                    self.columns.push(RelationColumn {
                        source: source.clone(),
                        column: String::new(),
                        column_type: seen,
                    });
                    changed = true;
                }
                None => {
                    tracing::warn!(
                        relation = %self.relation,
                        "A result column is left out of the relation: it holds at most {MAX_RESULT_COLUMNS}."
                    );
                }
            }
        }
        // Earlier names never change when names are added at the end.
        let sources: Vec<String> = self.columns.iter().map(|c| c.source.clone()).collect();
        for (column, name) in self.columns.iter_mut().zip(relation_columns(&sources)) {
            column.column = name;
        }
        changed
    }
}

/// The relation of the workflow of week `$1` (its schema and name), with the week's collection
/// and start: what deleting that week's rows from it needs.
pub(super) const RELATION_OF_WEEK: &str = "SELECT r.relation_schema, r.relation_name, \
    w.collection_id, w.week_start_date FROM report_data_weeks w \
    JOIN report_data_collections c ON c.id = w.collection_id \
    JOIN result_relations r ON r.workflow_id = c.workflow_id WHERE w.id = $1";

/// `DELETE` of one week's rows (`$1` collection, `$2` week start) from the relation `name` in
/// `schema` (empty on SQLite), both as `result_relations` recorded them (normalised).
pub(super) fn delete_week_sql(schema: &str, name: &str) -> String {
    let table = if schema.is_empty() {
        format!("\"amc_results_{name}\"")
    } else {
        format!("\"{schema}\".\"{name}\"")
    };
    format!("DELETE FROM {table} WHERE collection_id = $1 AND week_start = $2")
}

#[derive(sqlx::FromRow)]
pub(super) struct RelationRow {
    workflow_id: WorkflowId,
    relation_schema: String,
    relation_name: String,
    columns: sqlx::types::Json<Vec<RelationColumn>>,
}

impl RelationRow {
    pub(super) fn into_relation(self, sqlite: bool) -> Relation {
        let mut relation = Relation::new(
            self.workflow_id,
            self.relation_schema,
            self.relation_name,
            sqlite,
        );
        relation.columns = self.columns.0;
        relation
    }
}

pub(super) const RELATION_COLUMNS: &str =
    "SELECT workflow_id, relation_schema, relation_name, columns \
    FROM result_relations";

impl Store {
    /// The relation of the workflow named `name`: `Ok(None)` when no week of it completed yet;
    /// `NotFound` for an unknown workflow.
    pub async fn workflow_relation(&self, name: &str) -> Result<Option<Relation>, StoreError> {
        let sql = format!(
            "{RELATION_COLUMNS} WHERE workflow_id = (SELECT id FROM workflows WHERE name = $1)"
        );
        let known: Option<WorkflowId> = with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT id FROM workflows WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(pool)
        .await)?;
        if known.is_none() {
            return Err(StoreError::NotFound(format!("workflow {name:?} not found")));
        }
        let row: Option<RelationRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(name)
            .fetch_optional(pool)
            .await)?;
        let sqlite = matches!(self, Store::Sqlite(_));
        Ok(row.map(|row| row.into_relation(sqlite)))
    }

    /// Every workflow's relation name, by workflow (the console names it on a collection's page).
    pub async fn relation_names(&self) -> Result<Vec<(WorkflowId, String)>, StoreError> {
        let rows: Vec<RelationRow> = with_pool!(self, |pool| sqlx::query_as(RELATION_COLUMNS)
            .fetch_all(pool)
            .await)?;
        let sqlite = matches!(self, Store::Sqlite(_));
        Ok(rows
            .into_iter()
            .map(|row| {
                let relation = row.into_relation(sqlite);
                (relation.workflow_id, relation.relation)
            })
            .collect())
    }

    /// The relation of collection `id`'s workflow, as a query names it (`None` before a week of
    /// that workflow completed).
    pub async fn relation_of_collection(
        &self,
        id: crate::ids::CollectionId,
    ) -> Result<Option<String>, StoreError> {
        let sql = format!(
            "{RELATION_COLUMNS} WHERE workflow_id = \
             (SELECT workflow_id FROM report_data_collections WHERE id = $1)"
        );
        let row: Option<RelationRow> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        let sqlite = matches!(self, Store::Sqlite(_));
        Ok(row.map(|row| row.into_relation(sqlite).relation))
    }

    /// Records `results.schema` as where new Postgres relations go (existing ones stay where
    /// they are). `schema` was checked to be a plain identifier by the configuration.
    pub async fn set_results_schema(&self, schema: &str) -> Result<(), StoreError> {
        if let Store::Postgres(pool) = self {
            sqlx::query(
                "UPDATE result_options SET relation_schema = $1 \
                 WHERE id = 1 AND relation_schema <> $1",
            )
            .bind(schema)
            .execute(pool)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnType::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_merge_adds_new_columns_at_the_end_and_only_widens() {
        let mut relation =
            Relation::new(WorkflowId::new(), "amc_results".into(), "w".into(), false);
        assert!(relation.merge(&names(&["week_start", "spend"]), &[Date, Bigint]));
        assert!(!relation.merge(&names(&["spend"]), &[Bigint]));
        assert!(relation.merge(&names(&["spend", "Clicks"]), &[Numeric, Empty]));
        assert!(!relation.merge(&names(&["spend"]), &[Bigint]));
        let shown: Vec<(&str, ColumnType)> = relation
            .columns
            .iter()
            .map(|c| (c.column.as_str(), c.column_type))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("result_week_start", Date),
                ("spend", Numeric),
                ("clicks", Empty)
            ]
        );
    }
}
