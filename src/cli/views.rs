//! `workflow show NAME [--json]` (a workflow's typed relation: its name and columns with their
//! types) and `views rebuild` (every relation recreated from the stored rows, for an install
//! upgraded with data already stored; `migrate` does it for relations that are missing).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{open_existing_store, CliError};
use crate::config::Settings;
use crate::escape::escape_controls;
use crate::store::{Store, StoreError};

#[derive(Debug, Args)]
pub struct WorkflowShowArgs {
    /// The workflow's name.
    pub name: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ViewsCommand {
    /// Recreate every workflow's typed relation from the stored rows.
    Rebuild,
}

/// The fixed columns and their types, as `workflow show` lists them.
const FIXED: [(&str, &str); 6] = [
    ("collection_id", "uuid"),
    ("instance_id", "text"),
    ("week_start", "date"),
    ("week_end", "date"),
    ("execution_id", "uuid"),
    ("amc_execution_id", "text"),
];

pub async fn show_workflow(
    args: WorkflowShowArgs,
    settings: &Settings,
) -> Result<ExitCode, CliError> {
    let store = open_existing_store(settings).await?;
    let relation = match store.workflow_relation(&args.name).await {
        Ok(relation) => relation,
        Err(StoreError::NotFound(message)) => return Err(CliError::Usage(message)),
        Err(other) => return Err(CliError::Runtime(other.into())),
    };
    let fixed_type = |ty: &'static str| match (&store, ty) {
        (Store::Sqlite(_), "uuid") => "text",
        (_, ty) => ty,
    };
    if args.json {
        let value = match &relation {
            None => json!({ "workflow": args.name, "relation": null, "columns": [] }),
            Some(relation) => {
                let mut columns: Vec<serde_json::Value> = FIXED
                    .iter()
                    .map(|(name, ty)| json!({ "name": name, "type": fixed_type(ty) }))
                    .collect();
                columns.extend(relation.columns.iter().map(|c| {
                    json!({ "name": c.column, "type": c.column_type.name(), "source": c.source })
                }));
                json!({ "workflow": args.name, "relation": relation.relation, "columns": columns })
            }
        };
        println!("{value}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(relation) = relation else {
        println!(
            "workflow {}: no relation yet (it is created when its first week completes)",
            escape_controls(&args.name)
        );
        return Ok(ExitCode::SUCCESS);
    };
    println!("relation {}", relation.relation);
    for (name, ty) in FIXED {
        println!("  {name:<32} {}", fixed_type(ty));
    }
    for column in &relation.columns {
        let note = if column.source == column.column {
            String::new()
        } else {
            format!("  (AMC column {:?})", escape_controls(&column.source))
        };
        println!(
            "  {:<32} {}{note}",
            column.column,
            column.column_type.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run(command: ViewsCommand, settings: &Settings) -> Result<ExitCode, CliError> {
    let ViewsCommand::Rebuild = command;
    let store = open_existing_store(settings).await?;
    rebuild(&store, false).await?;
    Ok(ExitCode::SUCCESS)
}

/// Rebuilds the relations (all, or only the missing ones) and says which.
pub async fn rebuild(store: &Store, only_missing: bool) -> Result<(), CliError> {
    let report = store
        .rebuild_relations(only_missing)
        .await
        .map_err(|e| CliError::Runtime(e.into()))?;
    for (relation, rows) in &report.rebuilt {
        println!("relation {relation} rebuilt: {rows} rows");
    }
    if !only_missing && report.rebuilt.is_empty() {
        println!("no workflow has stored rows yet");
    }
    Ok(())
}
