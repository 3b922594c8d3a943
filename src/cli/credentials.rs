//! `credentials add|list`: named Login-with-Amazon credential sets, one per advertiser login.
//!
//! A set records *where* its secrets are (an environment variable of the daemon, or a file),
//! never a secret: `add` reads nothing secret and `list` prints locations and states only. The
//! state comes from the local daemon when one answers (what its gateway saw), otherwise from
//! reading the locations here (which says whether this shell could, not whether the daemon can).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{open_existing_store, CliError, ListArgs};
use crate::amc::{CredentialSetStatus, SecretLocation, DEFAULT_CREDENTIAL_SET};
use crate::app::open_store;
use crate::config::Settings;
use crate::escape::escape_controls;
use crate::output::cell;
use crate::store::model::{CredentialSetRow, Instance};
use crate::store::StoreError;

/// How long `list` waits for the local daemon's `/status`.
const DAEMON_ASK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Record where a credential set's secrets are (never the secrets).
    Add(CredentialsAddArgs),
    /// List credential sets, the instances using them and their state.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct CredentialsAddArgs {
    /// Name used by `instance add --credentials` (letters, digits, '.', '-', '_').
    #[arg(long)]
    pub name: String,
    /// Environment variable (of the daemon) holding the LwA refresh token.
    #[arg(long, value_name = "VAR")]
    pub refresh_token_env: Option<String>,
    /// File holding the LwA refresh token.
    #[arg(long, value_name = "PATH")]
    pub refresh_token_file: Option<PathBuf>,
    /// Environment variable holding the LwA client id (default: `[amc]`'s client id).
    #[arg(long, value_name = "VAR")]
    pub client_id_env: Option<String>,
    /// File holding the LwA client id.
    #[arg(long, value_name = "PATH")]
    pub client_id_file: Option<PathBuf>,
    /// Environment variable holding the LwA client secret (default: `[amc]`'s client secret).
    #[arg(long, value_name = "VAR")]
    pub client_secret_env: Option<String>,
    /// File holding the LwA client secret.
    #[arg(long, value_name = "PATH")]
    pub client_secret_file: Option<PathBuf>,
}

pub async fn run(command: CredentialsCommand, settings: &Settings) -> Result<ExitCode, CliError> {
    match command {
        CredentialsCommand::Add(args) => add(args, settings).await,
        CredentialsCommand::List(args) => list(args, settings).await,
    }
}

/// A set name: what `--credentials` takes; `default` is the `[amc]` set's.
pub(super) fn check_set_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !ok {
        return Err(CliError::Usage(format!(
            "--name must be 1-64 characters of letters, digits, '.', '-' or '_', got `{}`",
            escape_controls(name)
        )));
    }
    Ok(())
}

fn check_env_name(flag: &str, name: &str) -> Result<(), CliError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{flag} must name an environment variable (letters, digits, '_'), got `{}`",
            escape_controls(name)
        )))
    }
}

/// One secret's `--X-env`/`--X-file` pair: `(env, file)` with at most one given (exactly one
/// when `required`). A file is stored absolute: the daemon may run elsewhere.
fn location(
    what: &str,
    env: Option<String>,
    file: Option<PathBuf>,
    required: bool,
) -> Result<(Option<String>, Option<String>), CliError> {
    Ok(match (env, file) {
        (Some(_), Some(_)) => {
            return Err(CliError::Usage(format!(
                "give one of --{what}-env and --{what}-file, not both"
            )))
        }
        (None, None) if required => {
            return Err(CliError::Usage(format!(
                "give exactly one of --{what}-env and --{what}-file"
            )))
        }
        (None, None) => (None, None),
        (Some(name), None) => {
            check_env_name(&format!("--{what}-env"), &name)?;
            (Some(name), None)
        }
        (None, Some(path)) => {
            let absolute = std::path::absolute(&path)
                .map_err(|e| CliError::Usage(format!("--{what}-file {}: {e}", path.display())))?;
            let text = absolute.to_str().ok_or_else(|| {
                CliError::Usage(format!("--{what}-file {} is not UTF-8", path.display()))
            })?;
            (None, Some(text.to_string()))
        }
    })
}

async fn add(args: CredentialsAddArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    check_set_name(&args.name)?;
    if args.name == DEFAULT_CREDENTIAL_SET {
        return Err(CliError::Usage(format!(
            "`{DEFAULT_CREDENTIAL_SET}` is the [amc] credential set's name; choose another"
        )));
    }
    let (refresh_token_env, refresh_token_file) = location(
        "refresh-token",
        args.refresh_token_env,
        args.refresh_token_file,
        true,
    )?;
    let (client_id_env, client_id_file) =
        location("client-id", args.client_id_env, args.client_id_file, false)?;
    let (client_secret_env, client_secret_file) = location(
        "client-secret",
        args.client_secret_env,
        args.client_secret_file,
        false,
    )?;
    let row = CredentialSetRow {
        refresh_token_env,
        refresh_token_file,
        client_id_env,
        client_id_file,
        client_secret_env,
        client_secret_file,
    };
    let store = open_store(settings).await?;
    store
        .insert_credential_set(&args.name, &row)
        .await
        .map_err(|error| match error {
            StoreError::Conflict(message) => CliError::Usage(message),
            other => CliError::Runtime(other.into()),
        })?;
    println!("{}", args.name);
    Ok(ExitCode::SUCCESS)
}

