//! `amc-collector status [--url URL] [--token T] [--json]`: prints the actor tree of a running
//! daemon, read from its `/status` endpoint.
//!
//! A malformed URL or a refused token is the user's to fix (exit 2); no daemon answering, or one
//! answering nonsense, is exit 1. Either way the error is one line.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::CliError;
use crate::config::Settings;
use crate::escape::escape_controls;
use crate::observe::{GatewayNode, SupervisorNode, TreeStatus};

/// How long the daemon may take to answer; it answers in milliseconds when healthy.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Base URL of the daemon's inspection endpoint (default: http://<http.bind>).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Bearer token (default: `http.token` from the configuration, e.g. AMC_COLLECTOR__HTTP__TOKEN).
    #[arg(long, value_name = "TOKEN", value_parser = parse_secret)]
    pub token: Option<SecretString>,
    /// Print the tree as the JSON the daemon serves.
    #[arg(long)]
    pub json: bool,
}

fn parse_secret(value: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(value.to_string()))
}

/// Fetches `/status` and prints it.
pub async fn run(args: StatusArgs, settings: &Settings) -> Result<ExitCode, CliError> {
    let url = status_url(args.url.as_deref(), settings.http.bind)?;
    let token = args.token.as_ref().or(settings.http.token.as_ref());
    let tree = fetch_tree(&url, token, REQUEST_TIMEOUT).await?;
    if args.json {
        let pretty =
            serde_json::to_string_pretty(&tree).map_err(|e| CliError::Runtime(e.into()))?;
        println!("{pretty}");
    } else {
        print!("{}", render_tree(&tree, url.as_str()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The actor tree from a daemon's `/status` (also `watch`'s view of the credentials).
pub async fn fetch_tree(
    url: &url::Url,
    token: Option<&SecretString>,
    timeout: Duration,
) -> Result<TreeStatus, CliError> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| CliError::Runtime(e.into()))?;
    let mut request = client.get(url.clone());
    if let Some(token) = token {
        request = request.bearer_auth(token.expose_secret());
    }
    let response = request.send().await.map_err(|error| {
        // The chain ends in the socket error ("Connection refused"), which says why.
        let cause = std::error::Error::source(&error)
            .map(|source| format!(": {}", root_cause(source)))
            .unwrap_or_default();
        CliError::Runtime(anyhow::anyhow!("no daemon answers at {url}{cause}"))
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(CliError::Usage(format!(
            "the daemon at {url} refused the token (HTTP 401): pass --token or set AMC_COLLECTOR__HTTP__TOKEN"
        )));
    }
    let body = response.text().await.map_err(|error| {
        CliError::Runtime(anyhow::anyhow!(
            "reading the reply from {url} failed: {error}"
        ))
    })?;
    if !status.is_success() {
        let first = body.lines().next().unwrap_or_default();
        return Err(CliError::Runtime(anyhow::anyhow!(
            "the daemon at {url} answered HTTP {status}: {first}"
        )));
    }
    serde_json::from_str(&body).map_err(|error| {
        CliError::Runtime(anyhow::anyhow!(
            "{url} did not answer with an actor tree: {error}"
        ))
    })
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// The `/status` URL: from `--url` (a base URL, or the `/status` URL itself) or from `http.bind`.
pub fn status_url(given: Option<&str>, bind: SocketAddr) -> Result<url::Url, CliError> {
    let Some(given) = given else {
        // A wildcard bind is reached through loopback.
        let host = match bind.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let base = format!("http://{}/status", SocketAddr::new(host, bind.port()));
        return url::Url::parse(&base).map_err(|e| CliError::Usage(format!("bad http.bind: {e}")));
    };
    let bad = |why: &str| CliError::Usage(format!("invalid --url `{given}`: {why}"));
    let mut url = url::Url::parse(given.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(|host| host.is_empty()) {
        return Err(bad("a host is required"));
    }
    if !url.path().trim_end_matches('/').ends_with("/status") {
        let path = format!("{}/status", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

/// The tree as indented text.
pub fn render_tree(tree: &TreeStatus, url: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "amc-collector daemon at {url} ({})",
        tree.taken_at.to_rfc3339()
    );
    write_supervisor(&mut out, &tree.supervisor);
    write_gateway(&mut out, &tree.gateway, tree.taken_at);
    let _ = writeln!(
        out,
        "db writer: {} write(s) in flight",
        tree.db_writer.writes_in_flight
    );
    if let Some(alerts) = &tree.alerts {
        let _ = writeln!(out, "alerts: {}", describe_alerts(alerts));
    }
    for held in &tree.held {
        let _ = writeln!(
            out,
            "collection {}  held: {}",
            held.collection_id,
            escape_controls(&held.reason)
        );
    }
    out
}

/// The supervisor's line and one line per collection actor.
fn write_supervisor(out: &mut String, supervisor: &SupervisorNode) {
    let _ = writeln!(
        out,
        "supervisor: {} collection actor(s), {} restart(s), {} given up{}",
        supervisor.children.len(),
        supervisor.restarts_total,
        supervisor.gave_up_total,
        if supervisor.shutting_down {
            ", SHUTTING DOWN"
        } else {
            ""
        }
    );
    for (index, child) in supervisor.children.iter().enumerate() {
        let branch = branch(index, supervisor.children.len());
        let state = if child.running {
            "running"
        } else {
            "restarting"
        };
        let progress = match &child.progress {
            Some(p) => format!(
                "weeks active {}, waiting retry {}, done {}{}{}",
                p.active,
                p.waiting_retry,
                p.done,
                p.waiting_daily_limit_until
                    .map(|until| format!(", waiting for the daily limit until {until}"))
                    .unwrap_or_default(),
                (p.create_refusal.as_deref())
                    .map(|refusal| format!(", {}", escape_controls(refusal)))
                    .unwrap_or_default()
            ),
            None => "progress unavailable".to_string(),
        };
        let _ = writeln!(
            out,
            "{branch} collection {}  generation {}  {state}  {progress}  recent crashes {}",
            child.collection_id, child.generation, child.recent_crashes
        );
    }
}

/// The gateway's line, a credentials outage if there is one, and one line per instance.
fn write_gateway(out: &mut String, gateway: &GatewayNode, taken_at: DateTime<Utc>) {
    let _ = writeln!(
        out,
        "gateway: limit {} per instance, token {}, {} request(s), {} rate limited, {} retried",
        gateway.limit,
        token_expiry(gateway.token_expires_at, taken_at),
        gateway.requests_total,
        gateway.rate_limited_total,
        gateway.retries_total
    );
    // The outage names the token endpoint's answer and instances come from configuration: both
    // are escaped like every outside text printed to a terminal.
    if let Some(outage) = gateway.credentials.describe() {
        let outage = escape_controls(&outage);
        let next = gateway
            .credentials
            .next_attempt_at
            .map(|at| format!("; next attempt at {}", at.to_rfc3339()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {outage} ({} failed refresh(es){next}); AMC calls wait",
            branch(0, gateway.slots.len() + 1),
            gateway.credentials.consecutive_failures
        );
    }
    // Named sets: one line each that fails, naming the instances it holds.
    for set in &gateway.credential_sets {
        if set.name == crate::amc::DEFAULT_CREDENTIAL_SET {
            continue;
        }
        if let Some(line) = set.describe() {
            let _ = writeln!(
                out,
                "{} {}; instances {} wait",
                branch(0, gateway.slots.len() + 1),
                escape_controls(&line),
                escape_controls(&set.instances.join(","))
            );
        }
    }
    for (index, (instance, slots)) in gateway.slots.iter().enumerate() {
        let branch = branch(index, gateway.slots.len());
        let instance = escape_controls(instance);
        let _ = writeln!(
            out,
            "{branch} instance {instance}  in use {}/{}  waiting {}  peak {}",
            slots.in_use, gateway.limit, slots.waiting, slots.peak
        );
    }
}

/// `3 undelivered (2 retrying), oldest from T`, or `none undelivered`.
fn describe_alerts(alerts: &crate::store::UndeliveredAlerts) -> String {
    if alerts.count == 0 {
        return "none undelivered".to_string();
    }
    let oldest = alerts
        .oldest_at
        .map(|at| format!(", oldest from {}", at.to_rfc3339()))
        .unwrap_or_default();
    format!(
        "{} undelivered ({} retrying){oldest}",
        alerts.count, alerts.retrying
    )
}

fn branch(index: usize, len: usize) -> &'static str {
    if index + 1 == len {
        "└─"
    } else {
        "├─"
    }
}

fn token_expiry(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match expires_at {
        None => "not fetched yet".to_string(),
        Some(at) => {
            let seconds = (at - now).num_seconds();
            if seconds <= 0 {
                format!("expired at {}", at.to_rfc3339())
            } else {
                format!(
                    "expires in {}m{:02}s ({})",
                    seconds / 60,
                    seconds % 60,
                    at.to_rfc3339()
                )
            }
        }
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
