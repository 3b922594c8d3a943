//! Keeping relations current in the transaction that completes weeks (the DbWriter's group
//! commit): the completed weeks' rows are inserted into their workflow's relation; a week whose
//! values need a new column or a wider type first reshapes the relation and refills it from the
//! stored rows, so no reader ever sees a value that does not fit its column, nor a week twice.
//! Workflows are handled in id order and their `result_relations` row is locked first, so two
//! overlapping group commits take the same locks in the same order.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::sql::{self, Dialect, Rows};
use super::{Relation, RelationRow, RELATION_COLUMNS};
use crate::ids::{CollectionId, WeekId, WorkflowId};
use crate::results_tables::{relation_name, ColumnType, TypeObserver};
use crate::status::WeekStatus;
use crate::store::tx::{id_list, on_tx, Tx};
use crate::store::CompletedWeek;

/// A completed week as its relation needs it.
#[derive(sqlx::FromRow)]
struct WeekOfWorkflow {
    id: WeekId,
    workflow_id: WorkflowId,
    workflow_name: String,
    collection_id: CollectionId,
    week_start_date: NaiveDate,
    rerun: bool,
}

const WEEKS_OF: [&str; 2] = [
    "SELECT w.id, c.workflow_id, f.name AS workflow_name, w.collection_id, w.week_start_date, \
     (w.rerun_of IS NOT NULL) AS rerun FROM report_data_weeks w \
     JOIN report_data_collections c ON c.id = w.collection_id \
     JOIN workflows f ON f.id = c.workflow_id \
     WHERE w.id IN (SELECT v.id FROM json_to_recordset(CAST($1 AS json)) AS v(id uuid))",
    "SELECT w.id, c.workflow_id, f.name AS workflow_name, w.collection_id, w.week_start_date, \
     (w.rerun_of IS NOT NULL) AS rerun FROM report_data_weeks w \
     JOIN report_data_collections c ON c.id = w.collection_id \
     JOIN workflows f ON f.id = c.workflow_id \
     WHERE w.id IN (SELECT json_extract(value, '$.id') FROM json_each($1))",
];

/// The recorded relations of the workflows in the JSON id list `$1`, share-locked in id order (the
/// two overlapping group commits insert side by side; only a reshape takes the row for update),
/// with whether their table exists: one round trip for the whole batch.
const LOCKED_RELATIONS: [&str; 2] = [
    "SELECT workflow_id, relation_schema, relation_name, columns, \
     to_regclass(quote_ident(relation_schema) || '.' || quote_ident(relation_name)) IS NOT NULL \
     AS present FROM result_relations \
     WHERE workflow_id IN (SELECT v.id FROM json_to_recordset(CAST($1 AS json)) AS v(id uuid)) \
     ORDER BY workflow_id FOR SHARE",
    "SELECT workflow_id, relation_schema, relation_name, columns, \
     EXISTS (SELECT 1 FROM sqlite_master m WHERE m.type = 'table' \
             AND m.name = 'amc_results_' || relation_name) AS present FROM result_relations \
     WHERE workflow_id IN (SELECT json_extract(value, '$.id') FROM json_each($1))",
];

#[derive(sqlx::FromRow)]
struct LockedRelation {
    #[sqlx(flatten)]
    row: RelationRow,
    present: bool,
}

pub(in crate::store) fn dialect(tx: &Tx) -> Dialect {
    match tx {
        Tx::Postgres(_) => Dialect::Postgres,
        Tx::Sqlite(_) => Dialect::Sqlite,
    }
}

/// Puts the rows of `weeks` (just marked completed on `tx`) into their workflows' relations.
pub(in crate::store) async fn fill_completed(
    tx: &mut Tx,
    weeks: &[&CompletedWeek],
) -> Result<(), sqlx::Error> {
    let list = id_list(weeks.iter().map(|week| week.week_id));
    let sql = WEEKS_OF[usize::from(dialect(tx) == Dialect::Sqlite)];
    let found: Vec<WeekOfWorkflow> = on_tx!(tx, |conn| sqlx::query_as(sql)
        .bind(&list)
        .fetch_all(conn)
        .await)?;
    let mut by_workflow: BTreeMap<String, Vec<WeekOfWorkflow>> = BTreeMap::new();
    for week in found {
        by_workflow
            .entry(week.workflow_id.to_string())
            .or_default()
            .push(week);
    }
    let sqlite = dialect(tx) == Dialect::Sqlite;
    let workflows = id_list(by_workflow.values().map(|group| group[0].workflow_id));
    let sql = LOCKED_RELATIONS[usize::from(sqlite)];
    let locked: Vec<LockedRelation> = on_tx!(tx, |conn| sqlx::query_as(sql)
        .bind(&workflows)
        .fetch_all(conn)
        .await)?;
    let mut recorded: BTreeMap<String, (Relation, bool)> = locked
        .into_iter()
        .map(|l| {
            let relation = l.row.into_relation(sqlite);
            (relation.workflow_id.to_string(), (relation, l.present))
        })
        .collect();
    for (workflow, group) in &by_workflow {
        let given: Vec<&CompletedWeek> = weeks
            .iter()
            .copied()
            .filter(|w| group.iter().any(|g| g.id == w.week_id))
            .collect();
        let (relation, exists) = match recorded.remove(workflow) {
            Some(found) => found,
            // The workflow's first completed week: its relation is recorded now.
            None => {
                let first = &group[0];
                let (relation, _) =
                    load_or_create(tx, first.workflow_id, &first.workflow_name).await?;
                let exists = table_exists(tx, &relation).await?;
                (relation, exists)
            }
        };
        fill_workflow(tx, group, &given, relation, exists).await?;
    }
    Ok(())
}