/// One line of `credentials list`; never a secret.
#[derive(Debug, Serialize)]
struct SetLine {
    name: String,
    /// `null` for the `[amc]` set, whose secrets are the configuration's.
    refresh_token: Option<SecretLocation>,
    client_id: Option<SecretLocation>,
    client_secret: Option<SecretLocation>,
    instances: Vec<String>,
    /// `ok`, `failing` or `unavailable`.
    state: &'static str,
    reason: Option<String>,
    /// `daemon` (its gateway's view) or `cli` (the locations read by this command).
    checked_by: &'static str,
}

async fn list(args: ListArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    let store = open_existing_store(settings).await?;
    let sets = store
        .list_credential_sets()
        .await
        .map_err(anyhow::Error::from)?;
    let instances = store.list_instances().await.map_err(anyhow::Error::from)?;
    let daemon = daemon_sets(settings).await;
    let using = |name: Option<&str>| -> Vec<String> {
        instances
            .iter()
            .filter(|i: &&Instance| i.credential_set.as_deref() == name)
            .map(|i| i.instance_id.clone())
            .collect()
    };
    let mut lines = vec![SetLine {
        name: DEFAULT_CREDENTIAL_SET.to_string(),
        refresh_token: None,
        client_id: None,
        client_secret: None,
        instances: using(None),
        state: "ok",
        reason: None,
        checked_by: "cli",
    }];
    for set in &sets {
        let Some(source) = set.locations.source(&set.name) else {
            continue;
        };
        lines.push(SetLine {
            name: set.name.clone(),
            refresh_token: Some(source.refresh_token.clone()),
            client_id: source.client_id.clone(),
            client_secret: source.client_secret.clone(),
            instances: using(Some(&set.name)),
            state: "ok",
            reason: local_problem(&source),
            checked_by: "cli",
        });
    }
    for line in &mut lines {
        line.state = if line.reason.is_some() {
            "unavailable"
        } else {
            "ok"
        };
        if let Some(seen) = daemon
            .as_ref()
            .and_then(|d| d.iter().find(|s| s.name == line.name))
        {
            line.state = seen.state.as_str();
            line.reason = seen
                .credentials
                .last_error
                .clone()
                .filter(|_| seen.credentials.failing);
            line.checked_by = "daemon";
        }
    }
    print_lines(&lines, args.json)
}

/// Why this shell cannot read one of the set's secrets, if it cannot (the secret is dropped).
fn local_problem(source: &crate::amc::CredentialSource) -> Option<String> {
    [
        Some(&source.refresh_token),
        source.client_id.as_ref(),
        source.client_secret.as_ref(),
    ]
    .into_iter()
    .flatten()
    .find_map(|location| crate::amc::read_secret(location).err())
}

/// The local daemon's per-set states, when one answers.
async fn daemon_sets(settings: &Settings) -> Option<Vec<CredentialSetStatus>> {
    if !settings.http.enabled {
        return None;
    }
    let url = super::status::status_url(None, settings.http.bind).ok()?;
    let tree = super::status::fetch_tree(&url, settings.http.token.as_ref(), DAEMON_ASK_TIMEOUT)
        .await
        .ok()?;
    Some(tree.gateway.credential_sets)
}

fn print_lines(lines: &[SetLine], json: bool) -> Result<ExitCode, CliError> {
    if json {
        let text = serde_json::to_string(lines).map_err(anyhow::Error::from)?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let shown = |location: &Option<SecretLocation>| {
        location
            .as_ref()
            .map_or_else(|| "[amc]".to_string(), |l| l.to_string())
    };
    println!(
        "{:<20}  {:<30}  {:<20}  {:<20}  {:<24}  STATE",
        "NAME", "REFRESH TOKEN", "CLIENT ID", "CLIENT SECRET", "INSTANCES"
    );
    for line in lines {
        let state = match &line.reason {
            Some(reason) => format!("{}: {}", line.state, escape_controls(reason)),
            None => line.state.to_string(),
        };
        let checked = if line.checked_by == "cli" && line.name != DEFAULT_CREDENTIAL_SET {
            " (checked here; no daemon answered)"
        } else {
            ""
        };
        println!(
            "{:<20}  {:<30}  {:<20}  {:<20}  {:<24}  {state}{checked}",
            cell(&line.name, 20),
            cell(&shown(&line.refresh_token), 30),
            cell(&shown(&line.client_id), 20),
            cell(&shown(&line.client_secret), 20),
            cell(&line.instances.join(","), 24),
        );
    }
    Ok(ExitCode::SUCCESS)
}
