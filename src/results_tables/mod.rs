//! The typed relation every workflow gets (`amc_results.<name>` on Postgres, `amc_results_<name>`
//! on SQLite): the pure rules behind it. `names` turns outside names (workflows, AMC's result
//! columns) into identifiers that are safe, stable and unique, the one rule export's headers use
//! too; `types` infers a column's narrowest type from its values and widens it, never narrows.
//! The SQL that keeps the relations current lives in `store/typed/`.

pub mod names;
pub mod types;

pub use names::{export_headers, relation_columns, relation_name, unique_names, FIXED_COLUMNS};
pub use types::{ColumnType, TypeObserver};
