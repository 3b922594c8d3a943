//! The statements that shape and fill a relation, for both backends. Identifiers come from
//! `Relation` (normalised to `[a-z0-9_]`, schema checked by the configuration) and are always
//! quoted; AMC's column names reach SQL only as bound parameters (the JSON key to read).

use super::{Relation, RelationColumn};
use crate::results_tables::ColumnType;

/// Which SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Postgres,
    Sqlite,
}

/// Whose rows an insert takes: the weeks in the JSON id list `$1`, or every week of workflow `$1`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rows {
    Weeks,
    Workflow,
}

/// The fixed columns with their types per dialect and the expression filling them.
const FIXED: [(&str, &str, &str, &str); 6] = [
    ("collection_id", "uuid", "TEXT", "r.collection_id"),
    ("instance_id", "text", "TEXT", "i.instance_id"),
    ("week_start", "date", "DATE", "w.week_start_date"),
    ("week_end", "date", "DATE", "w.week_end_date"),
    ("execution_id", "uuid", "TEXT", "r.execution_id"),
    ("amc_execution_id", "text", "TEXT", "e.amc_execution_id"),
];

fn declared(dialect: Dialect, column_type: ColumnType) -> &'static str {
    match (dialect, column_type) {
        (Dialect::Postgres, t) => t.name(),
        (Dialect::Sqlite, ColumnType::Empty | ColumnType::Text) => "TEXT",
        (Dialect::Sqlite, ColumnType::Bigint) => "BIGINT",
        (Dialect::Sqlite, ColumnType::Numeric) => "NUMERIC",
        (Dialect::Sqlite, ColumnType::Boolean) => "BOOLEAN",
        (Dialect::Sqlite, ColumnType::Date) => "DATE",
        (Dialect::Sqlite, ColumnType::Timestamptz) => "TIMESTAMPTZ",
    }
}

/// `CREATE TABLE` of the relation, then its index (Postgres: row-level security too).
pub(super) fn create(dialect: Dialect, relation: &Relation) -> Vec<String> {
    let table = relation.quoted();
    let mut columns: Vec<String> = FIXED
        .iter()
        .map(|(name, pg, lite, _)| match dialect {
            Dialect::Postgres => format!("\"{name}\" {pg} NOT NULL"),
            Dialect::Sqlite => format!("\"{name}\" {lite} NOT NULL"),
        })
        .collect();
    columns.extend(
        relation
            .columns
            .iter()
            .map(|c| format!("\"{}\" {}", c.column, declared(dialect, c.column_type))),
    );
    let create = format!("CREATE TABLE {table} ({})", columns.join(", "));
    match dialect {
        Dialect::Postgres => vec![
            format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", relation.schema),
            create,
            format!("CREATE INDEX ON {table} (collection_id, week_start)"),
            format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"),
            format!("REVOKE ALL ON {table} FROM PUBLIC"),
        ],
        Dialect::Sqlite => vec![
            create,
            format!(
                "CREATE INDEX \"amc_results_{}_week\" ON {table} (collection_id, week_start)",
                relation.name
            ),
        ],
    }
}

/// Postgres: the changes from `before` to `after` (new columns added, changed types replaced; the
/// rows are refilled afterwards), keeping grants and policies a reader was given.
pub(super) fn alter(before: &[RelationColumn], after: &Relation) -> Vec<String> {
    let table = after.quoted();
    let mut statements = Vec::new();
    for column in &after.columns {
        let ty = declared(Dialect::Postgres, column.column_type);
        match before.iter().find(|b| b.column == column.column) {
            None => statements.push(format!(
                "ALTER TABLE {table} ADD COLUMN \"{}\" {ty}",
                column.column
            )),
            Some(old) if declared(Dialect::Postgres, old.column_type) != ty => {
                statements.push(format!(
                    "ALTER TABLE {table} ALTER COLUMN \"{}\" TYPE {ty} USING NULL",
                    column.column
                ))
            }
            Some(_) => {}
        }
    }
    statements
}

