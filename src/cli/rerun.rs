//! `collection rerun ID --week YYYY-MM-DD`: collects one completed week again under a new
//! execution UUID (`store::rerun`). The CLI only changes the database; a running daemon picks
//! the week up at its next scan, and the old rows stay readable until the new ones are stored.

use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Args;

use super::{control, CliError};
use crate::config::Settings;

#[derive(Debug, Args)]
pub struct RerunArgs {
    /// Collection UUID (or a unique prefix of at least 8 characters).
    pub id: String,
    /// A day of the completed week to collect again (its first day, usually), YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub week: String,
}

pub async fn run(args: RerunArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    control::check_id(&args.id)?;
    let day = NaiveDate::parse_from_str(&args.week, "%Y-%m-%d")
        .map_err(|_| CliError::Usage(format!("--week `{}` is not a YYYY-MM-DD date", args.week)))?;
    let (store, id) = control::open_for_collection(&args.id, settings).await?;
    let requested = store
        .request_rerun(id, day)
        .await
        .map_err(control::refusal_is_usage)?;
    println!(
        "week {} of collection {id} will be collected again (its rows from execution {} stay until the new ones are stored)",
        requested.week_start, requested.previous_execution_id
    );
    Ok(ExitCode::SUCCESS)
}
