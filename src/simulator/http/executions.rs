//! Workflow-execution endpoints: create, get, list, cancel and downloadUrls, validated the way
//! AMC validates them.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{admit, ApiError};
use crate::simulator::execution::{reformat_sql_echo, Execution, Status};
use crate::simulator::results::{sql_workflow_key, WINDOW_FORMAT};
use crate::simulator::state::{CancelRefused, NewExecution, Shared};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    time_window_type: Option<String>,
    time_window_start: Option<String>,
    time_window_end: Option<String>,
    time_window_time_zone: Option<String>,
    workflow_id: Option<String>,
    workflow: Option<InlineWorkflow>,
    parameter_values: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InlineWorkflow {
    sql_query: Option<String>,
    workflow_id: Option<String>,
}

#[derive(Deserialize)]
struct CancelBody {
    status: Option<String>,
}

pub(super) async fn create(
    shared: web::Data<Shared>,
    request: HttpRequest,
    instance: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let spare_roll = admit(&shared, request.headers())?;
    let body: CreateBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("Invalid request body: {error}")))?;
    let new = validate_create(instance.into_inner(), body)?;
    let wrap = shared.wrap_next_reply();

    let [late_5xx_roll, ..] = shared.rolls();
    let mut state = shared.lock();
    let omit_id = spare_roll < state.faults.omit_id_rate;
    let now = Instant::now();
    if state.over_daily_limit(&new.instance, now) {
        state.stats.daily_limit_refusals += 1;
        let limit = state.faults.daily_limit;
        let message = (shared.config.daily_limit_message.clone()).unwrap_or_else(|| {
            format!("Ad-hoc workflow execution limit of {limit} per day reached for this instance")
        });
        let status = actix_web::http::StatusCode::from_u16(shared.config.daily_limit_status)
            .unwrap_or(actix_web::http::StatusCode::TOO_MANY_REQUESTS);
        return Err(ApiError::DailyLimit { status, message });
    }
    let instance_name = new.instance.clone();
    let id = state.create(&shared.config, new, now);
    state.record_daily_use(&instance_name, now);
    if late_5xx_roll < state.faults.create_then_5xx_rate {
        // Made, but the caller hears a gateway error: only listing tells it exists.
        state.stats.creates_answered_5xx += 1;
        return Err(ApiError::ServerFault(
            actix_web::http::StatusCode::BAD_GATEWAY,
        ));
    }
    if omit_id {
        state.stats.omitted_ids += 1;
    }
    if state.faults.hostile_text {
        state.stats.served_hostile_text += 1;
    }
    let object = state
        .executions
        .get(&id)
        .map(|execution| execution.to_json(now, &shared.clock, false, !omit_id))
        .unwrap_or_default();
    drop(state);
    Ok(execution_reply(object, wrap))
}

pub(super) async fn get(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    admit(&shared, request.headers())?;
    let (instance, id) = path.into_inner();
    let include_workflow = query_bool(&request, "includeWorkflow")?.unwrap_or(false);
    let wrap = shared.wrap_next_reply();

    let mut state = shared.lock();
    state.stats.gets += 1;
    let now = Instant::now();
    state.advance(&shared.config, &instance, now);
    let execution = find(&state.executions, &instance, &id)?;
    let mut object = execution.to_json(now, &shared.clock, include_workflow, true);
    let hostile = execution.hostile_text;
    let key = execution.id.clone();
    if execution.download_channel_failed && execution.status_at(now).0 == Status::Succeeded {
        state.stats.served_download_channel_failures += 1;
    }
    if hostile {
        state.stats.served_hostile_text += 1;
    }
    if state.faults.echo_sql_reformatted && reformat_sql_echo(&mut object) {
        state.stats.echoed_sql_reformatted += 1;
    }
    state.note_seen(&key, now);
    drop(state);
    Ok(execution_reply(object, wrap))
}

pub(super) async fn cancel(
    shared: web::Data<Shared>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    admit(&shared, request.headers())?;
    let (instance, id) = path.into_inner();
    let body: CancelBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::BadRequest(format!("Invalid request body: {error}")))?;
    if body.status.as_deref() != Some("CANCELLED") {
        return Err(ApiError::BadRequest(
            "Only status CANCELLED can be set on an execution".into(),
        ));
    }
    let mut state = shared.lock();
    let id = find(&state.executions, &instance, &id)?.id.clone();
    match state.cancel(&shared.config, &id, Instant::now()) {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(CancelRefused::Unknown) => Err(not_found(&id)),
        Err(CancelRefused::Status(status)) => Err(ApiError::BadRequest(format!(
            "Execution with ID {id} cannot be cancelled in status {}",
            status.as_str()
        ))),
    }
}

