//! The console's "New collection" form: what it offers (stored workflows with their
//! placeholders, registered instances), its plan (the CLI's `collection create --dry-run`) and
//! its create (the CLI's `collection create`).
//!
//! The form's fields are parsed here into a `new_collection::Request`; from there the one
//! shared piece (`crate::new_collection`) checks, plans and creates, so the page shows the same
//! plan as the CLI and creates through the same transaction. Bad input answers 400 with one
//! line and writes nothing; the POSTs pass the same cross-site checks as every console action.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::{check_same_origin, Console};
use crate::escape::escape_controls;
use crate::new_collection::{self, Prepared, Request, RequestError, Targets};
use crate::query_params::{placeholders, ParamValue, QueryParams, END_DATE, START_DATE};
use crate::store::KeepFresh;
use crate::weeks::WeekStart;

/// What the form offers.
pub const OPTIONS: &str = "/api/new-collection";
/// The plan of the form's request (writes nothing).
pub const PLAN: &str = "/api/new-collection/plan";
/// Creates the form's request.
pub const CREATE: &str = "/api/new-collection/create";

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route(OPTIONS, web::get().to(options))
        .route(PLAN, web::post().to(plan))
        .route(CREATE, web::post().to(create));
}

/// The form as the page posts it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    workflow: String,
    /// One instance, or several (a fleet); ignored with `all_instances`.
    #[serde(default)]
    instances: Vec<String>,
    #[serde(default)]
    all_instances: bool,
    weeks: i64,
    /// YYYY-MM-DD; empty or absent: today minus the data lag.
    #[serde(default)]
    end_date: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    week_start: Option<String>,
    /// `name=value` lines; a name on several lines is a list.
    #[serde(default)]
    parameters: String,
    #[serde(default)]
    allow_recent: bool,
    #[serde(default)]
    keep_fresh: bool,
}

