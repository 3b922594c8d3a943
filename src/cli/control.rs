//! `collection pause|resume|cancel|retry-failed|watch`: the operator's controls (which
//! `fleet ...` applies to each collection of a fleet). The CLI only
//! changes the database; a running daemon applies the change at its next scan or poll.

use std::process::ExitCode;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{open_existing_store, CliError};
use crate::config::Settings;
use crate::ids::CollectionId;
use crate::status::{CollectionStatus, WeekStatus};
use crate::store::{Control, Store, StoreError};

/// `watch` asks the local daemon about its credentials every this many refreshes (2 s).
const CREDENTIALS_EVERY: u32 = 4;
/// How long `watch` waits for the daemon's `/status`; a daemon that is not there costs nothing.
const DAEMON_ASK_TIMEOUT: Duration = Duration::from_millis(500);

/// Checks a collection id argument before anything is opened: a whole id, or a prefix of at
/// least `MIN_ID_PREFIX` characters.
pub fn check_id(text: &str) -> Result<(), CliError> {
    if crate::store::is_collection_ref(text.trim()) {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "`{text}` is not a collection UUID or a prefix of one (at least {} characters)",
            crate::store::MIN_ID_PREFIX
        )))
    }
}

/// The collection a (possibly abbreviated) id names; unknown or ambiguous is bad input.
pub async fn resolve_id(store: &Store, text: &str) -> Result<CollectionId, CliError> {
    store
        .resolve_collection(text)
        .await
        .map_err(|error| match error {
            StoreError::NotFound(message) | StoreError::Ambiguous(message) => {
                CliError::Usage(message)
            }
            other => CliError::Runtime(other.into()),
        })
}

/// Opens the database and finds the collection an id or unique id prefix names (bad input
/// otherwise). Every command taking a collection id goes through here.
pub async fn open_for_collection(
    text: &str,
    settings: &Settings,
) -> Result<(Store, CollectionId), CliError> {
    check_id(text)?;
    let store = open_existing_store(settings).await?;
    let id = resolve_id(&store, text).await?;
    Ok((store, id))
}

/// A change the store refused (an invalid transition, something not found) is bad input
/// (exit 2); anything else is a runtime failure.
pub fn refusal_is_usage(error: StoreError) -> CliError {
    match error {
        StoreError::InvalidTransition(message) | StoreError::NotFound(message) => {
            CliError::Usage(message)
        }
        other => CliError::Runtime(other.into()),
    }
}

pub async fn run_control(
    id: &str,
    control: Control,
    settings: &Settings,
) -> Result<ExitCode, CliError> {
    let (store, id) = open_for_collection(id, settings).await?;
    println!("{}", apply(&store, id, control).await?);
    Ok(ExitCode::SUCCESS)
}

/// Applies `control` to one collection and says what it did (`collection X is now S (...)`);
/// a collection that does not allow it is bad input. Every control of the CLI goes through here.
pub async fn apply(store: &Store, id: CollectionId, control: Control) -> Result<String, CliError> {
    let changed = store
        .apply_control(id, control)
        .await
        .map_err(refusal_is_usage)?;
    let collection = store
        .collection(id)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| CliError::Usage(format!("collection {id} not found")))?;
    let detail = match control {
        Control::Cancel => format!(" ({changed} unfinished weeks cancelled; running AMC executions are cancelled by the daemon)"),
        Control::RetryFailed => format!(" ({changed} failed weeks back to pending)"),
        Control::Pause => " (no new submissions; running executions finish and are stored)".to_string(),
        Control::Resume => String::new(),
    };
    Ok(format!(
        "collection {id} is now {}{detail}",
        collection.status
    ))
}

/// Shows live progress until the collection ends: exit 0 when completed, 1 otherwise.
pub async fn watch(id: &str, settings: &Settings) -> Result<ExitCode, CliError> {
    let (store, id) = open_for_collection(id, settings).await?;
    watch_all(&store, &[(id, id.to_string())], settings).await
}

