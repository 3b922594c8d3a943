//! The group commit's SQL: one module per kind of week transition (docs/design.md), each holding its
//! statements, Postgres and SQLite side by side, beside the code that binds them.
//!
//! A kind's statement moves every transition of that kind in the batch at once: the transitions
//! travel as one JSON array parameter, read as rows `v` by `json_to_recordset` on Postgres and
//! `json_each` on SQLite (where the two dialects differ), and `RETURNING` tells which moved, so a
//! batch costs about a dozen round trips however many weeks it holds. Every statement names the
//! state it leaves and the lease it holds (`v.owner`, `v.epoch`), so a refused transition changes
//! nothing. Statuses are bound from `WeekStatus`/`CollectionStatus`/`ExecutionStatus`, never
//! spelled in the SQL.

mod completed;
mod downloading;
mod failed;
mod intent;
mod submitted;

pub(super) use completed::ROWS_PER_INSERT;

use std::collections::HashSet;

use chrono::Utc;
use serde_json::{json, Value};

use super::batch::Transition;
use super::fence::Fence;
use super::Store;
use crate::ids::{CollectionId, ExecutionId};

/// An open transaction on either backend.
pub(super) enum Tx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// Runs the same sqlx code on whichever transaction `tx` holds (`$conn` is the connection).
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::transitions::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::store::transitions::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
pub(super) use on_tx;

/// One statement in both dialects.
pub(super) struct Sql {
    pub postgres: &'static str,
    pub sqlite: &'static str,
}

impl Tx {
    pub(in crate::store) async fn begin(store: &Store) -> Result<Tx, sqlx::Error> {
        Ok(match store {
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Store::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
        })
    }

    pub(in crate::store) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(tx) => tx.commit().await,
            Tx::Sqlite(tx) => tx.commit().await,
        }
    }

    /// The statement in this transaction's dialect.
    pub(super) fn sql(&self, sql: &Sql) -> &'static str {
        match self {
            Tx::Postgres(_) => sql.postgres,
            Tx::Sqlite(_) => sql.sqlite,
        }
    }
}

/// A batch's transitions of one kind: their indexes in the batch, in order.
pub(super) struct Kind<'a> {
    batch: &'a [Transition],
    indexes: Vec<usize>,
}

impl<'a> Kind<'a> {
    fn of(batch: &'a [Transition], is: impl Fn(&Transition) -> bool) -> Self {
        let indexes = (0..batch.len()).filter(|&i| is(&batch[i])).collect();
        Self { batch, indexes }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.indexes.is_empty()
    }

    /// The transitions with their index in the batch.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &'a Transition)> + '_ {
        self.indexes.iter().map(|&i| (i, &self.batch[i]))
    }

    /// The statements' JSON parameter: one object per transition, built by `row`.
    pub(super) fn json(&self, row: impl Fn(usize, &'a Transition) -> Option<Value>) -> String {
        let rows: Vec<Value> = self.iter().filter_map(|(i, t)| row(i, t)).collect();
        Value::from(rows).to_string()
    }

    /// Marks as applied the transitions whose execution a statement moved, and returns them.
    pub(super) fn mark_moved(
        &self,
        moved: &[ExecutionId],
        applied: &mut [bool],
    ) -> Vec<&'a Transition> {
        let mut marked = Vec::new();
        for (i, transition) in self.iter() {
            applied[i] = transition
                .execution_id()
                .is_some_and(|id| moved.contains(&id));
            if applied[i] {
                marked.push(transition);
            }
        }
        marked
    }
}

/// A JSON row carrying the lease it is written under (`v.owner`, `v.epoch` in the statements).
pub(super) fn fenced(fence: &Fence, mut row: Value) -> Value {
    row["owner"] = json!(fence.owner);
    row["epoch"] = json!(fence.epoch);
    row
}

/// A JSON array of `{"id": …}` objects.
pub(super) fn id_list<T: serde::Serialize>(ids: impl IntoIterator<Item = T>) -> String {
    let ids: Vec<Value> = ids.into_iter().map(|id| json!({ "id": id })).collect();
    Value::from(ids).to_string()
}

/// Distinct collections, in order.
pub(super) fn distinct(ids: impl IntoIterator<Item = CollectionId>) -> Vec<CollectionId> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

/// Applies the whole batch in one transaction, kind by kind; `true` where the transition took
/// effect.
pub(super) async fn apply_all(
    store: &Store,
    batch: &[Transition],
) -> Result<Vec<bool>, sqlx::Error> {
    let now = Utc::now();
    let mut applied = vec![false; batch.len()];
    let mut tx = Tx::begin(store).await?;
    let intents = Kind::of(batch, |t| matches!(t, Transition::Intent(_)));
    intent::apply(&mut tx, &intents, now, &mut applied).await?;
    let submitted = Kind::of(batch, |t| matches!(t, Transition::Submitted { .. }));
    submitted::apply(&mut tx, &submitted, now, &mut applied).await?;
    let statuses = Kind::of(batch, |t| matches!(t, Transition::ExecutionStatus { .. }));
    submitted::apply_statuses(&mut tx, &statuses, now, &mut applied).await?;
    let downloading = Kind::of(batch, |t| matches!(t, Transition::Downloading { .. }));
    downloading::apply(&mut tx, &downloading, now, &mut applied).await?;
    let completed = Kind::of(batch, |t| matches!(t, Transition::Completed(_)));
    completed::apply(&mut tx, &completed, now, &mut applied).await?;
    let failed = Kind::of(batch, |t| {
        matches!(t, Transition::Failed { .. } | Transition::Withdrawn { .. })
    });
    failed::apply(&mut tx, &failed, now, &mut applied).await?;
    tx.commit().await?;
    Ok(applied)
}
