//! `DbWriter`: the only actor that writes the database. A `RecordTransition` message carries one
//! week transition (`store::Transition`); its reply says whether it was stored.
//!
//! Transitions are group-committed: they join a queue, and a flush task applies everything that
//! queued up while the previous batch was committing in one transaction (`store::transitions`), so a busy
//! collector pays one durable commit per batch instead of one per transition, and an idle one still
//! writes at once. Each reply still carries that transition's own verdict. Other writes (leases,
//! collection status) run alone. The actor counts writes queued or running (`GetWritesInFlight`,
//! for inspection), and each of them holds a guard of the daemon's task tracker, so that a
//! graceful shutdown waits until every acknowledged write has landed.

use std::cell::Cell;
use std::rc::Rc;

use actix::prelude::*;

pub use super::group_commit::GroupCommitStats;
use super::group_commit::Queue;
use super::tracker::Tracker;
use crate::ids::CollectionId;
use crate::store::{Store, StoreError, Transition, Verdict};

/// A week transition (`store::Transition`), group-committed with the others queued meanwhile;
/// the reply is this transition's own verdict (applied, or `Refused` by the state machine), or
/// the database's error. The only way the actors write the week state machine.
#[derive(Message)]
#[rtype(result = "Result<Verdict, StoreError>")]
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

/// Holds a collection AMC will never run (`store::held`); replies whether it was held now.
#[derive(Message)]
#[rtype(result = "Result<bool, StoreError>")]
pub struct HoldCollection {
    pub collection_id: CollectionId,
    pub reason: String,
    pub fence: crate::store::Fence,
}

/// Claims runnable collections for this process; replies with (collection, lease epoch) pairs.
#[derive(Message)]
#[rtype(result = "Result<Vec<(CollectionId, i64)>, StoreError>")]
pub struct ClaimCollections {
    pub owner: String,
    pub lease: std::time::Duration,
    pub limit: i64,
}

/// Claims, beyond this process's cap, collections no live process holds that have weeks in flight
/// (`Store::claim_abandoned_in_flight`); replies with (collection, lease epoch) pairs.
#[derive(Message)]
#[rtype(result = "Result<Vec<(CollectionId, i64)>, StoreError>")]
pub struct ClaimAbandonedInFlight {
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
/// Only tests restart the writer on purpose (`test-support`).
#[cfg(any(test, feature = "test-support"))]
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
    /// The daemon's task tracker: every write holds one of its guards until it has landed.
    tracker: Tracker,
}

impl DbWriter {
    pub fn new(store: Store, tracker: Tracker) -> Self {
        Self {
            queue: Queue::new(&store, tracker.clone()),
            store,
            in_flight: Rc::new(Cell::new(0)),
            tracker,
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
        let running = self.tracker.guard("database write");
        Box::pin(async move {
            let _running = running;
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
        self.counted(op(self.store.clone()))
    }

    /// Queues a transition for the next group commit.
    fn enqueue(&self, transition: Transition) -> ResponseFuture<Result<Verdict, StoreError>> {
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

#[cfg(any(test, feature = "test-support"))]
impl Handler<RestartWriter> for DbWriter {
    type Result = ();

    fn handle(&mut self, _msg: RestartWriter, ctx: &mut Self::Context) {
        ctx.stop();
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
    type Result = ResponseFuture<Result<Verdict, StoreError>>;

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

impl Handler<HoldCollection> for DbWriter {
    type Result = ResponseFuture<Result<bool, StoreError>>;

    fn handle(&mut self, msg: HoldCollection, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        self.counted(async move {
            store
                .hold_collection(msg.collection_id, &msg.reason, &msg.fence)
                .await
        })
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

impl Handler<ClaimAbandonedInFlight> for DbWriter {
    type Result = ResponseFuture<Result<Vec<(CollectionId, i64)>, StoreError>>;

    fn handle(&mut self, msg: ClaimAbandonedInFlight, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move {
            store
                .claim_abandoned_in_flight(&msg.owner, msg.lease, msg.limit)
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
