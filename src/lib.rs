//! amc-collector library.
pub mod simulator;
