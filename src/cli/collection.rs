//! `collection create|list|show`.

use std::process::ExitCode;

use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};

use super::control;
use super::{open_existing_store, CliError};
use crate::config::Settings;
use crate::output;
use crate::store::Control;
use crate::store::KeepFresh;
use crate::weeks::WeekStart;

#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Define a backfill of N weeks of a workflow on an instance.
    Create(CreateArgs),
    /// List collections, newest first.
    List(ListArgs),
    /// Show a collection and its weeks.
    Show(ShowArgs),
    /// Stop new submissions; running executions finish and are stored.
    Pause(IdArg),
    /// Resume a paused collection.
    Resume(IdArg),
    /// Cancel unfinished weeks; the daemon cancels their running AMC executions.
    Cancel(IdArg),
    /// Put failed weeks back to pending with fresh attempts.
    RetryFailed(IdArg),
    /// Live progress until the collection ends (exit 0 completed, 1 otherwise).
    Watch(IdArg),
    /// Export every stored row with its week and execution UUID.
    Export(super::export::ExportArgs),
    /// Collect one completed week again with a new execution; its rows are replaced once stored.
    Rerun(super::rerun::RerunArgs),
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// Collection id, or a unique prefix of it (at least 8 characters).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Workflow name (see `workflow add`).
    #[arg(long)]
    pub workflow: String,
    /// AMC instance id (see `instance add`).
    #[arg(long, conflicts_with_all = ["instances", "all_instances"])]
    pub instance: Option<String>,
    /// Several AMC instance ids, comma-separated: one collection per instance, as one fleet.
    #[arg(long, value_name = "A,B,C", conflicts_with = "all_instances")]
    pub instances: Option<String>,
    /// Every registered instance, as one fleet.
    #[arg(long)]
    pub all_instances: bool,
    /// Print the plan (weeks, executions needed, weeks stored already, queue, ETA); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Number of weeks, 1 to 60.
    #[arg(long, allow_negative_numbers = true)]
    pub weeks: i64,
    /// Last day considered, YYYY-MM-DD (default: today minus the data lag).
    #[arg(long)]
    pub end_date: Option<String>,
    /// First day of each week: monday or sunday.
    #[arg(long, default_value = "monday")]
    pub week_start: String,
    /// IANA time zone of the windows.
    #[arg(long, default_value = "UTC")]
    pub time_zone: String,
    /// After the backfill, add and collect each new week as soon as it is due, forever.
    #[arg(long)]
    pub keep_fresh: bool,
    /// With --keep-fresh: keep only the newest N completed weeks' rows (weeks and ids stay).
    #[arg(long, allow_negative_numbers = true)]
    pub keep_weeks: Option<i64>,
    /// Accept a last week that ended less than 48 hours ago (AMC may not have all its data yet).
    #[arg(long)]
    pub allow_recent: bool,
    /// Print a JSON object instead of the bare id.
    #[arg(long)]
    pub json: bool,
    /// A query parameter filling `{{NAME}}` in the workflow's SQL (or sent to a saved workflow as
    /// `parameterValues`): NAME=VALUE, or NAME=@FILE for a list, one value per line. Repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE|NAME=@FILE")]
    pub params: Vec<String>,
}

/// `--keep-fresh` / `--keep-weeks N` as the store takes them.
fn keep_fresh_of(args: &CreateArgs) -> Result<Option<KeepFresh>, CliError> {
    match (args.keep_fresh, args.keep_weeks) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(CliError::Usage(
            "--keep-weeks needs --keep-fresh".to_string(),
        )),
        (true, None) => Ok(Some(KeepFresh { keep_weeks: None })),
        (true, Some(n)) => match u32::try_from(n) {
            Ok(n) if n >= 1 => Ok(Some(KeepFresh {
                keep_weeks: Some(n),
            })),
            _ => Err(CliError::Usage(format!(
                "--keep-weeks must be at least 1, got {n}"
            ))),
        },
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Collection id, or a unique prefix of it (at least 8 characters).
    pub id: String,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: CollectionCommand, settings: &Settings) -> Result<ExitCode, CliError> {
    match command {
        CollectionCommand::Create(args) => create(args, settings).await,
        CollectionCommand::List(args) => list(args, settings).await,
        CollectionCommand::Show(args) => show(args, settings).await,
        CollectionCommand::Pause(arg) => {
            control::run_control(&arg.id, Control::Pause, settings).await
        }
        CollectionCommand::Resume(arg) => {
            control::run_control(&arg.id, Control::Resume, settings).await
        }
        CollectionCommand::Cancel(arg) => {
            control::run_control(&arg.id, Control::Cancel, settings).await
        }
        CollectionCommand::RetryFailed(arg) => {
            control::run_control(&arg.id, Control::RetryFailed, settings).await
        }
        CollectionCommand::Watch(arg) => control::watch(&arg.id, settings).await,
        CollectionCommand::Export(args) => super::export::run(args, settings).await,
        CollectionCommand::Rerun(args) => super::rerun::run(args, settings).await,
    }
}