async fn fill_workflow(
    tx: &mut Tx,
    group: &[WeekOfWorkflow],
    given: &[&CompletedWeek],
    mut relation: Relation,
    exists: bool,
) -> Result<(), sqlx::Error> {
    let needs_reshape = given
        .iter()
        .any(|week| relation.clone().merge(&week.columns, &types_of(week)));
    if needs_reshape || !exists {
        // A reshape takes the row for update, then merges into what is recorded by then.
        let first = &group[0];
        (relation, _) = load_or_create(tx, first.workflow_id, &first.workflow_name).await?;
    }
    let before = relation.columns.clone();
    let mut changed = false;
    for week in given {
        changed |= relation.merge(&week.columns, &types_of(week));
    }
    if !exists || changed {
        let previous = exists.then_some(before.as_slice());
        reshape_and_refill(tx, &relation, previous).await?;
        save_columns(tx, &relation).await?;
        return Ok(());
    }
    for week in group.iter().filter(|week| week.rerun) {
        let sql = sql::delete_week(&relation);
        on_tx!(tx, |conn| sqlx::query(&sql)
            .bind(week.collection_id)
            .bind(week.week_start_date)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
    }
    let ids = id_list(group.iter().map(|week| week.id));
    insert(tx, &relation, Rows::Weeks, &ids).await
}

/// The week's column types, from the ingest (a week that reports none for its columns observed
/// no value: every column gets the type of no values).
fn types_of(week: &CompletedWeek) -> Vec<ColumnType> {
    if week.column_types.len() == week.columns.len() {
        return week.column_types.clone();
    }
    TypeObserver::default().finish(week.columns.len())
}

/// The workflow's relation, locked for this transaction; recorded (with a new unique name) when
/// it has none yet. `true` when it was recorded now.
pub(super) async fn load_or_create(
    tx: &mut Tx,
    workflow_id: WorkflowId,
    workflow_name: &str,
) -> Result<(Relation, bool), sqlx::Error> {
    let sqlite = dialect(tx) == Dialect::Sqlite;
    let lock = if sqlite { "" } else { " FOR UPDATE" };
    let select = format!("{RELATION_COLUMNS} WHERE workflow_id = $1{lock}");
    let row: Option<RelationRow> = on_tx!(tx, |conn| sqlx::query_as(&select)
        .bind(workflow_id)
        .fetch_optional(conn)
        .await)?;
    if let Some(row) = row {
        return Ok((row.into_relation(sqlite), false));
    }
    let taken: Vec<String> = on_tx!(tx, |conn| sqlx::query_scalar(
        "SELECT relation_name FROM result_relations"
    )
    .fetch_all(conn)
    .await)?;
    let schema: String = on_tx!(tx, |conn| sqlx::query_scalar(
        "SELECT relation_schema FROM result_options WHERE id = 1"
    )
    .fetch_one(conn)
    .await)?;
    let name = relation_name(workflow_name, &taken.into_iter().collect());
    let now = chrono::Utc::now();
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO result_relations (workflow_id, relation_schema, relation_name, columns, \
         updated_at) VALUES ($1, $2, $3, '[]', $4) ON CONFLICT (workflow_id) DO NOTHING"
    )
    .bind(workflow_id)
    .bind(&schema)
    .bind(&name)
    .bind(now)
    .execute(conn)
    .await
    .map(|done| done.rows_affected()))?;
    let row: RelationRow = on_tx!(tx, |conn| sqlx::query_as(&select)
        .bind(workflow_id)
        .fetch_one(conn)
        .await)?;
    Ok((row.into_relation(sqlite), true))
}

pub(super) async fn table_exists(tx: &mut Tx, relation: &Relation) -> Result<bool, sqlx::Error> {
    Ok(match tx {
        Tx::Postgres(tx) => {
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(relation.quoted())
                .fetch_one(&mut **tx)
                .await?
        }
        Tx::Sqlite(tx) => {
            sqlx::query_scalar(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = $1",
            )
            .bind(format!("amc_results_{}", relation.name))
            .fetch_one(&mut **tx)
            .await?
        }
    })
}

