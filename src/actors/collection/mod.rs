//! `CollectionActor`: owns the weeks of one collection. It runs one future per unfinished week
//! (`week_flow::run_week`), schedules retries of failed weeks, and stops once every week is
//! finished, telling the Supervisor why it stopped.
//!
//! Its state is rebuilt from the database: a fresh actor started after a crash (or by another
//! process) continues every week from its persisted state.

mod download;
mod follow;
mod guard;
mod guard_state;
mod lost;
mod outcome;
mod poll_plan;
mod publish;
mod refusals;
mod request;
mod slot;
mod steps;
mod submit;
mod unknown_status;
mod week_flow;

use std::collections::HashMap;
use std::rc::Rc;

use actix::prelude::*;
use chrono::{NaiveDate, Utc};
use tracing::Instrument;

pub use guard_state::CollectionGuard;
pub use outcome::{attempt_backoff, WeekOutcome, WeekPolicy};
pub use request::{build_request, idempotency_key, prepare_sql, prepare_sql_with};
pub use steps::WeekContext;

use crate::actors::db_writer::RefreshCollection;
use crate::actors::tracker::TaskGuard;
use crate::ids::{CollectionId, WeekId};
use crate::status::WeekStatus;
use crate::store::model::{CollectionSnapshot, Week};
use crate::store::StoreError;

/// Reported by a collection actor to whoever started it (`StopReport`) when it stops, from
/// `stopped()`, so it is reported even when the actor dies of a panic. `finished: false` means it
/// did not end by itself.
pub struct CollectionStopped {
    pub collection_id: CollectionId,
    pub generation: u32,
    pub finished: bool,
}

/// Where an actor reports its stop: a callback, so that this module needs none of its
/// starter's types (the Supervisor turns it into one of its events).
pub type StopReport = Box<dyn Fn(CollectionStopped)>;

/// Asks the actor to stop at once (shutdown, pause, cancel); in-flight steps are dropped and
/// resumed from the database later.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopCollection;

/// Asks the actor to read its weeks again and start those that have work and are not being
/// worked on: weeks given back by `retry-failed` or `rerun`, or added by keep-fresh, while it ran.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReloadWeeks;

/// Reports the actor's weeks by phase (status dumps, progress).
#[derive(Message)]
#[rtype(result = "CollectionProgress")]
pub struct GetCollectionProgress;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CollectionProgress {
    pub active: usize,
    pub waiting_retry: usize,
    pub done: usize,
    /// Weeks wait for AMC's daily limit until then.
    pub waiting_daily_limit_until: Option<chrono::DateTime<chrono::Utc>>,
    /// `AMC refuses creates: <message> (since T)` while AMC refuses creates without a reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_refusal: Option<String>,
}

/// Where one week stands inside the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Its future is running.
    Active,
    /// Failed; a timer relaunches it.
    WaitingRetry,
    /// Nothing left to do in this actor's life.
    Done,
}

pub struct CollectionActor {
    id: CollectionId,
    /// Restart generation given by the Supervisor; stale stop reports are ignored by it.
    generation: u32,
    cx: Rc<WeekContext>,
    weeks: HashMap<WeekId, (NaiveDate, Phase)>,
    /// Weeks to start, newest first (recent data matters most to dashboards).
    initial: Vec<(WeekId, NaiveDate, WeekStatus)>,
    on_stop: StopReport,
    finished: bool,
    /// Held for the actor's whole life: a graceful shutdown waits until it is dropped.
    _running: TaskGuard,
}

impl CollectionActor {
    pub fn new(
        snapshot: &CollectionSnapshot,
        cx: WeekContext,
        generation: u32,
        on_stop: StopReport,
        running: TaskGuard,
    ) -> Self {
        let mut initial: Vec<_> = snapshot
            .weeks
            .iter()
            .map(|w| (w.id, w.week_start_date, w.status))
            .collect();
        initial.sort_by_key(|week| std::cmp::Reverse(week.1));
        Self {
            id: snapshot.collection.id,
            generation,
            cx: Rc::new(cx),
            weeks: HashMap::new(),
            initial,
            on_stop,
            finished: false,
            _running: running,
        }
    }

    fn launch(&mut self, week_id: WeekId, week_start: NaiveDate, ctx: &mut Context<Self>) {
        self.weeks.insert(week_id, (week_start, Phase::Active));
        let span = tracing::info_span!(
            "week",
            collection_id = %self.id,
            week_start = %week_start,
            execution_id = tracing::field::Empty,
            amc_execution_id = tracing::field::Empty,
        );
        let future = week_flow::run_week(self.cx.clone(), week_id).instrument(span);
        ctx.spawn(
            future
                .into_actor(self)
                .map(move |outcome, act, ctx| act.on_outcome(week_id, outcome, ctx)),
        );
    }

