//! amc-collector: a supervised actix process that backfills Amazon Marketing Cloud workflow
//! results week by week into Postgres or SQLite.
//!
//! # Layout
//! - `actors`: the actor tree (Supervisor, CollectionActor, AmcGateway, DbWriter).
//! - `app`: the daemon as one value (`App::build(&settings)...start()`, `App::stop`), opening the
//!   database, and the `run` command; `demo`: the one-command demo; `bench`: the benchmark command
//!   (simulator + database + scenarios, one line of figures each). None of them uses `cli`.
//! - `results`: the one CSV reader of result files, row count and checksum; `ingest`: a week's
//!   result streamed from the download through that reader into the database in bounded memory.
//! - `amc`: the AMC HTTP client (Login-with-Amazon tokens, retries, downloads); only the gateway uses it.
//! - `cli`: the command line (thin dispatch onto the modules below; maps their errors to exit
//!   codes); `output`: how collections are printed (JSON, tables).
//! - `config`: the typed configuration tree (defaults < file < environment).
//! - `sql`: SQL made the single line AMC takes (comments removed, literals untouched);
//!   `query_params`: a collection's query parameters (`{{name}}` placeholders, `parameterValues`).
//! - `weeks`: week generation; `status`: week and collection status vocabularies; `ids`: typed UUIDs.
//! - `store`: every database read and write, Postgres and SQLite behind one `Store`.
//! - `simulator`: a faithful fake of AMC, Login-with-Amazon and the download host (actix-web).
//! - `observe`: runtime inspection as plain data (tree, readiness, metrics text, tree log, SIGUSR1
//!   dump); `console`: the operator's console (page, reads, actions); `http`: the endpoint that
//!   serves both (server, `Host` guard, token, sessions, sign-in).
//! - `telemetry`: logging; `memory`: process-wide allocator settings; `escape`: outside text made
//!   safe to print (log lines, tables).
//!
//! See ARCHITECTURE.md for the actor tree and the invariants.

pub mod actors;
pub mod alerts;
pub mod amc;
pub mod app;
pub mod backoff;
pub mod bench;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod escape;
pub mod http;
pub mod ids;
pub mod ingest;
pub mod memory;
pub mod new_collection;
pub mod observe;
pub mod output;
pub mod query_params;
pub mod results;
pub mod results_tables;
pub mod simulator;
pub mod sql;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod weeks;