/// Gives the relation `relation`'s columns (altering it from `previous` on Postgres, so grants
/// and policies stay; recreating it on SQLite, which cannot change a column's type) and fills it
/// with every visible row of its workflow.
pub(super) async fn reshape_and_refill(
    tx: &mut Tx,
    relation: &Relation,
    previous: Option<&[crate::store::typed::RelationColumn]>,
) -> Result<(), sqlx::Error> {
    let dialect = dialect(tx);
    let statements = match (dialect, previous) {
        (Dialect::Postgres, Some(before)) => {
            let mut statements = sql::alter(before, relation);
            statements.push(sql::delete_all(dialect, relation));
            statements
        }
        (Dialect::Postgres, None) => {
            let mut statements = vec![format!("DROP TABLE IF EXISTS {}", relation.quoted())];
            statements.extend(sql::create(dialect, relation));
            statements.extend(revoke_api_roles(tx, relation).await?);
            statements
        }
        (Dialect::Sqlite, _) => {
            let mut statements = vec![format!("DROP TABLE IF EXISTS {}", relation.quoted())];
            statements.extend(sql::create(dialect, relation));
            statements
        }
    };
    for statement in &statements {
        on_tx!(tx, |conn| sqlx::query(statement)
            .persistent(false)
            .execute(conn)
            .await
            .map(|done| done.rows_affected()))?;
    }
    insert_workflow(tx, relation).await
}

/// Supabase's API roles get nothing on a relation, whatever default privileges say.
async fn revoke_api_roles(tx: &mut Tx, relation: &Relation) -> Result<Vec<String>, sqlx::Error> {
    let roles: Vec<String> = on_tx!(tx, |conn| sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname IN ('anon', 'authenticated')"
    )
    .fetch_all(conn)
    .await)?;
    Ok(roles
        .iter()
        .filter(|role| matches!(role.as_str(), "anon" | "authenticated"))
        .map(|role| format!("REVOKE ALL ON {} FROM \"{role}\"", relation.quoted()))
        .collect())
}

/// The JSON keys of the relation's columns, bound in column order by its insert statements.
fn key_parameters(dialect: sql::Dialect, relation: &Relation) -> Vec<String> {
    relation
        .columns
        .iter()
        .map(|c| sql::key_parameter(dialect, c))
        .collect()
}

/// Inserts every visible row of the relation's workflow.
async fn insert_workflow(tx: &mut Tx, relation: &Relation) -> Result<(), sqlx::Error> {
    let workflow = relation.workflow_id;
    let dialect = dialect(tx);
    let sql = sql::insert(dialect, relation, Rows::Workflow);
    let keys = key_parameters(dialect, relation);
    utc_session(tx, relation).await?;
    on_tx!(tx, |conn| {
        let mut query = sqlx::query(&sql)
            .persistent(false)
            .bind(workflow)
            .bind(WeekStatus::Completed.as_str());
        for key in &keys {
            query = query.bind(key);
        }
        query.execute(conn).await.map(|done| done.rows_affected())
    })?;
    Ok(())
}

/// Inserts the visible rows of the weeks in the JSON id list `ids`.
pub(super) async fn insert(
    tx: &mut Tx,
    relation: &Relation,
    rows: Rows,
    ids: &str,
) -> Result<(), sqlx::Error> {
    let dialect = dialect(tx);
    let sql = sql::insert(dialect, relation, rows);
    let keys = key_parameters(dialect, relation);
    utc_session(tx, relation).await?;
    on_tx!(tx, |conn| {
        let mut query = sqlx::query(&sql)
            .bind(ids)
            .bind(WeekStatus::Completed.as_str());
        for key in &keys {
            query = query.bind(key);
        }
        query.execute(conn).await.map(|done| done.rows_affected())
    })?;
    Ok(())
}

/// A date-time without a zone is UTC (Postgres would take the session's zone).
async fn utc_session(tx: &mut Tx, relation: &Relation) -> Result<(), sqlx::Error> {
    let timestamps = relation
        .columns
        .iter()
        .any(|c| c.column_type == ColumnType::Timestamptz);
    if let (Tx::Postgres(tx), true) = (tx, timestamps) {
        sqlx::query("SET LOCAL TimeZone TO 'UTC'")
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn save_columns(tx: &mut Tx, relation: &Relation) -> Result<(), sqlx::Error> {
    let columns = serde_json::to_string(&relation.columns).unwrap_or_else(|_| "[]".into());
    let sql = match dialect(tx) {
        Dialect::Postgres => {
            "UPDATE result_relations SET columns = CAST($2 AS jsonb), updated_at = $3 \
             WHERE workflow_id = $1"
        }
        Dialect::Sqlite => {
            "UPDATE result_relations SET columns = $2, updated_at = $3 WHERE workflow_id = $1"
        }
    };
    let now = chrono::Utc::now();
    on_tx!(tx, |conn| sqlx::query(sql)
        .bind(relation.workflow_id)
        .bind(&columns)
        .bind(now)
        .execute(conn)
        .await
        .map(|done| done.rows_affected()))?;
    Ok(())
}
