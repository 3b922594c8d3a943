//! Request and reply types of workflow executions, and their JSON wire mapping.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::error::AmcError;

/// AMC's local-time wire format (`yyyy-MM-ddTHH:mm:ss`, no zone suffix).
pub(crate) const LOCAL_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// An explicit execution window: local times in `time_zone`, `end` exclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub time_zone: chrono_tz::Tz,
}

/// What to run: a workflow saved on the instance, or an ad-hoc SQL query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkflowSpec {
    Saved { workflow_id: String },
    Inline { sql_query: String },
}

/// One execution request.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateExecution {
    pub window: TimeWindow,
    pub workflow: WorkflowSpec,
    pub parameter_values: Option<Map<String, Value>>,
}

impl CreateExecution {
    pub(crate) fn to_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("timeWindowType".into(), "EXPLICIT".into());
        body.insert(
            "timeWindowStart".into(),
            self.window.start.format(LOCAL_FORMAT).to_string().into(),
        );
        body.insert(
            "timeWindowEnd".into(),
            self.window.end.format(LOCAL_FORMAT).to_string().into(),
        );
        body.insert(
            "timeWindowTimeZone".into(),
            self.window.time_zone.name().into(),
        );
        match &self.workflow {
            WorkflowSpec::Saved { workflow_id } => {
                body.insert("workflowId".into(), workflow_id.as_str().into());
            }
            WorkflowSpec::Inline { sql_query } => {
                let mut workflow = Map::new();
                workflow.insert("sqlQuery".into(), sql_query.as_str().into());
                body.insert("workflow".into(), Value::Object(workflow));
            }
        }
        if let Some(values) = &self.parameter_values {
            body.insert("parameterValues".into(), Value::Object(values.clone()));
        }
        Value::Object(body)
    }
}

/// AMC execution status on the wire (decisions about an execution are taken on it); anything
/// unrecognised is kept verbatim and treated as non-terminal. What is stored is the collector's
/// `status::ExecutionStatus`, made from this one only by `ExecutionStatus::from_amc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecutionStatus {
    Pending,
    Running,
    Publishing,
    Succeeded,
    Failed,
    Rejected,
    Cancelled,
    Deleted,
    Unknown(String),
}

impl ExecutionStatus {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ExecutionStatus::Succeeded
                | ExecutionStatus::Failed
                | ExecutionStatus::Rejected
                | ExecutionStatus::Cancelled
                | ExecutionStatus::Deleted
        )
    }

    pub fn is_success(&self) -> bool {
        matches!(self, ExecutionStatus::Succeeded)
    }

    /// The AMC spelling (`PENDING`, ...), or the raw text of an unknown status.
    pub fn as_str(&self) -> &str {
        match self {
            ExecutionStatus::Pending => "PENDING",
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Publishing => "PUBLISHING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::Rejected => "REJECTED",
            ExecutionStatus::Cancelled => "CANCELLED",
            ExecutionStatus::Deleted => "DELETED",
            ExecutionStatus::Unknown(raw) => raw,
        }
    }
}

impl From<&str> for ExecutionStatus {
    fn from(raw: &str) -> Self {
        match raw.trim().to_ascii_uppercase().as_str() {
            "PENDING" => ExecutionStatus::Pending,
            "RUNNING" => ExecutionStatus::Running,
            "PUBLISHING" => ExecutionStatus::Publishing,
            "SUCCEEDED" => ExecutionStatus::Succeeded,
            "FAILED" => ExecutionStatus::Failed,
            "REJECTED" => ExecutionStatus::Rejected,
            "CANCELLED" => ExecutionStatus::Cancelled,
            "DELETED" => ExecutionStatus::Deleted,
            _ => ExecutionStatus::Unknown(raw.to_string()),
        }
    }
}

/// What AMC reports about one execution. Every field is optional on the wire.
#[derive(Clone, Debug)]
pub struct ExecutionInfo {
    /// `None` when a create reply omitted it: the caller must adopt the execution by listing.
    pub workflow_execution_id: Option<String>,
    pub workflow_id: Option<String>,
    pub status: ExecutionStatus,
    pub status_reason: Option<String>,
    pub create_time: Option<DateTime<Utc>>,
    pub window_start_utc: Option<DateTime<Utc>>,
    pub window_end_utc: Option<DateTime<Utc>>,
    pub window_start_original: Option<String>,
    pub window_end_original: Option<String>,
    pub time_zone_original: Option<String>,
    /// Only present when the reply was requested with `includeWorkflow=true`.
    pub sql_query: Option<String>,
    /// How AMC delivers the results (`outputChannels`); entries of unknown shape are skipped.
    pub output_channels: Vec<OutputChannel>,
}

/// One entry of `outputChannels`: a delivery channel (`DOWNLOAD`, `ACR`, `PUBLISH`) and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputChannel {
    /// Upper-cased channel type, e.g. `DOWNLOAD`.
    pub channel_type: String,
    /// Upper-cased status (`AVAILABLE`, `PENDING`, `FAILED`, `UNAVAILABLE`), empty when absent.
    pub status: String,
    pub status_reason: Option<String>,
}

impl ExecutionInfo {
    /// Why AMC cannot deliver this execution's results for download: its `DOWNLOAD` output
    /// channel is `FAILED` or `UNAVAILABLE` (AMC's `statusReason` when it gave one). Waiting for
    /// `downloadUrls` is pointless then.
    pub fn download_channel_failure(&self) -> Option<String> {
        self.output_channels
            .iter()
            .find(|c| {
                c.channel_type == "DOWNLOAD"
                    && matches!(c.status.as_str(), "FAILED" | "UNAVAILABLE")
            })
            .map(|c| match &c.status_reason {
                Some(reason) => reason.clone(),
                None => format!("the DOWNLOAD output channel is {}", c.status),
            })
    }
}

