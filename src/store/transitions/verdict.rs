//! Group commit of week transitions, and each transition's verdict.
//!
//! Each transition costs one durable commit when written alone, and the commit (a WAL flush on
//! both backends) is what bounds throughput. The DbWriter therefore hands over every transition
//! that queued up while the previous batch was committing, and `apply_transitions` applies them in
//! one transaction. Every transition keeps its own verdict: each `UPDATE` still names the state it
//! leaves and the lease it holds, so a refused transition changes nothing and is told apart after
//! the commit (`Refused`, read by the kind's own `why_refused`). A batch that fails as a whole (an
//! SQL error aborts a Postgres transaction) is replayed one transition per transaction, so one bad
//! transition cannot fail its neighbours.

use chrono::{DateTime, Utc};

use super::{
    apply_all, completed, downloading, execution_status, failed, intent, submitted, withdrawn,
    Transition,
};
use crate::ids::CollectionId;
use crate::store::fence::Fence;
use crate::store::{with_pool, Store, StoreError};

/// Why the state machine did not apply a transition: an expected answer, not a failure of the
/// database. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Another process took the collection over; this writer must stop.
    #[error("lease of collection {collection_id} lost")]
    LeaseLost { collection_id: CollectionId },
    /// The week (or its collection) is no longer in a state the transition leaves: it moved on
    /// (cancelled, paused, or another attempt), or the message is a repeat.
    #[error("{0}")]
    Stale(String),
    /// The instance already has its maximum of executions in flight (over every process).
    #[error("instance has {in_flight} executions in flight")]
    SlotsFull { in_flight: i64 },
    /// The instance used its daily limit of executions (over every process); the next create is
    /// allowed at `until`.
    #[error("instance reached its limit of {limit} executions per window; next at {until}")]
    QuotaFull { limit: i64, until: DateTime<Utc> },
}

/// What became of one transition the database took part in: applied, or refused.
pub type Verdict = Result<(), Refused>;

impl Store {
    /// Applies the transitions in one transaction and returns each one's verdict, in order (an
    /// `Err` only when the database failed). A failed batch is replayed one transition per
    /// transaction.
    pub async fn apply_transitions(
        &self,
        batch: &[Transition],
    ) -> Vec<Result<Verdict, StoreError>> {
        let applied = match apply_all(self, batch).await {
            Ok(applied) => applied.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) if batch.len() == 1 => vec![Err(StoreError::Database(error))],
            Err(error) => {
                tracing::debug!(%error, size = batch.len(), "Batch failed; replaying it one by one.");
                let mut one_by_one = Vec::with_capacity(batch.len());
                for transition in batch {
                    let verdict = apply_all(self, std::slice::from_ref(transition))
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
                Ok(true) => Ok(Ok(())),
                Ok(false) => self.why_refused(transition).await.map(Err),
                Err(error) => Err(error),
            });
        }
        verdicts
    }

    /// Applies one transition in its own transaction.
    pub async fn apply_transition(&self, transition: Transition) -> Result<Verdict, StoreError> {
        let batch = [transition];
        let mut verdicts = self.apply_transitions(&batch).await;
        verdicts.pop().unwrap_or(Ok(Ok(())))
    }

    /// Says, after the fact, why a transition changed nothing (each kind tells its own reasons).
    async fn why_refused(&self, transition: &Transition) -> Result<Refused, StoreError> {
        match transition {
            Transition::Intent(p) => intent::why_refused(self, p).await,
            Transition::Submitted(p) => Ok(submitted::why_refused(self, p).await),
            Transition::ExecutionStatus(p) => Ok(execution_status::why_refused(p)),
            Transition::Downloading(p) => Ok(downloading::why_refused(self, p).await),
            Transition::Completed(p) => Ok(completed::why_refused(self, p).await),
            Transition::Withdrawn(p) => Ok(withdrawn::why_refused(self, p).await),
            Transition::Failed(p) => Ok(failed::why_refused(self, p).await),
        }
    }
}

/// Whether the fence names a lease the collection no longer has.
pub(super) async fn lease_lost(store: &Store, collection_id: CollectionId, fence: &Fence) -> bool {
    let sql = "SELECT COUNT(*) FROM report_data_collections \
               WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3";
    let held: Result<i64, sqlx::Error> = with_pool!(store, |pool| sqlx::query_scalar(sql)
        .bind(collection_id)
        .bind(&fence.owner)
        .bind(fence.epoch)
        .fetch_one(pool)
        .await);
    matches!(held, Ok(0))
}

/// A refusal of a transition that only the state or the lease can refuse: `LeaseLost` when the
/// fence no longer holds, otherwise `Stale` (`what`).
pub(super) async fn stale_or_lease_lost(
    store: &Store,
    collection_id: CollectionId,
    fence: &Fence,
    what: String,
) -> Refused {
    if lease_lost(store, collection_id, fence).await {
        Refused::LeaseLost { collection_id }
    } else {
        Refused::Stale(what)
    }
}
