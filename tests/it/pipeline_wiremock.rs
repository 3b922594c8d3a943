//! End to end with a scripted AMC: the real actor tree (Supervisor, CollectionActor, AmcGateway,
//! DbWriter) against a `wiremock::MockServer` playing LwA, the AMC reporting API and the S3 host of
//! the pre-signed result URLs, on SQLite and on PostgreSQL.
//!
//! Unlike `pipeline_simulator.rs`, every fault is placed deterministically, and wiremock's request
//! log is the evidence of what went over the wire.
//!
//! Codemap (`tests/it/pipeline_wiremock/`):
//! - `fake_amc`: the scripted AMC on wiremock (`FakeAmc`); `script`: its faults (`Script`).
//! - `harness`: fixtures, running the daemon, reading stored rows, shared assertions.
//! - `submission`: create wire format, create faults, adoption, reply shapes.
//! - `outcomes`: FAILED executions, expired URLs, and what is stored from result files.

pub mod fake_amc;
pub mod harness;
mod outcomes;
pub mod script;
mod submission;
