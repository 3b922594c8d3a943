//! The status board: one listing of an instance's executions answers every week waiting on
//! that instance, where a GET per execution would answer one.
//!
//! A week following its execution asks for its status at a time of its choosing (its poll plan,
//! `collection::poll_plan`) with [`AwaitExecution`]. Requests of one instance are served by
//! listing the instance's executions created since the oldest waiting one (AMC's list endpoint,
//! `GET /amc/reporting/{instanceId}/workflowExecutions?minCreationTime=...`, which returns the
//! same execution objects as a GET: API model of the list operation; Amazon's AMC quickstart
//! solution kept its status table in step the same way), at most once per `listing_gap`. Each listing answers the waiters whose time has
//! come, and also every waiter whose execution it shows ended: an execution ending between two
//! of its own polls is seen at the instance's next listing. While runs are likely ending
//! (their `Watch`), the instance is listed twice per gap of their own polls, rates added up: in
//! a full instance an end is seen a fraction of a poll interval after it came, one listing
//! costing one call for ten runs, and a lone run is looked at twice per its own poll gap.
//!
//! An execution the listing does not show (AMC lists new executions with a lag: observed
//! behaviour; cancelled ones only with `includeCancelled`: API model) or whose creation time is unknown is read with its own GET once due; so is
//! every execution of an instance whose listing failed for good (then for `UNLISTED_FOR`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::oneshot;

use super::{AmcGateway, GatewayError};
use crate::amc::{AmcClient, AmcError, ExecutionInfo, InstanceRef, ListFilter};

/// How long an instance whose listing AMC refused for good is read with one GET per execution.
const UNLISTED_FOR: Duration = Duration::from_secs(600);
/// Looks a watched run gets per gap of its own polls: a listing is shared by the instance's
/// runs, so two looks per gap cost an instance with two or more runs watched no more than their
/// own polls, and halve how late an end is seen.
const LOOKS_PER_POLL: f64 = 2.0;
/// Page size asked of a listing: ten executions in flight and those created since fit in one.
const PAGE: u32 = 100;
/// `minCreationTime` has whole seconds; one more keeps the oldest waiter inside the listing.
const CREATION_SLACK: TimeDelta = TimeDelta::seconds(1);

/// Replies with the execution's status at `due`, or earlier if a listing of its instance shows
/// it ended before then.
#[derive(Message)]
#[rtype(result = "Result<ExecutionInfo, GatewayError>")]
pub struct AwaitExecution {
    pub instance: InstanceRef,
    pub amc_execution_id: String,
    /// AMC's `createTime` of the execution; `None`: not known here, read with a GET.
    pub created: Option<DateTime<Utc>>,
    pub due: Instant,
    /// While its run is likely to be ending: its instance is then listed as often as its
    /// watching runs' own polls would come together, at most every `listing_gap`, so an end is
    /// seen soon after it comes and a lone run costs no more than its own polls.
    pub watch: Option<Watch>,
}

/// A run likely to be ending from `from` on, which its own plan would poll every `every`.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pub from: Instant,
    pub every: Duration,
}

/// Each instance's board, keyed by AMC instance id.
#[derive(Default)]
pub(super) struct Boards {
    by_instance: HashMap<String, Board>,
}

#[derive(Default)]
struct Board {
    waiters: Vec<StatusWaiter>,
    /// The instance as last asked about (its credentials and region).
    instance: Option<InstanceRef>,
    listing: bool,
    last_listing: Option<Instant>,
    timer: Option<SpawnHandle>,
    unlisted_until: Option<Instant>,
}

struct StatusWaiter {
    amc_execution_id: String,
    created: Option<DateTime<Utc>>,
    due: Instant,
    watch: Option<Watch>,
    reply: oneshot::Sender<Result<ExecutionInfo, GatewayError>>,
}

impl Boards {
    /// Forgets every waiter (their weeks see the request dropped and ask again): on a gateway
    /// restart, whose timers died with the old context.
    pub(super) fn clear(&mut self) {
        self.by_instance.clear();
    }
}

impl Handler<AwaitExecution> for AmcGateway {
    type Result = ResponseFuture<Result<ExecutionInfo, GatewayError>>;

    fn handle(&mut self, msg: AwaitExecution, ctx: &mut Self::Context) -> Self::Result {
        let (reply, receiver) = oneshot::channel();
        let id = msg.instance.instance_id.clone();
        let board = self.boards.by_instance.entry(id.clone()).or_default();
        board.instance = Some(msg.instance);
        board.waiters.push(StatusWaiter {
            amc_execution_id: msg.amc_execution_id,
            created: msg.created,
            due: msg.due,
            watch: msg.watch,
            reply,
        });
        self.schedule(&id, ctx);
        Box::pin(async move { receiver.await.map_err(|_| GatewayError::StatusDropped)? })
    }
}