/// The expression reading one result column of row `r` as its type; `key` is its parameter.
fn value(dialect: Dialect, column: &RelationColumn, key: usize) -> String {
    let text = match dialect {
        Dialect::Postgres => format!("NULLIF(r.data ->> CAST(${key} AS text), '')"),
        Dialect::Sqlite if plain_key(&column.source) => {
            format!("NULLIF(json_extract(r.data, ${key}), '')")
        }
        // A key SQLite's JSON path cannot spell is looked up among the object's members.
        Dialect::Sqlite => {
            format!("NULLIF((SELECT j.value FROM json_each(r.data) AS j WHERE j.key = ${key}), '')")
        }
    };
    match (dialect, column.column_type) {
        (_, ColumnType::Empty | ColumnType::Text) => text,
        (Dialect::Sqlite, ColumnType::Date | ColumnType::Timestamptz) => text,
        (Dialect::Sqlite, ColumnType::Bigint) => format!("CAST({text} AS INTEGER)"),
        (Dialect::Sqlite, ColumnType::Numeric) => format!("CAST({text} AS REAL)"),
        (Dialect::Sqlite, ColumnType::Boolean) => {
            format!("CASE {text} WHEN 'true' THEN 1 WHEN 'false' THEN 0 END")
        }
        (Dialect::Postgres, t) => format!("CAST({text} AS {})", t.name()),
    }
}

/// Whether SQLite's `$."key"` path reaches `key` exactly (no quote, backslash or control).
fn plain_key(key: &str) -> bool {
    !key.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// The parameter that names `column` for `value`.
pub(super) fn key_parameter(dialect: Dialect, column: &RelationColumn) -> String {
    match dialect {
        Dialect::Sqlite if plain_key(&column.source) => format!("$.\"{}\"", column.source),
        _ => column.source.clone(),
    }
}

/// `INSERT ... SELECT` of the visible rows of `rows` (`$1`), `$2` being `completed`, the keys
/// from `$3` in the relation's column order: completed weeks by their execution, weeks being
/// collected again by the execution they replace (as `export` reads them).
pub(super) fn insert(dialect: Dialect, relation: &Relation, rows: Rows) -> String {
    let mut names: Vec<String> = FIXED.iter().map(|f| format!("\"{}\"", f.0)).collect();
    let mut values: Vec<String> = FIXED.iter().map(|f| f.3.to_string()).collect();
    for (index, column) in relation.columns.iter().enumerate() {
        names.push(format!("\"{}\"", column.column));
        values.push(value(dialect, column, index + 3));
    }
    let filter = match (rows, dialect) {
        (Rows::Weeks, Dialect::Postgres) => {
            "r.week_id IN (SELECT v.id FROM json_to_recordset(CAST($1 AS json)) AS v(id uuid))"
        }
        (Rows::Weeks, Dialect::Sqlite) => {
            "r.week_id IN (SELECT json_extract(value, '$.id') FROM json_each($1))"
        }
        (Rows::Workflow, _) => "c.workflow_id = $1",
    };
    format!(
        "INSERT INTO {} ({}) SELECT {} FROM report_data_rows r \
         JOIN report_data_weeks w ON w.id = r.week_id \
         JOIN report_data_collections c ON c.id = w.collection_id \
         JOIN amc_instances i ON i.id = c.instance_id \
         JOIN workflow_executions e ON e.id = r.execution_id \
         WHERE {filter} AND ((w.status = $2 AND r.execution_id = w.execution_id) \
              OR (w.status <> $2 AND r.execution_id = w.rerun_of))",
        relation.quoted(),
        names.join(", "),
        values.join(", "),
    )
}

/// The rows of one week (`$1` collection, `$2` week start).
pub(super) fn delete_week(relation: &Relation) -> String {
    format!(
        "DELETE FROM {} WHERE collection_id = $1 AND week_start = $2",
        relation.quoted()
    )
}

/// Every row (before a refill).
pub(super) fn delete_all(dialect: Dialect, relation: &Relation) -> String {
    match dialect {
        Dialect::Postgres => format!("TRUNCATE {}", relation.quoted()),
        Dialect::Sqlite => format!("DELETE FROM {}", relation.quoted()),
    }
}
