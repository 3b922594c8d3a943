//! `DbWriter`: the only actor that writes the database. Each `Record*` message is one week
//! transition; replies say whether it was stored.
//!
//! Transitions are group-committed: they join a queue, and a flush task applies everything that
//! queued up while the previous batch was committing in one transaction (`store::batch`), so a busy
//! collector pays one durable commit per batch instead of one per transition, and an idle one still
//! writes at once. Each reply still carries that transition's own verdict. Other writes (leases,
//! collection status) run alone. The actor counts writes queued or running so that a graceful
//! shutdown can wait until every acknowledged write has landed.

use std::cell::Cell;
use std::rc::Rc;

use actix::prelude::*;
use chrono::{DateTime, Utc};

pub use super::group_commit::GroupCommitStats;
use super::group_commit::Queue;
use crate::ids::{CollectionId, ExecutionId, WeekId};
use crate::store::{CompletedWeek, Fence, Store, StoreError, SubmissionIntent, Transition};

/// Errors of a write request.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the database writer is gone: {0}")]
    Mailbox(#[from] MailboxError),
}

impl WriteError {
    /// Transient: the database was unreachable or the writer restarting; try the same write again.
    pub fn is_transient(&self) -> bool {
        match self {
            WriteError::Store(error) => error.is_transient(),
            WriteError::Mailbox(_) => true,
        }
    }
}

/// Stores the submission intent: week → `submitting`, execution row inserted (before the POST).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RecordIntent {
    pub intent: SubmissionIntent,
}

/// Stores the AMC id the moment AMC answers (or the execution is adopted): week → `running`.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RecordSubmitted {
    pub collection_id: CollectionId,
    pub execution_id: ExecutionId,
    pub amc_execution_id: String,
    pub fence: Fence,
}

/// Stores the latest AMC status of an execution (the week does not move).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RecordExecutionStatus {
    pub execution_id: ExecutionId,
    pub amc_status: String,
    pub status_reason: Option<String>,
}

/// Week → `downloading` after AMC reported SUCCEEDED.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RecordDownloading {
    pub collection_id: CollectionId,
    pub execution_id: ExecutionId,
    pub fence: Fence,
}

/// Week → `completed` with its rows, count and checksum, in one transaction.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RecordCompleted {
    pub week: CompletedWeek,
}

/// Week → `failed` with a reason; `retry_at` says when it is tried again (None: for good).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RecordFailed {
    pub collection_id: CollectionId,
    pub week_id: WeekId,
    pub execution_id: Option<ExecutionId>,
    pub amc_status: Option<String>,
    pub reason: String,
    pub retry_at: Option<DateTime<Utc>>,
    pub fence: Fence,
}

/// Any week transition, group-committed like the others (the one message new kinds use; the
/// per-kind messages above predate it).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RecordTransition {
    pub transition: Transition,
}

/// Re-derives a collection's status from its weeks.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RefreshCollection {
    pub collection_id: CollectionId,
}

/// Marks a collection failed (its actor crashed past the restart limit).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct FailCollection {
    pub collection_id: CollectionId,
    pub reason: String,
}

/// Claims runnable collections for this process; replies with (collection, lease epoch) pairs.
#[derive(Message)]
#[rtype(result = "Result<Vec<(CollectionId, i64)>, StoreError>")]
pub struct ClaimCollections {
    pub owner: String,
    pub lease: std::time::Duration,
    pub limit: i64,
}

/// Renews this process's leases (and, with `process_lock`, its SQLite process lock); replies with
/// what it still holds, or `ProcessLockLost`.
#[derive(Message)]
#[rtype(result = "Result<Vec<CollectionId>, StoreError>")]
pub struct RenewLeases {
    pub owner: String,
    pub lease: std::time::Duration,
    pub process_lock: bool,
}

/// Gives leases back: some collections, or all (`None`) at shutdown.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct ReleaseLeases {
    pub owner: String,
    pub collection_ids: Option<Vec<CollectionId>>,
}

/// Stops the writer, which its `actix::Supervisor` restarts at once with the same address; writes
/// already running finish (they are plain futures), queued ones are handled after the restart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestartWriter;

