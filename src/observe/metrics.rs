//! `/metrics`: the Prometheus text exposition format (version 0.0.4), written by hand.
//!
//! Every value is read at scrape time: counters from the AMC client's `AmcStats` and the
//! supervisor's status, gauges from the gateway's slots and the database. The actors keep no
//! metrics state of their own, and no metrics crate is needed for the ~15 series served here.

use std::fmt::Write as _;

use super::{with_timeout, ActorSnapshot, ObserveError, Targets, READ_TIMEOUT};
use crate::amc::Endpoint;
use crate::status::{CollectionStatus, WeekStatus};
pub use crate::store::DurationHistogram;
use crate::store::{Store, StoreError};

/// Content type of the Prometheus text exposition format (version 0.0.4) `render` writes.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the week duration histogram: AMC runs take minutes to hours.
pub const WEEK_DURATION_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];

/// What the database says at scrape time.
#[derive(Debug, Default)]
pub struct DbCounts {
    pub weeks_by_status: Vec<(String, i64)>,
    pub collections_by_status: Vec<(String, i64)>,
    pub week_durations: DurationHistogram,
    /// Alerts waiting in the outbox; `None` when no webhook is configured.
    pub alerts: Option<crate::store::UndeliveredAlerts>,
}

/// Asks the actors and the database, then renders. A database that fails still gives the actor
/// series, with `amc_collector_database_up 0`, so an outage is visible in the scrape itself.
pub async fn scrape(targets: &Targets) -> Result<String, ObserveError> {
    let actors = ActorSnapshot::take(targets, false).await?;
    let db = match with_timeout(READ_TIMEOUT, read_db(&targets.store)).await {
        Ok(mut db) => {
            if !targets.alerts_enabled {
                db.alerts = None;
            }
            Some(db)
        }
        Err(error) => {
            tracing::warn!(%error, "Metrics scrape: the database could not be read.");
            None
        }
    };
    Ok(render(&actors, db.as_ref()))
}

pub async fn read_db(store: &Store) -> Result<DbCounts, StoreError> {
    let (weeks_by_status, collections_by_status) = store.status_counts().await?;
    Ok(DbCounts {
        weeks_by_status,
        collections_by_status,
        week_durations: store.week_durations(&WEEK_DURATION_BUCKETS).await?,
        alerts: Some(store.undelivered_alerts().await?),
    })
}

