//! `fleet show|pause|resume|cancel|retry-failed|watch|export ID`: the collections of one fleet
//! (one workflow on several instances, created together by `collection create --instances`),
//! acted on together through the single collection's code (`control.rs`, `export.rs`).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::control::{self, check_id};
use super::export::{ExportArgs, Source};
use super::{open_existing_store, CliError};
use crate::config::Settings;
use crate::escape::escape_controls;
use crate::ids::FleetId;
use crate::status::WeekStatus;
use crate::store::{Control, FleetMember, Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Show each collection of the fleet and its weeks as an instance × week matrix.
    Show(ShowArgs),
    /// Pause every collection of the fleet.
    Pause(IdArg),
    /// Resume every paused collection of the fleet.
    Resume(IdArg),
    /// Cancel the unfinished weeks of every collection of the fleet.
    Cancel(IdArg),
    /// Put the failed weeks of every collection of the fleet back to pending.
    RetryFailed(IdArg),
    /// Live progress until every collection of the fleet ends (exit 0 all completed, 1 otherwise).
    Watch(IdArg),
    /// Export every stored row of the fleet, each with its `instance_id`.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// Fleet id, or a unique prefix of it (at least 8 characters).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Fleet id, or a unique prefix of it (at least 8 characters).
    pub id: String,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: FleetCommand, settings: &Settings) -> Result<ExitCode, CliError> {
    match command {
        FleetCommand::Show(args) => show(args, settings).await,
        FleetCommand::Pause(arg) => apply(&arg.id, Control::Pause, settings).await,
        FleetCommand::Resume(arg) => apply(&arg.id, Control::Resume, settings).await,
        FleetCommand::Cancel(arg) => apply(&arg.id, Control::Cancel, settings).await,
        FleetCommand::RetryFailed(arg) => apply(&arg.id, Control::RetryFailed, settings).await,
        FleetCommand::Watch(arg) => {
            let (store, _, members) = open_fleet(&arg.id, settings).await?;
            let labels: Vec<_> = members
                .iter()
                .map(|m| (m.id, escape_controls(&m.instance).into_owned()))
                .collect();
            control::watch_all(&store, &labels, settings).await
        }
        FleetCommand::Export(args) => {
            let target = super::export::prepare(&args)?;
            let (store, _, members) = open_fleet(&args.id, settings).await?;
            let sources: Vec<Source> = members
                .into_iter()
                .map(|m| Source {
                    id: m.id,
                    instance: Some(m.instance),
                })
                .collect();
            super::export::write(&store, &sources, &args, target).await
        }
    }
}

/// Opens the database and finds the fleet an id or unique prefix names, with its collections;
/// unknown or ambiguous is bad input.
async fn open_fleet(
    text: &str,
    settings: &Settings,
) -> Result<(Store, FleetId, Vec<FleetMember>), CliError> {
    check_id(text).map_err(|_| {
        CliError::Usage(format!(
            "`{text}` is not a fleet UUID or a prefix of one (at least {} characters)",
            crate::store::MIN_ID_PREFIX
        ))
    })?;
    let store = open_existing_store(settings).await?;
    let fleet = store
        .resolve_fleet(text)
        .await
        .map_err(|error| match error {
            StoreError::NotFound(message) | StoreError::Ambiguous(message) => {
                CliError::Usage(message)
            }
            other => CliError::Runtime(other.into()),
        })?;
    let members = store
        .fleet_members(fleet)
        .await
        .map_err(anyhow::Error::from)?;
    Ok((store, fleet, members))
}

/// Applies `control` to every collection of the fleet that allows it, telling each one; bad
/// input (exit 2) only when none does.
async fn apply(text: &str, control: Control, settings: &Settings) -> Result<ExitCode, CliError> {
    let (store, fleet, members) = open_fleet(text, settings).await?;
    let mut applied = 0;
    let mut refusals = Vec::new();
    for member in &members {
        match control::apply(&store, member.id, control).await {
            Ok(line) => {
                applied += 1;
                println!("{}: {line}", escape_controls(&member.instance));
            }
            Err(CliError::Usage(message)) => refusals.push((member, message)),
            Err(other) => return Err(other),
        }
    }
    if applied == 0 {
        return Err(CliError::Usage(format!(
            "cannot {} fleet {fleet}: no collection of it allows it ({})",
            control.verb(),
            refusals
                .iter()
                .map(|(m, message)| format!("{}: {message}", m.instance))
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    for (member, message) in refusals {
        println!(
            "{}: unchanged ({message})",
            escape_controls(&member.instance)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The letter of a week's status in the matrix.
fn letter(status: WeekStatus) -> char {
    match status {
        WeekStatus::Completed => '#',
        WeekStatus::Pending => '.',
        WeekStatus::Submitting | WeekStatus::Running | WeekStatus::Downloading => '>',
        WeekStatus::Failed => 'F',
        WeekStatus::Cancelled => 'x',
    }
}

async fn show(args: ShowArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    let (store, fleet, members) = open_fleet(&args.id, settings).await?;
    let mut rows = Vec::with_capacity(members.len());
    for member in &members {
        let collection = store
            .collection(member.id)
            .await
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| CliError::Usage(format!("collection {} not found", member.id)))?;
        let weeks = store
            .weeks_of(member.id)
            .await
            .map_err(anyhow::Error::from)?;
        rows.push((member, collection, weeks));
    }
    if args.json {
        let collections: Vec<_> = rows
            .iter()
            .map(|(member, collection, weeks)| {
                let mut value = crate::output::collection_json(collection, weeks);
                value["instance_id"] = json!(member.instance);
                value
            })
            .collect();
        println!("{}", json!({"fleet_id": fleet, "collections": collections}));
        return Ok(ExitCode::SUCCESS);
    }
    println!("fleet {fleet}: {} collections", rows.len());
    println!(
        "{:<16}  {:<36}  {:<9}  {:>9}  WEEKS (# completed, > in flight, . pending, F failed, x cancelled)",
        "INSTANCE", "COLLECTION", "STATUS", "DONE/ALL"
    );
    for (member, collection, weeks) in &rows {
        let done = weeks
            .iter()
            .filter(|w| w.status == WeekStatus::Completed)
            .count();
        let matrix: String = weeks.iter().map(|w| letter(w.status)).collect();
        println!(
            "{:<16}  {:<36}  {:<9}  {:>4}/{:<4}  {matrix}",
            crate::output::cell(&member.instance, 16),
            member.id,
            collection.status,
            done,
            weeks.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