/// The stored workflows (with the placeholders their SQL needs filled) and the instances.
async fn options(console: web::Data<Console>) -> HttpResponse {
    let (workflows, instances) = match (
        console.store.list_workflows().await,
        console.store.list_instances().await,
    ) {
        (Ok(workflows), Ok(instances)) => (workflows, instances),
        (Err(error), _) | (_, Err(error)) => return failure(RequestError::Store(error)),
    };
    let workflows: Vec<_> = workflows
        .iter()
        .map(|workflow| {
            json!({
                "name": escape_controls(&workflow.name),
                "saved_amc_workflow": workflow.amc_workflow_id.is_some(),
                "parameters": parameter_names(workflow.sql_query.as_deref()),
            })
        })
        .collect();
    let instances: Vec<_> = instances
        .iter()
        .map(|instance| {
            json!({
                "instance_id": escape_controls(&instance.instance_id),
                "instance_name": escape_controls(&instance.instance_name),
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "workflows": workflows, "instances": instances }))
}

/// The placeholders of inline SQL the form must fill (the dates are filled per week).
fn parameter_names(sql: Option<&str>) -> Vec<String> {
    let Some(line) = sql.and_then(|sql| crate::sql::single_line(sql).ok()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = placeholders(&line)
        .into_iter()
        .map(|p| p.name.to_string())
        .filter(|name| name != START_DATE && name != END_DATE)
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn plan(request: HttpRequest, console: web::Data<Console>, body: web::Bytes) -> HttpResponse {
    if let Err(refusal) = check_same_origin(request.headers()) {
        return HttpResponse::Forbidden().json(json!({ "error": refusal.to_string() }));
    }
    let prepared = match prepared(&console, &body).await {
        Ok(prepared) => prepared,
        Err(error) => return failure(error),
    };
    match new_collection::plan(&console.store, &console.planning, &prepared).await {
        Ok(plan) => HttpResponse::Ok().json(plan.to_json(&prepared)),
        Err(error) => failure(error),
    }
}

async fn create(
    request: HttpRequest,
    console: web::Data<Console>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(refusal) = check_same_origin(request.headers()) {
        return HttpResponse::Forbidden().json(json!({ "error": refusal.to_string() }));
    }
    let prepared = match prepared(&console, &body).await {
        Ok(prepared) => prepared,
        Err(error) => return failure(error),
    };
    match new_collection::create(&console.store, &prepared).await {
        Ok(created) => {
            tracing::info!(fleet_id = ?created.fleet_id, collections = created.collections.len(),
                "Console: collection created.");
            HttpResponse::Created().json(created)
        }
        Err(error) => failure(error),
    }
}

/// The posted form, parsed and checked against the database.
async fn prepared(console: &Console, body: &[u8]) -> Result<Prepared, RequestError> {
    let form: Form = serde_json::from_slice(body)
        .map_err(|error| RequestError::Bad(format!("the form is not understood: {error}")))?;
    let request = request_of(form)?;
    new_collection::prepare(&console.store, &console.planning, &request, Utc::now()).await
}

fn request_of(form: Form) -> Result<Request, RequestError> {
    let bad = RequestError::Bad;
    let zone_text = form.time_zone.as_deref().unwrap_or("UTC").trim();
    let zone: chrono_tz::Tz = zone_text.parse().map_err(|_| {
        bad(format!(
            "time zone `{zone_text}` is not an IANA time zone name"
        ))
    })?;
    let week_start: WeekStart = form
        .week_start
        .as_deref()
        .unwrap_or("monday")
        .parse()
        .map_err(|e: crate::weeks::WeekError| bad(e.to_string()))?;
    let end_date = match form.end_date.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map_err(|_| bad(format!("end date `{text}` is not a date (YYYY-MM-DD)")))?,
        ),
    };
    let names: Vec<String> = form
        .instances
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    let targets = match (form.all_instances, names.as_slice()) {
        (true, _) => Targets::All,
        (false, [one]) if !one.is_empty() => Targets::One(one.clone()),
        (false, _) => Targets::listed(names)?,
    };
    if form.workflow.trim().is_empty() {
        return Err(bad("choose a workflow".into()));
    }
    Ok(Request {
        workflow: form.workflow.trim().to_string(),
        targets,
        weeks: form.weeks,
        end_date,
        week_start,
        zone,
        keep_fresh: form.keep_fresh.then_some(KeepFresh { keep_weeks: None }),
        allow_recent: form.allow_recent,
        parameters: parameters_of(&form.parameters)?,
    })
}

/// `name=value` lines (blank lines skipped); a name on several lines becomes a list, in order.
fn parameters_of(text: &str) -> Result<QueryParams, RequestError> {
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once('=') else {
            return Err(RequestError::Bad(format!(
                "parameter line `{line}` is not name=value"
            )));
        };
        let (name, value) = (name.trim(), value.trim().to_string());
        match values.iter_mut().find(|(known, _)| known == name) {
            Some((_, list)) => list.push(value),
            None => values.push((name.to_string(), vec![value])),
        }
    }
    let mut params = QueryParams::default();
    for (name, mut list) in values {
        let value = match list.len() {
            1 => ParamValue::One(list.remove(0)),
            _ => ParamValue::List(list),
        };
        params
            .insert(&name, value)
            .map_err(|error| RequestError::Bad(format!("parameter {name}: {error}")))?;
    }
    Ok(params)
}

/// Bad input: 400 with its one line; the database failing: 503.
fn failure(error: RequestError) -> HttpResponse {
    match error {
        RequestError::Bad(message) => {
            HttpResponse::BadRequest().json(json!({ "error": escape_controls(&message) }))
        }
        RequestError::Store(error) => {
            tracing::warn!(%error, "Console: the database did not answer.");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "error": "the database did not answer" }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_lines_make_one_value_or_a_list_and_refuse_a_line_without_equals() {
        let params = parameters_of("market = DE\n\nasin=B01\nasin=B02\n").unwrap();
        assert_eq!(params.get("market"), Some(&ParamValue::One("DE".into())));
        assert_eq!(
            params.get("asin"),
            Some(&ParamValue::List(vec!["B01".into(), "B02".into()]))
        );
        let refused = parameters_of("market").unwrap_err().to_string();
        assert!(refused.contains("not name=value"), "{refused}");
    }

    #[test]
    fn the_form_needs_a_known_time_zone_and_a_real_end_date() {
        let form = |zone: &str, end: &str| Form {
            workflow: "w".into(),
            instances: vec!["a".into()],
            all_instances: false,
            weeks: 4,
            end_date: Some(end.into()),
            time_zone: Some(zone.into()),
            week_start: None,
            parameters: String::new(),
            allow_recent: false,
            keep_fresh: false,
        };
        let zone = request_of(form("Mars/Olympus", ""))
            .unwrap_err()
            .to_string();
        assert!(zone.contains("not an IANA time zone"), "{zone}");
        let end = request_of(form("UTC", "2026-13-01"))
            .unwrap_err()
            .to_string();
        assert!(end.contains("is not a date"), "{end}");
        let fine = request_of(form("Europe/Berlin", "")).unwrap();
        assert_eq!(fine.targets, Targets::One("a".into()));
    }
}
