//! The actor tree (docs/design.md):
//!
//! - `supervisor::Supervisor`: finds runnable collections, starts and restarts one
//!   `CollectionActor` each, owns graceful shutdown; every trigger is one `SupervisorEvent`.
//! - `housekeeping::Housekeeping`: adds due keep-fresh weeks and cancels on AMC the executions
//!   of cancelled weeks, on its own interval.
//! - `collection::CollectionActor`: owns one collection's weeks; runs each week's lifecycle.
//! - `gateway::AmcGateway`: the only actor that talks to AMC; owns per-instance slots (`slots`)
//!   and the status board that answers an instance's polls with one listing (`gateway::board`).
//! - `db_writer::DbWriter`: the only actor that writes the database; week transitions are
//!   group-committed (`group_commit`).
//!
//! Actors receive each other's addresses explicitly; there are no registries or globals. The
//! daemon's one `tracker::Tracker` counts, by name, what a graceful shutdown waits for.

pub mod collection;
pub mod db_writer;
pub mod gateway;
mod group_commit;
pub mod housekeeping;
pub mod slots;
pub mod supervisor;
pub mod tracker;
