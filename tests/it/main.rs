//! Every integration test in one binary: one link of the crate instead of one per file, and
//! `support` compiled once, so nothing in it needs `#[allow(dead_code)]`. Each module is one
//! former test binary, named as before; tests run as `it::<module>::...`.

mod support;

mod abandoned_in_flight;
mod alerts;
mod amc_client;
mod bench_smoke;
mod chaos;
mod cli_foundation;
mod cli_lists;
mod console;
mod controls;
mod credential_sets;
mod demo;
mod fleets;
mod group_commit;
mod hardening;
mod hostile_text;
mod housekeeping;
mod keep_fresh;
mod lineage;
mod multiprocess;
mod observe;
mod pipeline_simulator;
mod pipeline_wiremock;
mod query_params;
mod reopened;
mod rerun;
mod resilience;
mod restarts;
mod simulator_http;
mod slot_release;
mod status_board;
mod store_progress;
mod typed_results;
