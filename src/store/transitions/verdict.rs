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

use super::refused::{Refused, Verdict};
use super::{
    apply_all, completed, downloading, execution_status, failed, intent, submitted, withdrawn,
    Transition,
};
use crate::store::{Store, StoreError};

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