/// What the group commit has done so far.
#[derive(Message)]
#[rtype(result = "GroupCommitStats")]
pub struct GetGroupCommitStats;

/// How many writes are running (graceful shutdown waits for zero).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct GetWritesInFlight;

/// Closes the writer's pool on the writer's own thread, once nothing writes any more (the last
/// step of a shutdown): a pool left open is dropped while its runtime is being torn down, and
/// sqlx then panics ("this functionality requires a Tokio context").
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseWriter;

/// The database writer actor.
pub struct DbWriter {
    store: Store,
    /// Writes queued or running; shared with their futures (single-threaded arbiter).
    in_flight: Rc<Cell<usize>>,
    queue: Queue,
}

impl DbWriter {
    pub fn new(store: Store) -> Self {
        Self {
            queue: Queue::new(&store),
            store,
            in_flight: Rc::new(Cell::new(0)),
        }
    }

    /// Runs one write alone, as a future that keeps the in-flight count.
    /// Runs a write that answers with a value, counted in the writes in flight (shutdown waits).
    fn counted<T: 'static>(
        &self,
        future: impl std::future::Future<Output = Result<T, StoreError>> + 'static,
    ) -> ResponseFuture<Result<T, StoreError>> {
        let counter = self.in_flight.clone();
        counter.set(counter.get() + 1);
        Box::pin(async move {
            let result = future.await;
            counter.set(counter.get().saturating_sub(1));
            result
        })
    }

    fn write<F, Fut>(&self, op: F) -> ResponseFuture<Result<(), StoreError>>
    where
        F: FnOnce(Store) -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>> + 'static,
    {
        let counter = self.in_flight.clone();
        counter.set(counter.get() + 1);
        let future = op(self.store.clone());
        Box::pin(async move {
            let result = future.await;
            counter.set(counter.get().saturating_sub(1));
            result
        })
    }

    /// Queues a transition for the next group commit.
    fn enqueue(&self, transition: Transition) -> ResponseFuture<Result<(), StoreError>> {
        Box::pin(self.queue.submit(transition, &self.store, &self.in_flight))
    }
}

impl Actor for DbWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        tracing::info!(
            actor = "db_writer",
            backend = self.store.backend_name(),
            "Database writer started."
        );
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(actor = "db_writer", "Database writer stopped.");
    }
}

impl actix::Supervised for DbWriter {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        tracing::warn!(
            actor = "db_writer",
            "Database writer restarted by its supervisor."
        );
    }
}

impl Handler<RestartWriter> for DbWriter {
    type Result = ();

    fn handle(&mut self, _msg: RestartWriter, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<RecordIntent> for DbWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: RecordIntent, _ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(Transition::Intent(msg.intent))
    }
}

impl Handler<RecordSubmitted> for DbWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: RecordSubmitted, _ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(Transition::Submitted {
            collection_id: msg.collection_id,
            execution_id: msg.execution_id,
            amc_execution_id: msg.amc_execution_id,
            fence: msg.fence,
        })
    }
}

impl Handler<RecordExecutionStatus> for DbWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: RecordExecutionStatus, _ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(Transition::ExecutionStatus {
            execution_id: msg.execution_id,
            amc_status: msg.amc_status,
            status_reason: msg.status_reason,
        })
    }
}

impl Handler<RecordDownloading> for DbWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: RecordDownloading, _ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(Transition::Downloading {
            collection_id: msg.collection_id,
            execution_id: msg.execution_id,
            fence: msg.fence,
        })
    }
}

impl Handler<RecordCompleted> for DbWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: RecordCompleted, _ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(Transition::Completed(msg.week))
    }
}

impl Handler<RecordFailed> for DbWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: RecordFailed, _ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(Transition::Failed {
            collection_id: msg.collection_id,
            week_id: msg.week_id,
            execution_id: msg.execution_id,
            amc_status: msg.amc_status,
            reason: msg.reason,
            retry_at: msg.retry_at,
            fence: msg.fence,
        })
    }
}