impl AmcGateway {
    /// Sets the instance's next turn at its earliest waiter's time (its due time, or when it
    /// starts watching), no sooner than the watched runs' combined poll gap, nor than `min_gap`,
    /// after its last listing.
    fn schedule(&mut self, id: &str, ctx: &mut Context<Self>) {
        let min_gap = self.listing_gap;
        let Some(board) = self.boards.by_instance.get_mut(id) else {
            return;
        };
        if board.listing {
            return; // rescheduled when the listing returns
        }
        if let Some(timer) = board.timer.take() {
            ctx.cancel_future(timer);
        }
        board.waiters.retain(|w| !w.reply.is_closed());
        let next = |w: &StatusWaiter| w.watch.map_or(w.due, |watch| watch.from.min(w.due));
        let Some(due) = board.waiters.iter().map(next).min() else {
            return;
        };
        let gap = watched_gap(&board.waiters, Instant::now()).max(min_gap);
        let at = board.last_listing.map_or(due, |last| due.max(last + gap));
        let id = id.to_owned();
        let wait = at.saturating_duration_since(Instant::now());
        board.timer = Some(ctx.run_later(wait, move |gateway, ctx| gateway.turn(&id, ctx)));
    }

    /// The instance's turn: lists it (or reads due executions one by one while it is unlisted).
    fn turn(&mut self, id: &str, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let client = self.client.clone();
        let Some(board) = self.boards.by_instance.get_mut(id) else {
            return;
        };
        board.timer = None;
        let Some(instance) = board.instance.clone() else {
            return;
        };
        let oldest = board.waiters.iter().filter_map(|w| w.created).min();
        let unlisted = board.unlisted_until.is_some_and(|until| until > now);
        let Some(oldest) = oldest.filter(|_| !unlisted) else {
            // Nothing a listing could find: the due ones get their own GET.
            let due = take_waiters(board, |w| w.due <= now);
            read_each(&client, &instance, due);
            self.schedule(id, ctx);
            return;
        };
        board.listing = true;
        board.last_listing = Some(now);
        let filter = ListFilter {
            min_creation_time: Some(oldest - CREATION_SLACK),
            workflow_id: None,
            include_workflow: false,
            limit: Some(PAGE),
        };
        let id = id.to_owned();
        let listing = async move { client.list_executions(&instance, &filter).await };
        ctx.spawn(listing.into_actor(self).map(move |listed, gateway, ctx| {
            gateway.listed(&id, now, listed, ctx);
        }));
    }

    /// Answers the waiters a listing started at `started` can answer; the others wait on.
    fn listed(
        &mut self,
        id: &str,
        started: Instant,
        listed: Result<Vec<ExecutionInfo>, AmcError>,
        ctx: &mut Context<Self>,
    ) {
        let client = self.client.clone();
        let half_gap = self.listing_gap / 2;
        let Some(board) = self.boards.by_instance.get_mut(id) else {
            return;
        };
        board.listing = false;
        let Some(instance) = board.instance.clone() else {
            return;
        };
        // Waiters due by the middle of the next gap are answered now rather than a gap late.
        let due_by = started + half_gap;
        let listed = match listed {
            Ok(listed) => listed,
            Err(error) => {
                if !error.is_transient() {
                    tracing::warn!(%error, instance = %id, "AMC refused to list the instance's executions; reading each with its own GET for a while.");
                    board.unlisted_until = Some(Instant::now() + UNLISTED_FOR);
                }
                let due = take_waiters(board, |w| w.due <= due_by);
                read_each(&client, &instance, due);
                self.schedule(id, ctx);
                return;
            }
        };
        let by_id: HashMap<&str, &ExecutionInfo> = listed
            .iter()
            .filter_map(|info| Some((info.workflow_execution_id.as_deref()?, info)))
            .collect();
        let mut unlisted = Vec::new();
        for waiter in std::mem::take(&mut board.waiters) {
            match by_id.get(waiter.amc_execution_id.as_str()) {
                Some(info) if info.status.is_terminal() || waiter.due <= due_by => {
                    let _ = waiter.reply.send(Ok((*info).clone()));
                }
                None if waiter.due <= due_by => unlisted.push(waiter),
                _ => board.waiters.push(waiter),
            }
        }
        read_each(&client, &instance, unlisted);
        self.schedule(id, ctx);
    }
}

/// The gap at which the runs watched now would be looked at together: their looks' rates added
/// up (two runs polled every second: a listing every quarter second).
/// Zero when none is watched (the listing gap then rules).
fn watched_gap(waiters: &[StatusWaiter], now: Instant) -> Duration {
    let rate: f64 = waiters
        .iter()
        .filter_map(|w| w.watch)
        .filter(|watch| watch.from <= now && !watch.every.is_zero())
        .map(|watch| LOOKS_PER_POLL / watch.every.as_secs_f64())
        .sum();
    if rate > 0.0 {
        Duration::from_secs_f64(1.0 / rate)
    } else {
        Duration::ZERO
    }
}

/// Removes and returns the board's waiters that `pick` selects.
fn take_waiters(board: &mut Board, pick: impl Fn(&StatusWaiter) -> bool) -> Vec<StatusWaiter> {
    let (picked, kept) = std::mem::take(&mut board.waiters)
        .into_iter()
        .partition(|w| pick(w));
    board.waiters = kept;
    picked
}

/// Reads each waiter's execution with its own GET and answers it (tasks of their own: they
/// touch no gateway state).
fn read_each(client: &AmcClient, instance: &InstanceRef, waiters: Vec<StatusWaiter>) {
    for waiter in waiters {
        let (client, instance) = (client.clone(), instance.clone());
        actix_rt::spawn(async move {
            let read = client
                .get_execution(&instance, &waiter.amc_execution_id)
                .await;
            let _ = waiter.reply.send(read.map_err(GatewayError::from));
        });
    }
}
