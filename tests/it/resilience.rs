//! Resilience: the daemon survives what production throws at it, on SQLite and PostgreSQL.
//!
//! - `supervision`: a collection actor that stops unexpectedly is restarted fresh; past the
//!   restart intensity the collection is failed with the reason and the process goes on.
//! - `database_outage` (Postgres): a TCP proxy cuts the database mid-run; no acknowledged write
//!   is lost and no AMC execution is duplicated.
//! - `hostile_content`: non-UTF-8 CSV, oversized results and HTML/garbled status replies fail or
//!   delay only their week, never the process.
//! - `secrets`: the real binaries at debug level never print the client secret, the refresh token,
//!   an access token or a database password.
//! - `bad_input`: every command refuses bad input with exit 2, one line, no panic, nothing written.
//!
//! `common` holds the in-process daemon helpers; `proxy` the outage-capable TCP proxy; the
//! scripted AMC is the wiremock fake of `pipeline_wiremock`.

mod bad_input;
pub mod common;
mod database_outage;
mod hostile_content;
pub mod proxy;
mod secrets;
mod supervision;