impl Handler<CloseWriter> for DbWriter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _msg: CloseWriter, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { store.close().await })
    }
}

impl Handler<RecordTransition> for DbWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: RecordTransition, _ctx: &mut Self::Context) -> Self::Result {
        self.enqueue(msg.transition)
    }
}

impl Handler<RefreshCollection> for DbWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: RefreshCollection, _ctx: &mut Self::Context) -> Self::Result {
        self.write(|store| async move {
            store.refresh_collection_status(msg.collection_id).await?;
            // A keep-fresh collection's actor finishes right after its newest weeks completed:
            // older weeks beyond `keep_weeks` lose their rows now, not at some later scan.
            store
                .drop_rows_beyond_keep_of(msg.collection_id, chrono::Utc::now())
                .await
                .map(|_| ())
        })
    }
}

impl Handler<FailCollection> for DbWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: FailCollection, _ctx: &mut Self::Context) -> Self::Result {
        self.write(
            |store| async move { store.fail_collection(msg.collection_id, &msg.reason).await },
        )
    }
}

impl Handler<ClaimCollections> for DbWriter {
    type Result = ResponseFuture<Result<Vec<(CollectionId, i64)>, StoreError>>;

    fn handle(&mut self, msg: ClaimCollections, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move {
            store
                .claim_collections(&msg.owner, msg.lease, msg.limit)
                .await
        })
    }
}

impl Handler<RenewLeases> for DbWriter {
    type Result = ResponseFuture<Result<Vec<CollectionId>, StoreError>>;

    fn handle(&mut self, msg: RenewLeases, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move {
            if msg.process_lock {
                store.renew_process_lock(&msg.owner, msg.lease).await?;
            }
            store.renew_leases(&msg.owner, msg.lease).await
        })
    }
}

impl Handler<ReleaseLeases> for DbWriter {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: ReleaseLeases, _ctx: &mut Self::Context) -> Self::Result {
        self.write(|store| async move {
            store
                .release_leases(&msg.owner, msg.collection_ids.as_deref())
                .await?;
            if msg.collection_ids.is_none() {
                store.unlock_process(&msg.owner).await?;
            }
            Ok(())
        })
    }
}

impl Handler<GetWritesInFlight> for DbWriter {
    type Result = usize;

    fn handle(&mut self, _msg: GetWritesInFlight, _ctx: &mut Self::Context) -> usize {
        self.in_flight.get()
    }
}

impl Handler<GetGroupCommitStats> for DbWriter {
    type Result = MessageResult<GetGroupCommitStats>;

    fn handle(&mut self, _msg: GetGroupCommitStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.queue.stats())
    }
}

/// Adds the weeks that became due to keep-fresh collections (one transaction per collection).
#[derive(Message)]
#[rtype(result = "Result<u64, StoreError>")]
pub struct AddDueWeeks {
    pub due: Vec<crate::store::DueWeeks>,
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Handler<AddDueWeeks> for DbWriter {
    type Result = ResponseFuture<Result<u64, StoreError>>;

    fn handle(&mut self, msg: AddDueWeeks, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        self.counted(async move {
            let mut added = 0;
            for due in &msg.due {
                let weeks = store.add_due_weeks(due, msg.now).await?;
                if weeks > 0 {
                    tracing::info!(collection_id = %due.collection_id, weeks, "Keep-fresh collection gained new weeks.");
                }
                added += weeks;
            }
            Ok(added)
        })
    }
}

/// Deletes the rows of completed weeks beyond their collection's `keep_weeks`.
#[derive(Message)]
#[rtype(result = "Result<u64, StoreError>")]
pub struct DropRowsBeyondKeep {
    pub week_ids: Vec<crate::ids::WeekId>,
    pub now: chrono::DateTime<chrono::Utc>,
}

impl Handler<DropRowsBeyondKeep> for DbWriter {
    type Result = ResponseFuture<Result<u64, StoreError>>;

    fn handle(&mut self, msg: DropRowsBeyondKeep, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        self.counted(async move { store.drop_rows_of(&msg.week_ids, msg.now).await })
    }
}
