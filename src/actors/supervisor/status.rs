//! The Supervisor's report of its tree (status endpoint, SIGUSR1 dump, metrics).

use actix::prelude::*;

use super::Supervisor;
use crate::actors::collection::CollectionActor;
use crate::ids::CollectionId;

/// Reports the supervision tree (status endpoint, SIGUSR1 dump, metrics).
#[derive(Message)]
#[rtype(result = "SupervisorStatus")]
pub struct GetSupervisorStatus;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ChildStatus {
    pub collection_id: CollectionId,
    pub generation: u32,
    /// False while the child waits for a restart or its state is being loaded.
    pub running: bool,
    /// Unexpected stops inside the restart window.
    pub recent_crashes: usize,
    /// The child's address, to ask it for its own progress.
    #[serde(skip)]
    pub addr: Option<Addr<CollectionActor>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SupervisorStatus {
    pub children: Vec<ChildStatus>,
    /// Restarts of collection actors since the process started.
    pub restarts_total: u64,
    /// Collections given up after too many restarts since the process started.
    pub gave_up_total: u64,
    pub shutting_down: bool,
}

impl Handler<GetSupervisorStatus> for Supervisor {
    type Result = MessageResult<GetSupervisorStatus>;

    fn handle(&mut self, _msg: GetSupervisorStatus, _ctx: &mut Self::Context) -> Self::Result {
        let mut children: Vec<ChildStatus> = self
            .children
            .iter()
            .map(|(id, child)| ChildStatus {
                collection_id: *id,
                generation: child.generation,
                running: child.addr.as_ref().is_some_and(|a| a.connected()),
                recent_crashes: child.crashes.len(),
                addr: child.addr.clone(),
            })
            .collect();
        children.sort_by_key(|c| c.collection_id);
        MessageResult(SupervisorStatus {
            children,
            restarts_total: self.record.restarts_total,
            gave_up_total: self.record.gave_up_total,
            shutting_down: self.shutting_down,
        })
    }
}
