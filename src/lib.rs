//! amc-collector library.
pub mod amc;
