//! `Housekeeping`: the periodic work that is not supervision, in its own actor so that neither
//! waits for the other. Every `scheduler.scan_interval_ms` (and once at start) it adds the weeks
//! keep-fresh collections became due for (`keep_fresh`) and cancels on AMC the executions of weeks
//! the operator cancelled (`sweep`). It writes through the DbWriter like the other actors, and
//! when it has added weeks it tells the Supervisor (`SupervisorEvent::DueWeeksAdded`), which
//! claims them or tells the collection's running actor. Each job holds a `TaskGuard` while it
//! runs, so a graceful shutdown waits for it.
//!
//! Any process may run it at the same time as others: adding a week is idempotent and refused
//! for a paused or cancelled collection in the same statement, and AMC answers a second cancel
//! of an execution with a 400, which the sweep reads as "already ended".

mod keep_fresh;
mod sweep;

use std::time::Duration;

use actix::prelude::*;

use super::db_writer::DbWriter;
use super::gateway::AmcGateway;
use super::supervisor::{Supervisor, SupervisorEvent};
use super::tracker::Tracker;
use crate::store::Store;
use crate::weeks::WeekRules;

/// Housekeeping's own settings.
#[derive(Debug, Clone, Copy)]
pub struct HousekeepingSettings {
    /// Time between rounds (`scheduler.scan_interval_ms`).
    pub interval: Duration,
    /// Data lag and retention: when a keep-fresh collection's next week is due.
    pub week_rules: WeekRules,
}

/// Runs a round now rather than at the next interval (a job still running is not started twice).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunHousekeeping;

/// Starts no more rounds (the first step of a graceful shutdown); jobs under way finish, and the
/// shutdown waits for them through their guards.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopHousekeeping;

/// The actors and handles Housekeeping works through.
pub struct HousekeepingWiring {
    pub store: Store,
    pub gateway: Addr<AmcGateway>,
    pub db: Addr<DbWriter>,
    pub supervisor: Addr<Supervisor>,
    pub tracker: Tracker,
}

pub struct Housekeeping {
    wiring: HousekeepingWiring,
    settings: HousekeepingSettings,
    adding: bool,
    sweeping: bool,
    stopped: bool,
}

impl Housekeeping {
    pub fn new(wiring: HousekeepingWiring, settings: HousekeepingSettings) -> Self {
        Self {
            wiring,
            settings,
            adding: false,
            sweeping: false,
            stopped: false,
        }
    }

    /// Starts each job that is not already running.
    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        self.add_due_weeks(ctx);
        self.sweep_cancellations(ctx);
    }

    fn add_due_weeks(&mut self, ctx: &mut Context<Self>) {
        if self.adding {
            return;
        }
        self.adding = true;
        let (store, db) = (self.wiring.store.clone(), self.wiring.db.clone());
        let rules = self.settings.week_rules;
        let running = self.wiring.tracker.guard("keep-fresh round");
        let job = async move {
            let _running = running;
            keep_fresh::add_due_weeks(&store, &db, rules, chrono::Utc::now()).await
        };
        ctx.spawn(job.into_actor(self).map(|weeks, act, _ctx| {
            act.adding = false;
            // Told even of none: the Supervisor goes idle only after a round has ended.
            act.wiring
                .supervisor
                .do_send(SupervisorEvent::DueWeeksAdded { weeks });
        }));
    }

    fn sweep_cancellations(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            return;
        }
        self.sweeping = true;
        let wiring = &self.wiring;
        let (store, gateway, db) = (
            wiring.store.clone(),
            wiring.gateway.clone(),
            wiring.db.clone(),
        );
        let running = wiring.tracker.guard("cancellation sweep");
        let job = async move {
            let _running = running;
            sweep::sweep_cancellations(store, gateway, db).await;
        };
        ctx.spawn(
            job.into_actor(self)
                .map(|(), act, _ctx| act.sweeping = false),
        );
    }
}

impl Actor for Housekeeping {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(actor = "housekeeping", "Housekeeping started.");
        self.round(ctx);
        ctx.run_interval(self.settings.interval, |act, ctx| act.round(ctx));
    }
}

impl Handler<RunHousekeeping> for Housekeeping {
    type Result = ();

    fn handle(&mut self, _msg: RunHousekeeping, ctx: &mut Self::Context) {
        self.round(ctx);
    }
}

impl Handler<StopHousekeeping> for Housekeeping {
    type Result = ();

    fn handle(&mut self, _msg: StopHousekeeping, _ctx: &mut Self::Context) {
        self.stopped = true;
    }
}
