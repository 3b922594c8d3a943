//! One simulated workflow execution: what was submitted, when it got its slot, and how its AMC
//! status and JSON representation follow from the clock.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// AMC's text for windows refused by the overlap guard.
const OVERLAP_REJECTION: &str = "could not be run because too many workflows have already been \
run against the same input data sources in the same or overlapping time windows";

/// What the hostile-text fault appends to ids (as served: the simulator keys executions by the
/// plain uuid and finds a served id by that prefix), PENDING statuses and reasons: a newline and a
/// forged log line, a terminal escape sequence (clear screen) and a right-to-left override.
pub const HOSTILE_TEXT: &str =
    "\n2026-01-01T00:00:00.000000Z ERROR forged: line from AMC \u{1b}[2J\u{202e}";

/// `statusReason` of an execution that failed validation (`--fail-validation-sql`), worded as
/// AMC's validation errors are (observed behaviour reported by AMC users: FAILED moments after
/// create, the reason naming the offending column).
pub const VALIDATION_FAILURE: &str =
    "Query validation failed: Column 'no_such_column' cannot be resolved (line 1)";

/// How an execution ends once RUNNING is over; decided at create time from the fault windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeed,
    Fail,
    Reject,
    /// Accepted at create, then FAILED in validation a moment later with the same
    /// `statusReason` every time (`--fail-validation-sql`).
    FailValidation,
}

/// AMC execution status values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Running,
    Publishing,
    Succeeded,
    Failed,
    Rejected,
    Cancelled,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Publishing => "PUBLISHING",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::Rejected => "REJECTED",
            Status::Cancelled => "CANCELLED",
        }
    }
}

/// A submitted execution. Times are `Instant`s so the state machine is immune to wall-clock
/// jumps; they are mapped to UTC only when rendered.
#[derive(Debug)]
pub(crate) struct Execution {
    pub(crate) id: String,
    /// Creation order across the simulator; the list endpoint pages on it.
    pub(crate) seq: u64,
    pub(crate) instance: String,
    pub(crate) workflow_id: String,
    /// `workflowId`, or `sql:` plus 12 hex digits of the query's SHA-256; keys the result files.
    pub(crate) workflow_key: String,
    pub(crate) sql_query: Option<String>,
    pub(crate) parameter_values: Option<Value>,
    /// Window bounds as submitted but normalised to `yyyy-MM-ddTHH:mm:ss`.
    pub(crate) start_original: String,
    pub(crate) end_original: String,
    pub(crate) time_zone: String,
    pub(crate) start_utc: DateTime<Utc>,
    pub(crate) end_utc: DateTime<Utc>,
    pub(crate) created_at: Instant,
    /// Earliest moment the execution may leave PENDING (`pending_ms` after creation).
    pub(crate) eligible_at: Instant,
    /// When it got a slot and became RUNNING.
    pub(crate) run_started: Option<Instant>,
    pub(crate) running_for: Duration,
    pub(crate) publishing_for: Duration,
    pub(crate) outcome: Outcome,
    pub(crate) cancelled_at: Option<Instant>,
    /// Succeeds, but its DOWNLOAD output channel reports FAILED and downloadUrls is refused.
    pub(crate) download_channel_failed: bool,
    /// Served with `HOSTILE_TEXT` in its status while PENDING and in its `statusReason`.
    pub(crate) hostile_text: bool,
    /// How long after SUCCEEDED its result stays unpublished: DOWNLOAD channel PENDING and an
    /// empty downloadUrls list (the API models the channel as AVAILABLE | PENDING | FAILED |
    /// UNAVAILABLE; observed: PENDING right after the run ended).
    pub(crate) publish_lag: Duration,
    /// When a GET first reported the execution ended (any terminal status): how late a
    /// client saw the end is a cost of its polling (`SimulatorStats::seen_ended_delay_ms`).
    pub(crate) first_seen_ended: Option<Instant>,
}

impl Execution {
    /// The status at `now` and the instant it was entered. Only meaningful after the owning
    /// instance has been advanced to `now`.
    pub(crate) fn status_at(&self, now: Instant) -> (Status, Instant) {
        if let Some(cancelled) = self.cancelled_at {
            return (Status::Cancelled, cancelled);
        }
        let Some(started) = self.run_started else {
            return (Status::Pending, self.created_at);
        };
        let run_end = started + self.running_for;
        if now < run_end {
            return (Status::Running, started);
        }
        match self.outcome {
            Outcome::Fail | Outcome::FailValidation => (Status::Failed, run_end),
            Outcome::Reject => (Status::Rejected, run_end),
            Outcome::Succeed if now < run_end + self.publishing_for => {
                (Status::Publishing, run_end)
            }
            Outcome::Succeed => (Status::Succeeded, run_end + self.publishing_for),
        }
    }

    /// Whether the execution SUCCEEDED but its result is not published yet at `now`.
    pub(crate) fn unpublished_at(&self, now: Instant) -> bool {
        match self.status_at(now) {
            (Status::Succeeded, since) => now < since + self.publish_lag,
            _ => false,
        }
    }

    /// When the slot taken at `started` is given back if nothing cancels the execution.
    pub(crate) fn slot_release(&self, started: Instant) -> Instant {
        match self.outcome {
            Outcome::Succeed => started + self.running_for + self.publishing_for,
            Outcome::Fail | Outcome::Reject | Outcome::FailValidation => started + self.running_for,
        }
    }