/// Reads `outputChannels` leniently: `channel` may be `{"type": ...}` or a bare string, and an
/// entry without a recognisable type is skipped rather than failing the whole reply.
fn parse_output_channels(value: Option<&Value>) -> Vec<OutputChannel> {
    let Some(Value::Array(items)) = value else {
        return Vec::new();
    };
    let upper = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(|s| s.trim().to_ascii_uppercase())
    };
    items
        .iter()
        .filter_map(|item| {
            let channel_type = match item.get("channel") {
                Some(Value::String(s)) => Some(s.trim().to_ascii_uppercase()),
                Some(channel @ Value::Object(_)) => upper(channel.get("type")),
                _ => upper(item.get("type")),
            }?;
            let status_reason = match item.get("statusReason") {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
                _ => None,
            };
            Some(OutputChannel {
                channel_type,
                status: upper(item.get("status")).unwrap_or_default(),
                status_reason,
            })
        })
        .collect()
}

/// Filters of `list_executions`; cancelled executions are always excluded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub min_creation_time: Option<DateTime<Utc>>,
    pub workflow_id: Option<String>,
    pub include_workflow: bool,
    /// Page size asked for (`limit`; AMC's default when `None`).
    pub limit: Option<u32>,
}

/// Parses one execution object, accepting the `{"workflowExecution": {...}}` wrapper too.
pub(crate) fn parse_execution_reply(body: &[u8]) -> Result<ExecutionInfo, AmcError> {
    let value = parse_json_object(body)?;
    Ok(ExecutionInfo::from_json(unwrap_execution(&value)))
}

/// Decodes a 2xx body that must be a JSON object (HTML error pages from proxies are not).
pub(crate) fn parse_json_object(body: &[u8]) -> Result<Value, AmcError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(AmcError::Decode("reply is not a JSON object".into())),
        Err(e) => Err(AmcError::Decode(format!(
            "{e}; body starts with {:?}",
            super::error::snippet(&String::from_utf8_lossy(&body[..body.len().min(80)]))
        ))),
    }
}

pub(crate) fn unwrap_execution(value: &Value) -> &Value {
    match value.get("workflowExecution") {
        Some(inner @ Value::Object(_)) => inner,
        _ => value,
    }
}

impl ExecutionInfo {
    pub(crate) fn from_json(v: &Value) -> Self {
        let text = |key: &str| match v.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let time = |key: &str| text(key).as_deref().and_then(parse_utc);
        let sql_query = text("sqlQuery").or_else(|| {
            v.get("workflow")
                .and_then(|w| w.get("sqlQuery"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        ExecutionInfo {
            workflow_execution_id: text("workflowExecutionId"),
            workflow_id: text("workflowId"),
            status: ExecutionStatus::from(text("status").as_deref().unwrap_or("")),
            status_reason: text("statusReason"),
            create_time: time("createTime"),
            window_start_utc: time("timeWindowStart"),
            window_end_utc: time("timeWindowEnd"),
            window_start_original: text("timeWindowStartOriginal"),
            window_end_original: text("timeWindowEndOriginal"),
            time_zone_original: text("timeWindowTimeZoneOriginal"),
            sql_query,
            output_channels: parse_output_channels(v.get("outputChannels")),
        }
    }
}

/// Parses an AMC UTC timestamp (`...Z`, RFC 3339, or a bare local format meaning UTC).
pub(crate) fn parse_utc(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    parse_naive(raw.trim_end_matches('Z')).map(|n| n.and_utc())
}

/// Parses `yyyy-MM-ddTHH:mm:ss[.fff]` (or with a space separator).
pub(crate) fn parse_naive(raw: &str) -> Option<NaiveDateTime> {
    let raw = raw.trim();
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::ExecutionInfo;

    fn info(channels: serde_json::Value) -> ExecutionInfo {
        ExecutionInfo::from_json(&json!({"status": "SUCCEEDED", "outputChannels": channels}))
    }

    #[test]
    fn a_failed_or_unavailable_download_channel_gives_amcs_reason() {
        let failed = info(json!([
            {"channel": {"type": "ACR"}, "status": "AVAILABLE"},
            {"channel": {"type": "download"}, "status": "Failed", "statusReason": "S3 write denied"},
        ]));
        assert_eq!(
            failed.download_channel_failure().as_deref(),
            Some("S3 write denied")
        );
        let unavailable = info(json!([{"channel": "DOWNLOAD", "status": "UNAVAILABLE"}]));
        assert_eq!(
            unavailable.download_channel_failure().as_deref(),
            Some("the DOWNLOAD output channel is UNAVAILABLE")
        );
    }

    #[test]
    fn available_pending_or_other_channels_are_no_failure() {
        for channels in [
            json!([{"channel": {"type": "DOWNLOAD"}, "status": "AVAILABLE"}]),
            json!([{"channel": {"type": "DOWNLOAD"}, "status": "PENDING"}]),
            json!([{"channel": {"type": "PUBLISH"}, "status": "FAILED"}]),
        ] {
            assert_eq!(info(channels).download_channel_failure(), None);
        }
    }

    #[test]
    fn output_channels_of_unknown_shape_are_ignored() {
        for channels in [
            json!(null),
            json!("DOWNLOAD"),
            json!({"channel": "DOWNLOAD", "status": "FAILED"}),
            json!([1, "x", null, {"status": "FAILED"}, {"channel": {"kind": "DOWNLOAD"}}]),
        ] {
            let parsed = info(channels);
            assert_eq!(parsed.download_channel_failure(), None);
            assert!(parsed.status.is_success());
        }
    }
}
