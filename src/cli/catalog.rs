//! `instance add|list` and `workflow add|list`: validate, then write one row; or print the
//! catalog (a table for people, `--json` for programs).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::open_existing_store;
use super::{CliError, ListArgs};
use crate::app::open_store;
use crate::config::Settings;
use crate::output::cell;
use crate::sql::single_line;
use crate::store::{NewInstance, StoreError, WorkflowSource};

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Register an AMC instance.
    Add(InstanceAddArgs),
    /// List registered instances.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct InstanceAddArgs {
    /// AMC instance id as used in API paths (e.g. amcabc12345).
    #[arg(long)]
    pub instance_id: String,
    /// AMC account (entity) id sent as Amazon-Advertising-API-AdvertiserId.
    #[arg(long)]
    pub advertiser_id: String,
    /// Marketplace id sent as Amazon-Advertising-API-MarketplaceId (e.g. ATVPDKIKX0DER).
    #[arg(long)]
    pub marketplace_id: String,
    /// Region of the instance: na, eu or fe.
    #[arg(long, default_value = "na")]
    pub region: String,
    /// Human-readable name (defaults to the instance id).
    #[arg(long)]
    pub name: Option<String>,
    /// Credential set whose token the instance's AMC calls carry (`credentials add`; default:
    /// the `[amc]` set).
    #[arg(long, value_name = "NAME")]
    pub credentials: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Register a workflow: inline SQL from a file, or a workflow saved in AMC.
    Add(WorkflowAddArgs),
    /// List registered workflows.
    List(ListArgs),
    /// Show a workflow's typed relation: its name and columns with their types.
    Show(super::views::WorkflowShowArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["sql_file", "amc_workflow_id"])))]
pub struct WorkflowAddArgs {
    /// Unique name used by `collection create --workflow`.
    #[arg(long)]
    pub name: String,
    /// File with the SQL; `{{start_date}}` and `{{end_date}}` are substituted per week.
    #[arg(long)]
    pub sql_file: Option<PathBuf>,
    /// Id of a workflow saved in AMC.
    #[arg(long)]
    pub amc_workflow_id: Option<String>,
}

/// Identifiers that end up in URL paths and headers: letters, digits, `.`, `-`, `_` only.
fn check_identifier(flag: &str, value: &str) -> Result<(), CliError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{flag} must be 1-128 characters of letters, digits, '.', '-' or '_', got `{value}`"
        )))
    }
}

fn conflict_is_usage(error: StoreError) -> CliError {
    match error {
        StoreError::Conflict(message) => CliError::Usage(message),
        other => CliError::Runtime(other.into()),
    }
}

pub async fn run_instance(
    command: InstanceCommand,
    settings: &Settings,
) -> Result<ExitCode, CliError> {
    let args = match command {
        InstanceCommand::Add(args) => args,
        InstanceCommand::List(args) => return list_instances(args, settings).await,
    };
    check_identifier("--instance-id", &args.instance_id)?;
    check_identifier("--advertiser-id", &args.advertiser_id)?;
    check_identifier("--marketplace-id", &args.marketplace_id)?;
    let region = args.region.to_ascii_lowercase();
    if !matches!(region.as_str(), "na" | "eu" | "fe") {
        return Err(CliError::Usage(format!(
            "--region must be na, eu or fe, got `{}`",
            args.region
        )));
    }
    let name = args.name.unwrap_or_else(|| args.instance_id.clone());
    if name.trim().is_empty() {
        return Err(CliError::Usage("--name must not be empty".into()));
    }
    let credential_set = match args.credentials.as_deref() {
        None | Some(crate::amc::DEFAULT_CREDENTIAL_SET) => None,
        Some(set) => Some(set),
    };
    let store = match credential_set {
        // A set can only exist in an existing database: naming one never creates a file.
        Some(set) => {
            super::credentials::check_set_name(set).map_err(|_| {
                CliError::Usage(format!("unknown credential set `{}`", cell(set, 64)))
            })?;
            let store = open_existing_store(settings).await?;
            let known = store
                .find_credential_set(set)
                .await
                .map_err(anyhow::Error::from)?;
            if known.is_none() {
                return Err(CliError::Usage(format!(
                    "unknown credential set `{set}` (see `credentials list`)"
                )));
            }
            store
        }
        None => open_store(settings).await?,
    };
    let instance = store
        .insert_instance_with_credentials(
            &NewInstance {
                instance_id: args.instance_id,
                instance_name: name,
                region,
                advertiser_id: args.advertiser_id,
                marketplace_id: args.marketplace_id,
            },
            credential_set,
        )
        .await
        .map_err(conflict_is_usage)?;
    println!("{}", instance.id);
    Ok(ExitCode::SUCCESS)
}