    fn status_reason(&self, status: Status) -> Option<String> {
        let window = format!("{} to {}", self.start_original, self.end_original);
        match status {
            // The same text for every window: AMC's validation judges the query, not the week.
            Status::Failed if self.outcome == Outcome::FailValidation => {
                Some(VALIDATION_FAILURE.to_owned())
            }
            Status::Failed => Some(format!(
                "Query failed: simulated failure for window {window}"
            )),
            Status::Rejected => Some(format!(
                "Workflow execution {} {OVERLAP_REJECTION} (window {window})",
                self.id
            )),
            Status::Cancelled => Some("Cancelled by user request".to_owned()),
            _ => None,
        }
    }

    /// The AMC execution object as of `now`.
    pub(crate) fn to_json(
        &self,
        now: Instant,
        clock: &Clock,
        include_workflow: bool,
        include_id: bool,
    ) -> Value {
        let (status, changed) = self.status_at(now);
        let mut object = Map::new();
        if include_id {
            let id = if self.hostile_text {
                format!("{}{HOSTILE_TEXT}", self.id)
            } else {
                self.id.clone()
            };
            object.insert("workflowExecutionId".into(), json!(id));
        }
        object.insert("workflowId".into(), json!(self.workflow_id));
        if self.hostile_text && status == Status::Pending {
            // Not a status the client knows: it must keep polling and print the text escaped.
            object.insert("status".into(), json!(format!("QUEUED{HOSTILE_TEXT}")));
        } else {
            object.insert("status".into(), json!(status.as_str()));
        }
        if let Some(reason) = self.status_reason(status) {
            let reason = if self.hostile_text {
                format!("{reason}{HOSTILE_TEXT}")
            } else {
                reason
            };
            object.insert("statusReason".into(), json!(reason));
        }
        object.insert("createTime".into(), json!(clock.render(self.created_at)));
        object.insert("lastUpdatedTime".into(), json!(clock.render(changed)));
        object.insert("timeWindowType".into(), json!("EXPLICIT"));
        object.insert("timeWindowStart".into(), json!(render_utc(self.start_utc)));
        object.insert("timeWindowEnd".into(), json!(render_utc(self.end_utc)));
        object.insert("timeWindowStartOriginal".into(), json!(self.start_original));
        object.insert("timeWindowEndOriginal".into(), json!(self.end_original));
        object.insert("timeWindowTimeZoneOriginal".into(), json!(self.time_zone));
        object.insert("executionCategory".into(), json!("AD_HOC"));
        object.insert("outputS3URI".into(), json!("N/A"));
        if status == Status::Succeeded {
            let published = !self.unpublished_at(now);
            object.insert("outputChannels".into(), self.output_channels(published));
        }
        object.insert("workflowExecutionTimeoutSeconds".into(), json!(21600));
        if let Some(parameters) = &self.parameter_values {
            object.insert("parameterValues".into(), parameters.clone());
        }
        if include_workflow {
            if let Some(sql) = &self.sql_query {
                object.insert("sqlQuery".into(), json!(sql));
            }
        }
        Value::Object(object)
    }
}

impl Execution {
    /// `outputChannels` of a succeeded execution: its DOWNLOAD channel, AVAILABLE unless the
    /// channel-failure fault is on for its window, PENDING until it is `published`.
    fn output_channels(&self, published: bool) -> Value {
        if !published {
            json!([{"channel": {"type": "DOWNLOAD"}, "status": "PENDING"}])
        } else if self.download_channel_failed {
            json!([{
                "channel": {"type": "DOWNLOAD"},
                "status": "FAILED",
                "statusReason": super::download_faults::CHANNEL_FAILURE_REASON,
            }])
        } else {
            json!([{"channel": {"type": "DOWNLOAD"}, "status": "AVAILABLE"}])
        }
    }
}

/// Reformats the `sqlQuery` of an execution object the way a server that pretty-prints its echo
/// might: every space outside quotes doubled, a line break after the leading keyword and a
/// trailing space. Tokens and literals are untouched, so only the whitespace differs from what
/// was submitted. Returns whether the object carried a query.
pub(crate) fn reformat_sql_echo(object: &mut Value) -> bool {
    let Some(Value::String(sql)) = object.get_mut("sqlQuery") else {
        return false;
    };
    let mut echo = String::with_capacity(sql.len() * 2);
    let mut quote = None;
    let mut first_space = true;
    for c in sql.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            // A doubled quote closes then reopens: the toggle handles `''` and `""` alike.
            (Some(open), _) if c == open => quote = None,
            (None, ' ') if first_space => {
                first_space = false;
                echo.push('\n');
                continue;
            }
            (None, ' ') => echo.push(' '),
            _ => {}
        }
        echo.push(c);
    }
    echo.push(' ');
    *sql = echo;
    true
}

/// Maps monotonic instants to UTC timestamps from one reference pair taken at start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
    origin_utc: DateTime<Utc>,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            origin_utc: Utc::now(),
        }
    }

    pub(crate) fn to_utc(self, at: Instant) -> DateTime<Utc> {
        let offset = at.saturating_duration_since(self.origin);
        chrono::Duration::from_std(offset)
            .ok()
            .and_then(|offset| self.origin_utc.checked_add_signed(offset))
            .unwrap_or(self.origin_utc)
    }

    fn render(self, at: Instant) -> String {
        render_utc(self.to_utc(at))
    }
}

pub(crate) fn render_utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
