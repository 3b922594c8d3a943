//! Group commit of week transitions (the week state machine of docs/design.md, applied in batches).
//!
//! Each transition costs one durable commit when written alone, and the commit (a WAL flush on
//! both backends) is what bounds throughput. The DbWriter therefore hands over every transition
//! that queued up while the previous batch was committing, and `apply_transitions` applies them in
//! one transaction. Every transition keeps its own verdict: each `UPDATE` still names the state it
//! leaves and the lease it holds, so a refused transition changes nothing and is told apart after
//! the commit. A batch that fails as a whole (an SQL error aborts a Postgres transaction) is
//! replayed one transition per transaction, so one bad transition cannot fail its neighbours.

use chrono::{DateTime, Utc};

use super::fence::Fence;
use super::progress::{CompletedWeek, SubmissionIntent};
use super::transitions::{self, ROWS_PER_INSERT};
use super::{Store, StoreError};
use crate::ids::{CollectionId, ExecutionId, WeekId};

/// One write of the week state machine.
#[derive(Debug, Clone)]
pub enum Transition {
    /// `pending`/`failed` → `submitting`: the execution row is inserted before the AMC call.
    Intent(SubmissionIntent),
    /// `submitting` → `running`: the AMC id, stored the moment AMC answers.
    Submitted {
        collection_id: CollectionId,
        execution_id: ExecutionId,
        amc_execution_id: String,
        fence: Fence,
    },
    /// The latest AMC status of an execution (the week does not move).
    ExecutionStatus {
        execution_id: ExecutionId,
        amc_status: String,
        status_reason: Option<String>,
    },
    /// `running` (or a `failed`/`pending` week whose execution succeeded) → `downloading`.
    Downloading {
        collection_id: CollectionId,
        execution_id: ExecutionId,
        fence: Fence,
    },
    /// `downloading` → `completed` with the week's rows, count and checksum. A completed week
    /// never leaves that state, so it has no rows yet (were it otherwise, the rows' primary key
    /// would refuse the write rather than store a week twice).
    Completed(CompletedWeek),
    /// `submitting` → `pending` until `until`: AMC refused the create for a limit, so the
    /// attempt never happened and is not spent; the execution row is marked `refused`.
    Withdrawn {
        collection_id: CollectionId,
        week_id: WeekId,
        execution_id: ExecutionId,
        reason: String,
        until: DateTime<Utc>,
        fence: Fence,
    },
    /// Any open state → `failed`; `retry_at` says when it is tried again (None: for good).
    Failed {
        collection_id: CollectionId,
        week_id: WeekId,
        execution_id: Option<ExecutionId>,
        amc_status: Option<String>,
        reason: String,
        retry_at: Option<DateTime<Utc>>,
        fence: Fence,
    },
}

impl Transition {
    /// The collection whose rows the transition may lock (none for a bare execution status).
    pub fn collection_id(&self) -> Option<CollectionId> {
        match self {
            Transition::Intent(intent) => Some(intent.collection_id),
            Transition::Submitted { collection_id, .. }
            | Transition::Downloading { collection_id, .. }
            | Transition::Withdrawn { collection_id, .. }
            | Transition::Failed { collection_id, .. } => Some(*collection_id),
            Transition::Completed(week) => Some(week.collection_id),
            Transition::ExecutionStatus { .. } => None,
        }
    }

    /// The execution the transition concerns (a failure may have none).
    pub fn execution_id(&self) -> Option<ExecutionId> {
        match self {
            Transition::Intent(intent) => Some(intent.execution_id),
            Transition::Submitted { execution_id, .. }
            | Transition::ExecutionStatus { execution_id, .. }
            | Transition::Downloading { execution_id, .. }
            | Transition::Withdrawn { execution_id, .. } => Some(*execution_id),
            Transition::Completed(week) => Some(week.execution_id),
            Transition::Failed { execution_id, .. } => *execution_id,
        }
    }

    /// Rough cost in statements, so the writer can keep a batch (and its transaction) short.
    pub fn weight(&self) -> usize {
        match self {
            Transition::Completed(week) => 4 + week.rows.len() / ROWS_PER_INSERT,
            _ => 2,
        }
    }
}

impl Store {
    /// Applies the transitions in one transaction and returns each one's verdict, in order.
    /// A failed batch is replayed one transition per transaction.
    pub async fn apply_transitions(&self, batch: &[Transition]) -> Vec<Result<(), StoreError>> {
        let applied = match transitions::apply_all(self, batch).await {
            Ok(applied) => applied.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) if batch.len() == 1 => vec![Err(StoreError::Database(error))],
            Err(error) => {
                tracing::debug!(%error, size = batch.len(), "Batch failed; replaying it one by one.");
                let mut one_by_one = Vec::with_capacity(batch.len());
                for transition in batch {
                    let verdict = transitions::apply_all(self, std::slice::from_ref(transition))
                        .await
                        .map(|applied| applied.first().copied().unwrap_or(false))
                        .map_err(StoreError::Database);
                    one_by_one.push(verdict);
                }
                one_by_one
            }
        };
        let mut verdicts = Vec::with_capacity(batch.len());
        for (transition, applied) in batch.iter().zip(applied) {
            verdicts.push(match applied {
                Ok(true) => Ok(()),
                Ok(false) => Err(self.why_refused(transition).await),
                Err(error) => Err(error),
            });
        }
        verdicts
    }

    /// Applies one transition in its own transaction.
    pub async fn apply_transition(&self, transition: Transition) -> Result<(), StoreError> {
        let batch = [transition];
        let mut verdicts = self.apply_transitions(&batch).await;
        verdicts.pop().unwrap_or(Ok(()))
    }

    /// Says, after the fact, why a transition changed nothing.
    async fn why_refused(&self, transition: &Transition) -> StoreError {
        match transition {
            Transition::Intent(intent) => self.why_intent_refused(intent).await,
            Transition::Submitted {
                collection_id,
                execution_id,
                fence,
                ..
            } => {
                let what = format!("no submitting week holds execution {execution_id}");
                self.refused(*collection_id, fence, what).await
            }
            Transition::ExecutionStatus { execution_id, .. } => {
                StoreError::NotFound(format!("no execution {execution_id}"))
            }
            Transition::Downloading {
                collection_id,
                execution_id,
                fence,
            } => {
                let what = format!("no running week holds execution {execution_id}");
                self.refused(*collection_id, fence, what).await
            }
            Transition::Completed(week) => {
                let what = format!(
                    "week {} is not downloading execution {}",
                    week.week_id, week.execution_id
                );
                self.refused(week.collection_id, &week.fence, what).await
            }
            Transition::Withdrawn {
                collection_id,
                week_id,
                fence,
                ..
            } => {
                let what = format!("week {week_id} is no longer submitting");
                self.refused(*collection_id, fence, what).await
            }
            Transition::Failed {
                collection_id,
                week_id,
                fence,
                ..
            } => {
                let what = format!("week {week_id} cannot fail from its state");
                self.refused(*collection_id, fence, what).await
            }
        }
    }
}