fn validate_create(instance: String, body: CreateBody) -> Result<NewExecution, ApiError> {
    let bad = |message: &str| ApiError::BadRequest(message.to_owned());
    if body.time_window_type.as_deref() != Some("EXPLICIT") {
        return Err(bad("timeWindowType must be EXPLICIT for explicit windows"));
    }
    let start = parse_bound(body.time_window_start.as_deref(), "timeWindowStart")?;
    let end = parse_bound(body.time_window_end.as_deref(), "timeWindowEnd")?;
    if end <= start {
        return Err(bad("timeWindowEnd must be after timeWindowStart"));
    }
    let time_zone = body
        .time_window_time_zone
        .unwrap_or_else(|| "UTC".to_owned());
    let zone: Tz = time_zone
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("Invalid timeWindowTimeZone {time_zone}")))?;

    let inline = body.workflow.as_ref();
    let sql_query = inline.and_then(|workflow| workflow.sql_query.clone());
    let (workflow_id, workflow_key) = match (&body.workflow_id, &sql_query) {
        (Some(id), None) if !id.trim().is_empty() => (id.clone(), id.clone()),
        (None, Some(sql)) => {
            if sql.trim().is_empty() || sql.contains(['\n', '\r']) {
                return Err(bad("sqlQuery must be a non-empty single line"));
            }
            check_single_line_sql(sql)?;
            let id = inline
                .and_then(|workflow| workflow.workflow_id.clone())
                .unwrap_or_else(|| format!("transient_{}", uuid::Uuid::new_v4()));
            (id, sql_workflow_key(sql))
        }
        _ => {
            return Err(bad(
                "Exactly one of workflowId or workflow.sqlQuery is required",
            ))
        }
    };
    Ok(NewExecution {
        instance,
        workflow_id,
        workflow_key,
        sql_query,
        parameter_values: body.parameter_values,
        start_original: start.format(WINDOW_FORMAT).to_string(),
        end_original: end.format(WINDOW_FORMAT).to_string(),
        start_date: start.date(),
        time_zone,
        start_utc: local_to_utc(zone, start),
        end_utc: local_to_utc(zone, end),
    })
}

/// AMC parses the single line it receives: a `--` there comments out the rest of the query, and
/// an unterminated literal or comment is a syntax error. Such a create is refused with 400 (AMC
/// validates the query at create time), so a client that folded comments into the line is caught
/// at once instead of storing the results of a truncated query.
fn check_single_line_sql(sql: &str) -> Result<(), ApiError> {
    let invalid = |detail: String| ApiError::BadRequest(format!("Invalid sqlQuery: {detail}"));
    match crate::sql::scan(sql) {
        Err(error) => Err(invalid(format!("syntax error: {error}"))),
        Ok(scanned) => match scanned.first_line_comment {
            Some(at) => Err(invalid(format!(
                "the -- comment at column {} comments out the rest of the single-line query",
                at.column
            ))),
            None if scanned.text.is_empty() => Err(invalid("the query is only comments".into())),
            None => Ok(()),
        },
    }
}

pub(super) fn parse_bound(raw: Option<&str>, field: &str) -> Result<NaiveDateTime, ApiError> {
    raw.and_then(|raw| NaiveDateTime::parse_from_str(raw, WINDOW_FORMAT).ok())
        .ok_or_else(|| ApiError::BadRequest(format!("{field} must be yyyy-MM-ddTHH:mm:ss")))
}

/// Local wall time to UTC; an ambiguous time takes the earlier instant and a time skipped by
/// a DST jump is moved past the gap, as a lenient server would.
pub(super) fn local_to_utc(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    (0..=2)
        .find_map(|hours| {
            zone.from_local_datetime(&(local + chrono::Duration::hours(hours)))
                .earliest()
        })
        .map(|at| at.with_timezone(&Utc))
        .unwrap_or_else(|| local.and_utc())
}

pub(super) fn find<'a>(
    executions: &'a std::collections::HashMap<String, Execution>,
    instance: &str,
    id: &str,
) -> Result<&'a Execution, ApiError> {
    executions
        .get(id)
        // A hostile-text id is the execution's uuid followed by text (see `HOSTILE_TEXT`).
        .or_else(|| executions.get(id.get(..36)?))
        .filter(|execution| execution.instance == instance)
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Workflow execution with ID {id} not found"))
}

fn execution_reply(object: Value, wrap: bool) -> HttpResponse {
    if wrap {
        HttpResponse::Ok().json(json!({ "workflowExecution": object }))
    } else {
        HttpResponse::Ok().json(object)
    }
}

fn query_pairs(request: &HttpRequest) -> impl Iterator<Item = (String, String)> + '_ {
    url::form_urlencoded::parse(request.query_string().as_bytes()).into_owned()
}

pub(super) fn query_value(request: &HttpRequest, name: &str) -> Option<String> {
    query_pairs(request)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

pub(super) fn query_bool(request: &HttpRequest, name: &str) -> Result<Option<bool>, ApiError> {
    query_value(request, name)
        .map(|value| match value.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ApiError::BadRequest(format!(
                "{name} must be true or false"
            ))),
        })
        .transpose()
}

/// Percent-encodes one URL path segment (everything but unreserved characters).
pub(super) fn encode_segment(text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}
