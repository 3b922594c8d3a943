//! amc-collector library.
