//! Group commit for the DbWriter: a queue of week transitions and the flush tasks that drain it,
//! each applying everything that queued up while the previous batch was committing in one
//! transaction (`store::transitions`). Under load a batch holds hundreds of transitions; when idle, a
//! transition is written at once (a task starts with the first one).
//!
//! SQLite has one writer at a time, so one flush task runs. Postgres overlaps a few (see `Queue`),
//! so one batch's round trips hide another's commit; each batch is ordered by collection, so
//! concurrent batches lock collection rows in the same order and cannot deadlock.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;

use super::tracker::{TaskGuard, Tracker};
use crate::store::{Store, StoreError, Transition, Verdict};

/// Most statements (roughly) in one group commit: keeps a batch's transaction short enough that
/// lease renewals and other writers are not held up behind it.
const MAX_BATCH_WEIGHT: usize = 1000;

/// A queued transition and where its verdict goes.
struct Queued {
    transition: Transition,
    reply: Reply,
}

type Reply = tokio::sync::oneshot::Sender<Result<Verdict, StoreError>>;

/// Flush tasks of Postgres's lane for every transition but intents.
const POSTGRES_FLUSHERS: usize = 2;

/// One queue and the flush tasks draining it.
struct Lane {
    waiting: RefCell<VecDeque<Queued>>,
    /// Flush tasks running (each drains the lane before it ends).
    flushers: Cell<usize>,
    max_flushers: usize,
}

impl Lane {
    fn new(max_flushers: usize) -> Self {
        Self {
            waiting: RefCell::default(),
            flushers: Cell::new(0),
            max_flushers,
        }
    }

    /// Takes the next batch off the lane (at least one transition when any waits), ordered by
    /// collection; the sort is stable, so each collection's transitions keep their order.
    fn next_batch(&self) -> (Vec<Transition>, Vec<Reply>) {
        let mut waiting = self.waiting.borrow_mut();
        let mut weight = 0;
        let mut taken = Vec::new();
        while let Some(next) = waiting.front() {
            weight += next.transition.weight();
            if weight > MAX_BATCH_WEIGHT && !taken.is_empty() {
                break;
            }
            taken.extend(waiting.pop_front());
        }
        taken.sort_by_key(|queued| queued.transition.collection_id());
        taken.into_iter().map(|q| (q.transition, q.reply)).unzip()
    }
}

/// What the flush tasks have done, for the benchmark and the curious.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Transactions the flush tasks ran (one per batch, plus replays of failed batches).
    pub batches: u64,
    /// Transitions those batches carried.
    pub transitions: u64,
}

/// The transitions waiting for a group commit, shared with the flush tasks.
///
/// Postgres has two lanes. Intents take per-instance advisory locks (the cross-process slot
/// count) and hold them until their batch commits, so batches of intents run one at a time in
/// their own lane; every other transition goes to a lane of a few overlapping flush tasks that
/// take no such lock and so never wait for each other. SQLite has one writer: one lane, one task.
pub struct Queue {
    lanes: Vec<Rc<Lane>>,
    stats: Rc<Cell<GroupCommitStats>>,
    /// Each flush task holds a guard: a task runs while its lane has transitions, so every
    /// queued transition is waited for by a graceful shutdown.
    tracker: Tracker,
}

impl Queue {
    pub fn new(store: &Store, tracker: Tracker) -> Self {
        let lanes = match store {
            Store::Postgres(_) => vec![Lane::new(1), Lane::new(POSTGRES_FLUSHERS)],
            Store::Sqlite(_) => vec![Lane::new(1)],
        };
        Self {
            lanes: lanes.into_iter().map(Rc::new).collect(),
            stats: Rc::default(),
            tracker,
        }
    }

    pub fn stats(&self) -> GroupCommitStats {
        self.stats.get()
    }

    /// Queues a transition and starts a flush task if its lane has room for one; resolves to
    /// its verdict (applied or refused), or the database's error. The task is not tied to the writer actor's context, so a restart of the
    /// writer does not abandon a batch halfway. `in_flight` counts the transition until its
    /// verdict is known.
    pub fn submit(
        &self,
        transition: Transition,
        store: &Store,
        in_flight: &Rc<Cell<usize>>,
    ) -> impl Future<Output = Result<Verdict, StoreError>> + 'static {
        let index = match transition {
            Transition::Intent(_) => 0,
            _ => self.lanes.len() - 1,
        };
        let lane = &self.lanes[index];
        let (reply, verdict) = tokio::sync::oneshot::channel();
        lane.waiting
            .borrow_mut()
            .push_back(Queued { transition, reply });
        in_flight.set(in_flight.get() + 1);
        if lane.flushers.get() < lane.max_flushers {
            lane.flushers.set(lane.flushers.get() + 1);
            let running = self.tracker.guard("group commit of week transitions");
            actix_rt::spawn(flush(
                store.clone(),
                lane.clone(),
                in_flight.clone(),
                self.stats.clone(),
                running,
            ));
        }
        async move {
            // A dropped reply means the flush task died with the runtime: worth trying again.
            verdict
                .await
                .unwrap_or(Err(StoreError::Database(sqlx::Error::WorkerCrashed)))
        }
    }
}

/// One flush task: applies a lane's transitions batch by batch until the lane is empty.
async fn flush(
    store: Store,
    lane: Rc<Lane>,
    in_flight: Rc<Cell<usize>>,
    stats: Rc<Cell<GroupCommitStats>>,
    _running: TaskGuard,
) {
    loop {
        let (transitions, replies) = lane.next_batch();
        if transitions.is_empty() {
            lane.flushers.set(lane.flushers.get().saturating_sub(1));
            return;
        }
        let verdicts = store.apply_transitions(&transitions).await;
        let mut done = stats.get();
        done.batches += 1;
        done.transitions += transitions.len() as u64;
        stats.set(done);
        in_flight.set(in_flight.get().saturating_sub(transitions.len()));
        for (reply, verdict) in replies.into_iter().zip(verdicts) {
            // The asker may have gone away (its week was cancelled); the write stands anyway.
            let _ = reply.send(verdict);
        }
    }
}