async fn create(args: CreateArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    // Everything that can be checked without the database is checked first.
    let keep_fresh = keep_fresh_of(&args)?;
    let params = super::params::parse(&args.params)?;
    let zone: chrono_tz::Tz = args.time_zone.parse().map_err(|_| {
        CliError::Usage(format!(
            "--time-zone `{}` is not an IANA time zone name",
            args.time_zone
        ))
    })?;
    let week_start: WeekStart = args
        .week_start
        .parse()
        .map_err(|e: crate::weeks::WeekError| CliError::Usage(e.to_string()))?;
    let end_date = args
        .end_date
        .as_deref()
        .map(|text| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                CliError::Usage(format!("--end-date `{text}` is not a date (YYYY-MM-DD)"))
            })
        })
        .transpose()?;
    let request = crate::new_collection::Request {
        workflow: args.workflow.clone(),
        targets: super::plan::targets_of(&args.instance, &args.instances, args.all_instances)?,
        weeks: args.weeks,
        end_date,
        week_start,
        zone,
        keep_fresh,
        allow_recent: args.allow_recent,
        parameters: params,
    };
    let planning = crate::new_collection::Planning::of(settings);
    let weeks = request.weeks_checked(&planning, Utc::now())?;
    let store = open_existing_store(settings).await?;
    let prepared = crate::new_collection::resolve(&store, &request, weeks).await?;
    if args.dry_run {
        super::plan::dry_run(&store, &planning, &prepared, args.json).await?;
    } else {
        super::plan::create(&store, &prepared, args.json).await?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: ListArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    let store = open_existing_store(settings).await?;
    let collections = store
        .list_collections()
        .await
        .map_err(anyhow::Error::from)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&collections).map_err(anyhow::Error::from)?
        );
    } else {
        output::print_collection_list(&collections);
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(args: ShowArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    let (store, id) = control::open_for_collection(&args.id, settings).await?;
    let collection = store
        .collection(id)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| CliError::Usage(format!("collection {id} not found")))?;
    let weeks = store.weeks_of(id).await.map_err(anyhow::Error::from)?;
    let quota = store
        .quota_use(collection.instance_id, settings.amc.create_quota())
        .await
        .map_err(anyhow::Error::from)?;
    let waiting = crate::store::daily_limit_wait(&collection, &weeks, &quota, chrono::Utc::now());
    let next_due = next_week_due_of(&collection, &weeks, settings);
    let served = store.served_weeks(id).await.map_err(anyhow::Error::from)?;
    let refusal = crate::store::create_refusal(&weeks, chrono::Utc::now());
    if args.json {
        let mut json = output::collection_json(&collection, &weeks);
        output::add_served(&mut json, &weeks, &served);
        json["waiting_for_daily_limit_until"] = serde_json::json!(waiting);
        json["daily_limit"] = serde_json::json!(quota);
        json["keep_fresh"] = serde_json::json!(collection.keep_fresh);
        json["next_week_due"] = serde_json::json!(next_due);
        json["held_reason"] = serde_json::json!(collection.held_reason);
        json["create_refusal"] = serde_json::json!(refusal);
        json["parameters"] = collection.parameters.to_json();
        println!("{json}");
    } else {
        output::print_collection(&collection, &weeks, &served);
        if !collection.parameters.is_empty() {
            let text = collection.parameters.to_canonical_json();
            println!("parameters {}", crate::escape::escape_controls(&text));
        }
        if let Some(due) = next_due {
            println!(
                "keeps itself fresh: the next week is due {}",
                due.to_rfc3339()
            );
        }
        if let Some(until) = waiting {
            println!("waiting for the daily limit until {until} ({} of {} executions used in the window)", quota.used, quota.limit);
        }
        if let Some(reason) = &collection.held_reason {
            let reason = crate::escape::escape_controls(reason);
            println!("held: {reason} (`collection resume` releases it)");
        }
        if let Some(refusal) = &refusal {
            println!("{}", crate::escape::escape_controls(refusal));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// When a keep-fresh collection gains its next week; `None` for a plain backfill or a cancelled one.
fn next_week_due_of(
    collection: &crate::store::model::Collection,
    weeks: &[crate::store::model::Week],
    settings: &Settings,
) -> Option<chrono::DateTime<chrono::Utc>> {
    if !collection.keep_fresh || collection.status == crate::status::CollectionStatus::Cancelled {
        return None;
    }
    let last = weeks.iter().max_by_key(|week| week.week_start_date)?;
    crate::store::next_week_due(
        crate::weeks::Week {
            start: last.week_start_date,
            end: last.week_end_date,
        },
        &collection.time_zone,
        settings.collection.data_lag_days,
    )
}