pub async fn run_workflow(
    command: WorkflowCommand,
    settings: &Settings,
) -> Result<ExitCode, CliError> {
    let args = match command {
        WorkflowCommand::Add(args) => args,
        WorkflowCommand::List(args) => return list_workflows(args, settings).await,
        WorkflowCommand::Show(args) => return super::views::show_workflow(args, settings).await,
    };
    if args.name.trim().is_empty() || args.name.len() > 200 {
        return Err(CliError::Usage("--name must be 1-200 characters".into()));
    }
    let source = match (args.sql_file, args.amc_workflow_id) {
        (Some(path), None) => WorkflowSource::Sql(read_sql(&path)?),
        (None, Some(id)) => {
            check_identifier("--amc-workflow-id", &id)?;
            WorkflowSource::Saved(id)
        }
        _ => {
            return Err(CliError::Usage(
                "give exactly one of --sql-file and --amc-workflow-id".into(),
            ))
        }
    };
    let store = open_store(settings).await?;
    let workflow = store
        .insert_workflow(&args.name, &source)
        .await
        .map_err(conflict_is_usage)?;
    println!("{}", workflow.id);
    Ok(ExitCode::SUCCESS)
}

/// Largest `--sql-file` accepted.
const MAX_SQL_FILE_BYTES: u64 = 1024 * 1024;

/// Reads the SQL file and checks that it can be sent as AMC's single line (`crate::sql`): an
/// unterminated literal, quoted identifier or comment, a line break inside a literal, or a file
/// that is only comments is refused with the position. The file is stored as written (comments
/// included, for the analyst); it is made single-line when each week is sent.
fn read_sql(path: &std::path::Path) -> Result<String, CliError> {
    use std::io::Read;
    let cannot_read = |error: std::io::Error| {
        CliError::Usage(format!(
            "cannot read --sql-file {}: {error}",
            path.display()
        ))
    };
    // Read one byte past the cap, never more: `/dev/zero` or a huge file cannot eat memory.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot_read)?
        .take(MAX_SQL_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_SQL_FILE_BYTES {
        return Err(CliError::Usage(format!(
            "--sql-file {} is larger than 1 MiB (a workflow's SQL is a query, not data)",
            path.display()
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("--sql-file {} is not UTF-8 text", path.display())))?;
    match single_line(&text) {
        Ok(_) => Ok(text),
        Err(crate::sql::SqlError::Empty) => Err(CliError::Usage(format!(
            "--sql-file {} contains no SQL (only comments, whitespace or `;`)",
            path.display()
        ))),
        Err(error) => Err(CliError::Usage(format!(
            "--sql-file {}: {error}",
            path.display()
        ))),
    }
}

async fn list_instances(args: ListArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    let store = open_existing_store(settings).await?;
    let instances = store.list_instances().await.map_err(anyhow::Error::from)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&instances).map_err(anyhow::Error::from)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20}  {:<24}  {:<6}  {:<20}  {:<14}  CREDENTIALS",
        "INSTANCE", "NAME", "REGION", "ADVERTISER", "MARKETPLACE"
    );
    for instance in &instances {
        println!(
            "{:<20}  {:<24}  {:<6}  {:<20}  {:<14}  {}",
            cell(&instance.instance_id, 20),
            cell(&instance.instance_name, 24),
            cell(&instance.region, 6),
            cell(&instance.advertiser_id, 20),
            cell(&instance.marketplace_id, 14),
            cell(
                instance
                    .credential_set
                    .as_deref()
                    .unwrap_or(crate::amc::DEFAULT_CREDENTIAL_SET),
                20
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn list_workflows(args: ListArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    let store = open_existing_store(settings).await?;
    let workflows = store.list_workflows().await.map_err(anyhow::Error::from)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&workflows).map_err(anyhow::Error::from)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<36}  {:<30}  SOURCE", "ID", "NAME");
    for workflow in &workflows {
        let source = match (&workflow.sql_query, &workflow.amc_workflow_id) {
            (Some(sql), _) => format!("inline SQL, {} lines", sql.lines().count()),
            (None, Some(saved)) => format!("saved in AMC as {}", cell(saved, 60)),
            (None, None) => "none".to_string(),
        };
        println!(
            "{:<36}  {:<30}  {source}",
            workflow.id,
            cell(&workflow.name, 30)
        );
    }
    Ok(ExitCode::SUCCESS)
}