/// Renders every series.
pub fn render(actors: &ActorSnapshot, db: Option<&DbCounts>) -> String {
    let mut out = Exposition::default();
    out.family(
        "amc_collector_build_info",
        "gauge",
        "Always 1; the labels name the running build.",
    );
    out.sample(
        "amc_collector_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    render_db(&mut out, db);
    render_gateway(&mut out, actors);
    let supervisor = &actors.supervisor;
    let running = supervisor.children.iter().filter(|c| c.running).count();
    out.family(
        "amc_collector_collection_actors",
        "gauge",
        "Collection actors under the supervisor, by state.",
    );
    out.sample(
        "amc_collector_collection_actors",
        &[("state", "running")],
        running,
    );
    out.sample(
        "amc_collector_collection_actors",
        &[("state", "restarting")],
        supervisor.children.len() - running,
    );
    out.family(
        "amc_collector_actor_restarts_total",
        "counter",
        "Actor restarts since the process started.",
    );
    out.sample(
        "amc_collector_actor_restarts_total",
        &[("actor", "collection")],
        supervisor.restarts_total,
    );
    out.single(
        "amc_collector_collections_given_up_total",
        "counter",
        "Collections marked failed after too many actor restarts since the process started.",
        supervisor.gave_up_total,
    );
    out.single(
        "amc_collector_db_writes_in_flight",
        "gauge",
        "Database writes started and not yet finished.",
        actors.writes_in_flight,
    );
    out.single(
        "amc_collector_shutting_down",
        "gauge",
        "1 once graceful shutdown has started.",
        u8::from(supervisor.shutting_down),
    );
    out.text
}

fn render_db(out: &mut Exposition, db: Option<&DbCounts>) {
    out.single(
        "amc_collector_database_up",
        "gauge",
        "1 when the database answered this scrape.",
        u8::from(db.is_some()),
    );
    let Some(db) = db else {
        return;
    };
    let count_of = |rows: &[(String, i64)], status: &str| {
        rows.iter()
            .filter(|(s, _)| s == status)
            .map(|(_, n)| *n)
            .sum::<i64>()
    };
    out.family("amc_collector_weeks", "gauge", "Weeks by status.");
    for status in WeekStatus::ALL {
        let n = count_of(&db.weeks_by_status, status.as_str());
        out.sample("amc_collector_weeks", &[("status", status.as_str())], n);
    }
    out.family(
        "amc_collector_collections",
        "gauge",
        "Collections by status.",
    );
    for status in CollectionStatus::ALL {
        let n = count_of(&db.collections_by_status, status.as_str());
        out.sample(
            "amc_collector_collections",
            &[("status", status.as_str())],
            n,
        );
    }
    let name = "amc_collector_week_duration_seconds";
    let histogram = &db.week_durations;
    out.family(
        name,
        "histogram",
        "Time from a completed week's last submission to its stored result.",
    );
    for (le, n) in WEEK_DURATION_BUCKETS.iter().zip(&histogram.buckets) {
        out.sample(&format!("{name}_bucket"), &[("le", &le.to_string())], n);
    }
    out.sample(
        &format!("{name}_bucket"),
        &[("le", "+Inf")],
        histogram.count,
    );
    out.sample(&format!("{name}_sum"), &[], histogram.sum_seconds);
    out.sample(&format!("{name}_count"), &[], histogram.count);
    if let Some(alerts) = &db.alerts {
        out.single(
            "amc_collector_alerts_undelivered",
            "gauge",
            "Alerts in the outbox not yet taken by the webhook.",
            alerts.count,
        );
        out.single(
            "amc_collector_alerts_retrying",
            "gauge",
            "Undelivered alerts whose delivery already failed at least once.",
            alerts.retrying,
        );
    }
}

fn render_gateway(out: &mut Exposition, actors: &ActorSnapshot) {
    let gateway = &actors.gateway;
    let requests = &gateway.requests;
    let name = "amc_collector_amc_requests_total";
    out.family(
        name,
        "counter",
        "HTTP attempts toward AMC, the token endpoint and the download host, by endpoint and status class.",
    );
    for endpoint in Endpoint::ALL {
        let stats = requests.endpoint(endpoint);
        let classes = [
            ("2xx", stats.status_2xx),
            ("3xx", stats.status_3xx),
            ("4xx", stats.status_4xx),
            ("5xx", stats.status_5xx),
            ("transport_error", stats.transport_errors),
        ];
        for (class, n) in classes {
            out.sample(
                name,
                &[("endpoint", endpoint.as_str()), ("class", class)],
                n,
            );
        }
    }
    out.single(
        "amc_collector_amc_rate_limited_total",
        "counter",
        "HTTP 429 replies received from AMC.",
        requests.rate_limited,
    );
    out.single(
        "amc_collector_amc_retries_total",
        "counter",
        "AMC calls repeated after a transient failure.",
        requests.retries,
    );
    out.single(
        "amc_collector_amc_token_refreshes_total",
        "counter",
        "Successful Login-with-Amazon access token refreshes.",
        requests.token_refreshes,
    );
    render_credentials(out, actors);
    render_slots(out, actors);
}

/// The access token and the health of Login-with-Amazon.
fn render_credentials(out: &mut Exposition, actors: &ActorSnapshot) {
    let gateway = &actors.gateway;
    if let Some(expires_at) = gateway.token_expires_at {
        out.single(
            "amc_collector_amc_token_expiry_timestamp_seconds",
            "gauge",
            "Unix time at which the cached access token expires.",
            expires_at.timestamp(),
        );
    }
    let credentials = &gateway.credentials;
    out.single(
        "amc_collector_credentials_failing",
        "gauge",
        "1 while Login-with-Amazon refuses or fails token refreshes (AMC calls wait), else 0.",
        u8::from(credentials.failing),
    );
    out.single(
        "amc_collector_amc_token_failures_total",
        "counter",
        "Failed Login-with-Amazon token refreshes (refusals, server errors, timeouts, garbled replies).",
        credentials.failures_total,
    );
    if let Some(since) = credentials.failing_since {
        out.single(
            "amc_collector_credentials_failing_since_timestamp_seconds",
            "gauge",
            "Unix time at which the current credentials outage began.",
            since.timestamp(),
        );
    }
    // Per set (`default` is `[amc]`'s): a failing or unavailable set holds only its instances.
    out.family(
        "amc_collector_credential_set_failing",
        "gauge",
        "1 while a credential set's token cannot be had (LwA refuses or fails it, or a secret cannot be read), else 0.",
    );
    for set in &gateway.credential_sets {
        let labels = [("set", set.name.as_str()), ("state", set.state.as_str())];
        out.sample(
            "amc_collector_credential_set_failing",
            &labels,
            u8::from(set.credentials.failing),
        );
    }
}

/// The gateway's slots per instance.
fn render_slots(out: &mut Exposition, actors: &ActorSnapshot) {
    let gateway = &actors.gateway;
    out.single(
        "amc_collector_executions_in_flight_limit",
        "gauge",
        "AMC executions allowed in flight per instance.",
        gateway.limit,
    );
    let mut instances: Vec<_> = gateway.slots.iter().collect();
    instances.sort_by(|a, b| a.0.cmp(b.0));
    out.family(
        "amc_collector_executions_in_flight",
        "gauge",
        "AMC executions holding a slot, per instance.",
    );
    for (instance, slots) in &instances {
        let labels = [("amc_instance", instance.as_str())];
        out.sample("amc_collector_executions_in_flight", &labels, slots.in_use);
    }
    out.family(
        "amc_collector_slot_waiters",
        "gauge",
        "Weeks waiting for an AMC slot, per instance.",
    );
    for (instance, slots) in &instances {
        let labels = [("amc_instance", instance.as_str())];
        out.sample("amc_collector_slot_waiters", &labels, slots.waiting);
    }
}

/// Accumulates exposition text.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let rendered: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape_label(value)))
                .collect();
            let _ = write!(self.text, "{{{}}}", rendered.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Label values come from the database (instance ids): escape as the format requires.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_with_quotes_backslashes_and_newlines_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn samples_render_in_the_text_format() {
        let mut out = Exposition::default();
        out.family("x_total", "counter", "Things.");
        out.sample("x_total", &[("a", "1"), ("b", "two")], 3);
        out.sample("x_total", &[], 4.5);
        assert_eq!(
            out.text,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"1\",b=\"two\"} 3\nx_total 4.5\n"
        );
    }
}