/// Live progress of every collection of `members` (id, label), one bar each, until all ended:
/// exit 0 when all completed, 1 otherwise. Each end is told once, as it happens.
pub async fn watch_all(
    store: &Store,
    members: &[(CollectionId, String)],
    settings: &Settings,
) -> Result<ExitCode, CliError> {
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    let style =
        ProgressStyle::with_template("{prefix} [{bar:40.green/blue}] {pos:>3}/{len:3} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut watched: Vec<_> = members
        .iter()
        .map(|(id, label)| {
            let bar = bars.add(ProgressBar::new(0));
            bar.set_style(style.clone());
            bar.set_prefix(label.clone());
            (*id, label, bar, String::new(), None::<CollectionStatus>)
        })
        .collect();
    let mut credentials = None;
    let mut refresh: u32 = 0;
    loop {
        // The outage lives in the daemon's memory, not the database: ask its endpoint.
        if refresh % CREDENTIALS_EVERY == 0 {
            credentials = daemon_credentials(settings).await;
        }
        refresh = refresh.wrapping_add(1);
        for (id, label, bar, last_line, ended) in watched.iter_mut().filter(|w| w.4.is_none()) {
            let status = refresh_bar(store, *id, bar, settings.amc.create_quota())
                .await
                .map_err(anyhow::Error::from)?;
            if let Some(outage) = &credentials {
                bar.set_message(format!("{} | {outage}", bar.message()));
            }
            // Without a terminal the bar is invisible: print a plain line whenever progress changes.
            let line = format!(
                "{}/{} completed | {}",
                bar.position(),
                bar.length().unwrap_or(0),
                bar.message()
            );
            if bar.is_hidden() && line != *last_line {
                eprintln!("{label}: {line}");
                *last_line = line;
            }
            match status {
                CollectionStatus::Completed => {
                    bar.finish();
                    println!("collection {id} completed");
                    *ended = Some(status);
                }
                CollectionStatus::Failed | CollectionStatus::Cancelled => {
                    bar.abandon();
                    println!("collection {id} ended {status}");
                    *ended = Some(status);
                }
                _ => {}
            }
        }
        if watched.iter().all(|w| w.4.is_some()) {
            let all_completed = watched
                .iter()
                .all(|w| w.4 == Some(CollectionStatus::Completed));
            return Ok(if all_completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// "credentials failing since T: reason" from the local daemon's `/status`, when one answers
/// and its credentials are failing.
async fn daemon_credentials(settings: &Settings) -> Option<String> {
    if !settings.http.enabled {
        return None;
    }
    let url = super::status::status_url(None, settings.http.bind).ok()?;
    let tree = super::status::fetch_tree(&url, settings.http.token.as_ref(), DAEMON_ASK_TIMEOUT)
        .await
        .ok()?;
    let outage = tree.gateway.credentials.describe()?;
    Some(crate::escape::escape_controls(&outage).into_owned())
}

async fn refresh_bar(
    store: &Store,
    id: CollectionId,
    bar: &ProgressBar,
    quota: crate::store::CreateQuota,
) -> Result<CollectionStatus, StoreError> {
    let collection = store
        .collection(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("collection {id} not found")))?;
    let weeks = store.weeks_of(id).await?;
    let count = |status: WeekStatus| weeks.iter().filter(|w| w.status == status).count();
    bar.set_length(weeks.len() as u64);
    bar.set_position(count(WeekStatus::Completed) as u64);
    let used = store.quota_use(collection.instance_id, quota).await?;
    let now = chrono::Utc::now();
    let mut waiting = crate::store::daily_limit_wait(&collection, &weeks, &used, now)
        .map(|until| format!(" | waiting for the daily limit until {until}"))
        .unwrap_or_default();
    // Held (AMC will not run the query) or refused creates: said as AMC said it, escaped.
    let held = collection
        .held_reason
        .as_deref()
        .map(|r| format!("held: {r}"));
    if let Some(why) = held.or_else(|| crate::store::create_refusal(&weeks, now)) {
        waiting = format!("{waiting} | {}", crate::escape::escape_controls(&why));
    }
    bar.set_message(format!(
        "{} | {} running, {} failed, {} pending{waiting}",
        collection.status,
        weeks.iter().filter(|w| w.status.is_in_flight()).count(),
        count(WeekStatus::Failed),
        count(WeekStatus::Pending)
    ));
    Ok(collection.status)
}