    fn on_outcome(&mut self, week_id: WeekId, outcome: WeekOutcome, ctx: &mut Context<Self>) {
        let Some((week_start, phase)) = self.weeks.get_mut(&week_id) else {
            return;
        };
        let week_start = *week_start;
        match outcome {
            WeekOutcome::RetryAt(at) => {
                *phase = Phase::WaitingRetry;
                let delay = (at - Utc::now()).to_std().unwrap_or_default();
                tracing::info!(collection_id = %self.id, %week_start, retry_in_ms = delay.as_millis() as u64, "Week will be retried.");
                ctx.run_later(delay, move |act, ctx| act.launch(week_id, week_start, ctx));
            }
            WeekOutcome::Completed | WeekOutcome::FailedForGood | WeekOutcome::Idle => {
                *phase = Phase::Done;
                self.finish_if_done(ctx);
            }
            WeekOutcome::Held => {
                // No week creates anything any more: those waiting to retry are done here, and
                // stopping drops the rest (resumed from the database after `collection resume`).
                tracing::warn!(collection_id = %self.id, "Collection held; its actor stops.");
                for (_, phase) in self.weeks.values_mut() {
                    *phase = Phase::Done;
                }
                self.finish_if_done(ctx);
            }
        }
    }

    fn finish_if_done(&mut self, ctx: &mut Context<Self>) {
        if self.finished || self.weeks.values().any(|(_, phase)| *phase != Phase::Done) {
            return;
        }
        self.finished = true;
        let db = self.cx.db.clone();
        let collection_id = self.id;
        // The collection's status is re-derived before the Supervisor looks for work again.
        ctx.spawn(
            async move {
                let _ = db.send(RefreshCollection { collection_id }).await;
            }
            .into_actor(self)
            .map(|(), _act, ctx| ctx.stop()),
        );
    }
}

impl Actor for CollectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(
            actor = "collection",
            collection_id = %self.id,
            generation = self.generation,
            weeks = self.initial.len(),
            "Collection actor started."
        );
        // Executions already on AMC hold their slots since the Supervisor loaded this
        // collection (`supervisor::adoption`), before any week here may ask for one.
        for (week_id, week_start, status) in std::mem::take(&mut self.initial) {
            if matches!(status, WeekStatus::Completed | WeekStatus::Cancelled) {
                continue;
            }
            self.launch(week_id, week_start, ctx);
        }
        self.finish_if_done(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::info!(
            actor = "collection",
            collection_id = %self.id,
            generation = self.generation,
            finished = self.finished,
            "Collection actor stopped."
        );
        (self.on_stop)(CollectionStopped {
            collection_id: self.id,
            generation: self.generation,
            finished: self.finished,
        });
    }
}

impl Handler<StopCollection> for CollectionActor {
    type Result = ();

    fn handle(&mut self, _msg: StopCollection, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<ReloadWeeks> for CollectionActor {
    type Result = ();

    fn handle(&mut self, _msg: ReloadWeeks, ctx: &mut Self::Context) {
        if self.finished {
            // Stopping: the Supervisor starts a fresh actor, which reads every week.
            return;
        }
        let (store, id) = (self.cx.store.clone(), self.id);
        ctx.spawn(
            async move { store.weeks_of(id).await }
                .into_actor(self)
                .map(|result, act, ctx| act.on_reloaded(result, ctx)),
        );
    }
}

impl CollectionActor {
    fn on_reloaded(&mut self, result: Result<Vec<Week>, StoreError>, ctx: &mut Context<Self>) {
        if self.finished {
            return;
        }
        let weeks = match result {
            Ok(weeks) => weeks,
            Err(error) => {
                // The Supervisor tells again only for a new stamp; the weeks still run once this
                // actor ends and a fresh one starts.
                tracing::warn!(collection_id = %self.id, %error, "Reading the weeks again failed.");
                return;
            }
        };
        for week in weeks {
            let has_work = match week.status {
                WeekStatus::Completed | WeekStatus::Cancelled => false,
                WeekStatus::Failed => week.next_attempt_at.is_some(),
                _ => true,
            };
            // A week waiting for its retry timer is left to it, so no week runs twice.
            let idle = matches!(self.weeks.get(&week.id), None | Some((_, Phase::Done)));
            if has_work && idle {
                tracing::info!(collection_id = %self.id, week_start = %week.week_start_date, "Week given work while the collection runs; starting it.");
                self.launch(week.id, week.week_start_date, ctx);
            }
        }
    }
}

impl Handler<GetCollectionProgress> for CollectionActor {
    type Result = MessageResult<GetCollectionProgress>;

    fn handle(&mut self, _msg: GetCollectionProgress, _ctx: &mut Self::Context) -> Self::Result {
        let mut progress = CollectionProgress {
            waiting_daily_limit_until: self
                .cx
                .daily_limit_wait
                .get()
                .filter(|until| *until > chrono::Utc::now()),
            create_refusal: self.cx.guard.refusal_text(),
            ..CollectionProgress::default()
        };
        for (_, phase) in self.weeks.values() {
            match phase {
                Phase::Active => progress.active += 1,
                Phase::WaitingRetry => progress.waiting_retry += 1,
                Phase::Done => progress.done += 1,
            }
        }
        MessageResult(progress)
    }
}
