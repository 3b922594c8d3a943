//! The week state machine (docs/design.md, section 3), in one folder: `Transition` (every write of
//! the machine), one module per kind holding its payload, its statements (Postgres and SQLite side
//! by side), the states it leaves and enters (`FROM`/`TO`, bound into its guard and checked against
//! the diagram in docs/design.md by `edges_test`) and why it may be refused; `verdict` applies a
//! batch and tells each transition's outcome: applied, `Refused` (an expected answer of the state
//! machine), or a `StoreError` (the database failed).
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
#[cfg(test)]
mod edges_test;
mod execution_status;
mod failed;
mod intent;
mod refused;
mod submitted;
mod verdict;
mod withdrawn;

pub use completed::CompletedWeek;
pub use downloading::Downloading;
pub use execution_status::StatusReport;
pub use failed::Failed;
pub use intent::SubmissionIntent;
pub use refused::{Refused, Verdict};
pub use submitted::Submitted;
pub use withdrawn::Withdrawn;

use std::collections::HashSet;

use chrono::Utc;
use serde_json::{json, Value};

use super::fence::Fence;
pub(super) use super::tx::{id_list, on_tx, Sql, Tx};
use super::Store;
use crate::ids::{CollectionId, ExecutionId};
use crate::status::WeekStatus;

/// One write of the week state machine; each kind's payload, statements and refusal are in the
/// module of the same name.
#[derive(Debug, Clone)]
pub enum Transition {
    /// `pending`/`failed` → `submitting`: the execution row is inserted before the AMC call.
    Intent(SubmissionIntent),
    /// `submitting` → `running`: the AMC id, stored the moment AMC answers.
    Submitted(Submitted),
    /// The latest AMC status of an execution (the week does not move).
    ExecutionStatus(StatusReport),
    /// `running` (or a `failed`/`pending` week whose execution succeeded) → `downloading`.
    Downloading(Downloading),
    /// `downloading` → `completed` with the week's count and checksum (its rows were staged).
    Completed(CompletedWeek),
    /// `submitting` → `pending` until `until`: AMC refused the create for a limit.
    Withdrawn(Withdrawn),
    /// Any open state → `failed`; `retry_at` says when it is tried again (None: for good).
    Failed(Failed),
}

impl Transition {
    /// The collection whose rows the transition may lock (none for a bare execution status).
    pub fn collection_id(&self) -> Option<CollectionId> {
        match self {
            Transition::Intent(intent) => Some(intent.collection_id),
            Transition::Submitted(submitted) => Some(submitted.collection_id),
            Transition::ExecutionStatus(_) => None,
            Transition::Downloading(downloading) => Some(downloading.collection_id),
            Transition::Completed(week) => Some(week.collection_id),
            Transition::Withdrawn(withdrawn) => Some(withdrawn.collection_id),
            Transition::Failed(failed) => Some(failed.collection_id),
        }
    }

    /// The execution the transition concerns (a failure may have none).
    pub fn execution_id(&self) -> Option<ExecutionId> {
        match self {
            Transition::Intent(intent) => Some(intent.execution_id),
            Transition::Submitted(submitted) => Some(submitted.execution_id),
            Transition::ExecutionStatus(report) => Some(report.execution_id),
            Transition::Downloading(downloading) => Some(downloading.execution_id),
            Transition::Completed(week) => Some(week.execution_id),
            Transition::Withdrawn(withdrawn) => Some(withdrawn.execution_id),
            Transition::Failed(failed) => failed.execution_id,
        }
    }

    /// Rough cost in statements, so the writer can keep a batch (and its transaction) short.
    pub fn weight(&self) -> usize {
        match self {
            Transition::Completed(_) => 4,
            Transition::Intent(_)
            | Transition::Submitted(_)
            | Transition::ExecutionStatus(_)
            | Transition::Downloading(_)
            | Transition::Withdrawn(_)
            | Transition::Failed(_) => 2,
        }
    }
}

/// A week edge: the states a kind's guard accepts (`WHERE status IN (...)`) and the one it
/// writes. Each kind's module declares its own and binds them into its statements.
#[derive(Debug, Clone, Copy)]
pub struct Edge {
    /// The label of the edge in docs/design.md's diagram.
    pub label: &'static str,
    pub from: &'static [WeekStatus],
    pub to: WeekStatus,
}

