//! The list endpoint: filters by creation time, workflow id and cancelled status, and pages
//! with an opaque keyset `nextToken` so pages stay stable while executions are being created.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::executions::{local_to_utc, parse_bound, query_bool, query_value};
use super::{admit, ApiError};
use crate::simulator::execution::{reformat_sql_echo, Execution, Status};
use crate::simulator::state::Shared;

/// Page size of the list endpoint when `limit` is absent, and the largest one honoured.
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

pub(super) async fn list(
    shared: web::Data<Shared>,
    request: HttpRequest,
    instance: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admit(&shared, request.headers())?;
    let default_zone: Tz = shared
        .config
        .list_default_zone
        .parse()
        .unwrap_or(chrono_tz::UTC);
    let query = ListQuery::parse(&request, default_zone)?;
    let mut state = shared.lock();
    state.stats.lists += 1;
    let lag = state.faults.list_lag;
    let now = Instant::now();
    state.advance(&shared.config, &instance, now);
    let Some(ids) = state.instances.get(instance.as_str()).map(|i| &i.ids) else {
        return Ok(HttpResponse::Ok().json(json!({"executions": []})));
    };
    let ordered: Box<dyn Iterator<Item = &String>> = if query.ascending {
        Box::new(ids.iter())
    } else {
        Box::new(ids.iter().rev())
    };
    let mut page: Vec<&Execution> = ordered
        .filter_map(|id| state.executions.get(id))
        .filter(|execution| query.is_after_token(execution))
        .filter(|execution| query.matches(execution, now, &shared))
        .filter(|execution| now.saturating_duration_since(execution.created_at) >= lag)
        .take(query.limit + 1)
        .collect();
    let next_token = if page.len() > query.limit {
        page.truncate(query.limit);
        page.last().map(|last| format!("sim-{}", last.seq))
    } else {
        None
    };
    let mut executions: Vec<Value> = page
        .iter()
        .map(|execution| execution.to_json(now, &shared.clock, query.include_workflow, true))
        .collect();
    let listed: Vec<String> = page.iter().map(|execution| execution.id.clone()).collect();
    for id in listed {
        state.note_seen(&id, now);
    }
    if state.faults.echo_sql_reformatted {
        let reformatted = executions
            .iter_mut()
            .map(reformat_sql_echo)
            .filter(|reformatted| *reformatted)
            .count();
        state.stats.echoed_sql_reformatted += reformatted as u64;
    }
    let mut reply = json!({ "executions": executions });
    if let Some(token) = next_token {
        reply["nextToken"] = json!(token);
    }
    Ok(HttpResponse::Ok().json(reply))
}

/// Parsed list filters.
struct ListQuery {
    min_creation: Option<DateTime<Utc>>,
    max_creation: Option<DateTime<Utc>>,
    workflow_id: Option<String>,
    include_workflow: bool,
    include_cancelled: bool,
    ascending: bool,
    limit: usize,
    /// Keyset position from `nextToken`: the last sequence number already returned.
    after_seq: Option<u64>,
}

impl ListQuery {
    fn parse(request: &HttpRequest, default_zone: Tz) -> Result<Self, ApiError> {
        let zone: Tz = match query_value(request, "timeZone") {
            Some(name) => name
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("Invalid timeZone {name}")))?,
            // AMC does not promise UTC when the caller names no zone.
            None => default_zone,
        };
        let creation = |name: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
            query_value(request, name)
                .map(|raw| {
                    let trimmed = raw.trim_end_matches('Z');
                    parse_bound(Some(trimmed), name).map(|local| local_to_utc(zone, local))
                })
                .transpose()
        };
        let limit = match query_value(request, "limit") {
            None => DEFAULT_PAGE,
            Some(raw) => match raw.parse::<usize>() {
                Ok(limit) if limit >= 1 => limit.min(MAX_PAGE),
                _ => {
                    return Err(ApiError::BadRequest(
                        "limit must be a positive integer".into(),
                    ))
                }
            },
        };
        let after_seq = query_value(request, "nextToken")
            .map(|token| {
                token
                    .strip_prefix("sim-")
                    .and_then(|seq| seq.parse().ok())
                    .ok_or_else(|| ApiError::BadRequest("Invalid nextToken".into()))
            })
            .transpose()?;
        Ok(Self {
            min_creation: creation("minCreationTime")?,
            max_creation: creation("maxCreationTime")?,
            workflow_id: query_value(request, "workflowId"),
            include_workflow: query_bool(request, "includeWorkflow")?.unwrap_or(false),
            include_cancelled: query_bool(request, "includeCancelled")?.unwrap_or(false),
            ascending: query_bool(request, "sortAscending")?.unwrap_or(false),
            limit,
            after_seq,
        })
    }

    fn is_after_token(&self, execution: &Execution) -> bool {
        match self.after_seq {
            None => true,
            Some(seq) if self.ascending => execution.seq > seq,
            Some(seq) => execution.seq < seq,
        }
    }

    fn matches(&self, execution: &Execution, now: Instant, shared: &Shared) -> bool {
        let created = shared.clock.to_utc(execution.created_at);
        self.min_creation.is_none_or(|min| created >= min)
            && self.max_creation.is_none_or(|max| created <= max)
            && self
                .workflow_id
                .as_ref()
                .is_none_or(|wanted| *wanted == execution.workflow_id)
            && (self.include_cancelled || execution.status_at(now).0 != Status::Cancelled)
    }
}