/// Every edge the daemon's transitions perform (the operators' edges are the controls').
pub const EDGES: [Edge; 7] = [
    intent::EDGE,
    submitted::EDGE,
    withdrawn::EDGE,
    downloading::EDGE,
    completed::EDGE,
    failed::EDGE,
    failed::RERUN_RESTORED,
];

/// A batch's transitions of one kind, each with its index in the batch, in batch order.
pub(super) type Of<'a, P> = [(usize, &'a P)];

/// The statements' JSON parameter: one object per transition, built by `row`.
pub(super) fn json_rows<P>(of: &Of<'_, P>, row: impl Fn(usize, &P) -> Value) -> String {
    let rows: Vec<Value> = of.iter().map(|&(i, p)| row(i, p)).collect();
    Value::from(rows).to_string()
}

/// Marks as applied the transitions whose execution (`execution_id`) a statement moved, and
/// returns them.
pub(super) fn mark_moved<'a, P>(
    of: &Of<'a, P>,
    execution_id: impl Fn(&P) -> ExecutionId,
    moved: &[ExecutionId],
    applied: &mut [bool],
) -> Vec<&'a P> {
    let mut marked = Vec::new();
    for &(i, p) in of {
        applied[i] = moved.contains(&execution_id(p));
        if applied[i] {
            marked.push(p);
        }
    }
    marked
}

/// A JSON row carrying the lease it is written under (`v.owner`, `v.epoch` in the statements).
pub(super) fn fenced(fence: &Fence, mut row: Value) -> Value {
    row["owner"] = json!(fence.owner);
    row["epoch"] = json!(fence.epoch);
    row
}

/// Distinct collections, in order.
pub(super) fn distinct(ids: impl IntoIterator<Item = CollectionId>) -> Vec<CollectionId> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

/// A batch split by kind: one exhaustive `match`, so a new kind does not compile until it is
/// applied here.
#[derive(Default)]
struct Split<'a> {
    intents: Vec<(usize, &'a SubmissionIntent)>,
    submitted: Vec<(usize, &'a Submitted)>,
    statuses: Vec<(usize, &'a StatusReport)>,
    downloading: Vec<(usize, &'a Downloading)>,
    completed: Vec<(usize, &'a CompletedWeek)>,
    /// Failures and withdrawals, one statement each, in batch order.
    ends: Vec<(usize, End<'a>)>,
}

/// A transition that ends an attempt.
#[derive(Clone, Copy)]
enum End<'a> {
    Failed(&'a Failed),
    Withdrawn(&'a Withdrawn),
}

impl<'a> Split<'a> {
    fn of(batch: &'a [Transition]) -> Self {
        let mut split = Split::default();
        for (i, transition) in batch.iter().enumerate() {
            match transition {
                Transition::Intent(p) => split.intents.push((i, p)),
                Transition::Submitted(p) => split.submitted.push((i, p)),
                Transition::ExecutionStatus(p) => split.statuses.push((i, p)),
                Transition::Downloading(p) => split.downloading.push((i, p)),
                Transition::Completed(p) => split.completed.push((i, p)),
                Transition::Withdrawn(p) => split.ends.push((i, End::Withdrawn(p))),
                Transition::Failed(p) => split.ends.push((i, End::Failed(p))),
            }
        }
        split
    }
}

/// Applies the whole batch in one transaction, kind by kind; `true` where the transition took
/// effect.
pub(super) async fn apply_all(
    store: &Store,
    batch: &[Transition],
) -> Result<Vec<bool>, sqlx::Error> {
    let now = Utc::now();
    let mut applied = vec![false; batch.len()];
    let split = Split::of(batch);
    let mut tx = Tx::begin(store).await?;
    intent::apply(&mut tx, &split.intents, now, &mut applied).await?;
    submitted::apply(&mut tx, &split.submitted, now, &mut applied).await?;
    execution_status::apply(&mut tx, &split.statuses, now, &mut applied).await?;
    downloading::apply(&mut tx, &split.downloading, now, &mut applied).await?;
    completed::apply(&mut tx, &split.completed, now, &mut applied).await?;
    for (i, end) in split.ends {
        applied[i] = match end {
            End::Failed(failed) => failed::apply(&mut tx, failed, now).await?,
            End::Withdrawn(withdrawn) => withdrawn::apply(&mut tx, withdrawn, now).await?,
        };
    }
    tx.commit().await?;
    Ok(applied)
}
