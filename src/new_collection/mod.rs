//! A new collection (or fleet) as asked by the CLI's `collection create` and by the console's
//! "New collection" form: the one piece both use to check the request, build its weeks, plan it
//! (`Store::plan`, writing nothing) and create it (`Store::create_with_reuse`, one transaction).
//!
//! The front ends parse their own text (flags, form fields) into a `Request`; everything after
//! that (which weeks, which workflow and instances, whether the parameters fit the SQL, what the
//! plan says, what is created) is decided here, so the console's plan is the CLI's `--dry-run`.

mod recent;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::Settings;
use crate::ids::{CollectionId, FleetId};
use crate::query_params::{check_sql, QueryParams};
use crate::store::model::{Instance, Workflow};
use crate::store::{
    CreateQuota, InstancePlan, KeepFresh, NewCollection, PlanRequest, Store, StoreError,
};
use crate::weeks::{generate_weeks, Week, WeekRequest, WeekRules, WeekStart};

/// The run time a plan assumes for a workflow with no run recorded on the instance. Our own
/// placeholder, not a figure AMC publishes (AMC documents no typical run time; queries over a
/// week of data observed in practice run from a few minutes to well over an hour); the plan marks
/// it `assumed`, and learns the real one from the first completed runs.
pub const ASSUMED_RUN: Duration = Duration::from_secs(15 * 60);

/// Why a request was not planned or created.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The request itself is wrong (one line naming what): nothing was written.
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn bad(message: impl Into<String>) -> RequestError {
    RequestError::Bad(message.into())
}

/// What planning and creating need from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Planning {
    /// `amc.max_in_flight_per_instance`.
    pub slots: u32,
    pub quota: CreateQuota,
    pub rules: WeekRules,
}

impl Planning {
    pub fn of(settings: &Settings) -> Self {
        Self {
            slots: settings.amc.max_in_flight_per_instance,
            quota: settings.amc.create_quota(),
            rules: WeekRules {
                data_lag_days: settings.collection.data_lag_days,
                retention_days: settings.collection.retention_days,
            },
        }
    }
}

impl Default for Planning {
    fn default() -> Self {
        Self::of(&Settings::default())
    }
}

/// Which instances a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    One(String),
    /// Several, as one fleet.
    Listed(Vec<String>),
    /// Every registered instance, as one fleet.
    All,
}

impl Targets {
    /// Several instances, in order; an empty name or one named twice is bad input.
    pub fn listed(names: Vec<String>) -> Result<Self, RequestError> {
        let mut seen = HashSet::new();
        for name in &names {
            if name.trim().is_empty() {
                return Err(bad("an instance id is empty"));
            }
            if !seen.insert(name.as_str()) {
                return Err(bad(format!("names instance `{name}` twice")));
            }
        }
        if names.is_empty() {
            return Err(bad("no instance given"));
        }
        Ok(Targets::Listed(names))
    }

    /// More than one collection, grouped under a fleet id.
    pub fn is_fleet(&self) -> bool {
        !matches!(self, Targets::One(_))
    }
}

/// A new collection (or fleet), parsed by its front end.
#[derive(Debug, Clone)]
pub struct Request {
    pub workflow: String,
    pub targets: Targets,
    pub weeks: i64,
    pub end_date: Option<NaiveDate>,
    pub week_start: WeekStart,
    pub zone: Tz,
    pub keep_fresh: Option<KeepFresh>,
    /// Accept a last week that ended less than 48 hours ago.
    pub allow_recent: bool,
    pub parameters: QueryParams,
}

impl Request {
    /// The request's weeks, checked (count, end date, retention, a too recent last week)
    /// without the database.
    pub fn weeks_checked(
        &self,
        planning: &Planning,
        now: DateTime<Utc>,
    ) -> Result<Vec<Week>, RequestError> {
        let today = now.with_timezone(&self.zone).date_naive();
        let weeks = generate_weeks(
            today,
            self.zone.name(),
            &WeekRequest {
                weeks: self.weeks,
                end_date: self.end_date,
                week_start: self.week_start,
            },
            planning.rules,
        )
        .map_err(|e| bad(e.to_string()))?;
        if !self.allow_recent {
            recent::refuse_recent_last_week(&weeks, self.zone, now)?;
        }
        Ok(weeks)
    }
}

/// A request checked against the database: ready to plan or create.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub workflow: Workflow,
    pub instances: Vec<Instance>,
    /// The collection of the first instance; the others differ only by `instance_id`.
    pub template: NewCollection,
    pub fleet: bool,
}

/// Checks the whole request (weeks, workflow, parameters, instances). Reads only.
pub async fn prepare(
    store: &Store,
    planning: &Planning,
    request: &Request,
    now: DateTime<Utc>,
) -> Result<Prepared, RequestError> {
    let weeks = request.weeks_checked(planning, now)?;
    resolve(store, request, weeks).await
}

/// `prepare` once the weeks are known (the CLI checks them before opening the database).
pub async fn resolve(
    store: &Store,
    request: &Request,
    weeks: Vec<Week>,
) -> Result<Prepared, RequestError> {
    let workflow = store
        .find_workflow(&request.workflow)
        .await?
        .ok_or_else(|| bad(format!("unknown workflow `{}`", request.workflow)))?;
    check_parameters(&workflow, &request.parameters)?;
    let instances = resolve_instances(store, &request.targets).await?;
    let Some(first) = instances.first() else {
        return Err(bad("no instance given"));
    };
    if weeks.is_empty() {
        return Err(bad("a collection needs at least one week"));
    }
    let template = NewCollection {
        workflow_id: workflow.id,
        instance_id: first.id,
        week_start: request.week_start,
        time_zone: request.zone.name().to_string(),
        weeks,
        keep_fresh: request.keep_fresh,
        parameters: request.parameters.clone(),
    };
    Ok(Prepared {
        workflow,
        instances,
        template,
        fleet: request.targets.is_fleet(),
    })
}

/// Refuses parameters that do not fit the workflow's inline SQL: a placeholder without a value
/// or inside quotes, a parameter no placeholder uses. A saved AMC workflow's SQL lives on AMC:
/// its parameters are sent as `parameterValues` and AMC checks them.
pub fn check_parameters(workflow: &Workflow, params: &QueryParams) -> Result<(), RequestError> {
    let Some(sql) = workflow.sql_query.as_deref() else {
        return Ok(());
    };
    let refused =
        |error: &dyn std::fmt::Display| bad(format!("workflow {}: {error}", workflow.name));
    let line = crate::sql::single_line(sql).map_err(|error| refused(&error))?;
    check_sql(&line, params).map_err(|error| refused(&error))
}

/// The instances the targets name, as stored; an unknown one is bad input.
pub async fn resolve_instances(
    store: &Store,
    targets: &Targets,
) -> Result<Vec<Instance>, RequestError> {
    let names = match targets {
        Targets::One(name) => std::slice::from_ref(name),
        Targets::Listed(names) => names.as_slice(),
        Targets::All => {
            let all = store.list_instances().await?;
            if all.is_empty() {
                return Err(bad(
                    "--all-instances: no instance is registered (see `instance add`)",
                ));
            }
            return Ok(all);
        }
    };
    let mut instances = Vec::with_capacity(names.len());
    for name in names {
        let instance = store
            .find_instance(name)
            .await?
            .ok_or_else(|| bad(format!("unknown instance `{name}`")))?;
        instances.push(instance);
    }
    Ok(instances)
}

/// The plan's totals over every instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PlanTotal {
    pub weeks: usize,
    pub stored: usize,
    pub executions: usize,
    /// Until the last execution of the slowest instance is expected to end.
    pub eta_seconds: u64,
}

/// What creating a prepared request would cost.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub instances: Vec<InstancePlan>,
    pub total: PlanTotal,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
}

impl Plan {
    /// The plan as `collection create --dry-run --json` prints it and the console shows it.
    pub fn to_json(&self, prepared: &Prepared) -> serde_json::Value {
        serde_json::json!({
            "dry_run": true,
            "workflow": prepared.workflow.name,
            "time_zone": prepared.template.time_zone,
            "parameters": prepared.template.parameters.to_json(),
            "start_date": self.start_date,
            "end_date": self.end_date,
            "instances": self.instances,
            "total": self.total,
        })
    }
}

/// The plan of `prepared` (`Store::plan`). Writes nothing.
pub async fn plan(
    store: &Store,
    planning: &Planning,
    prepared: &Prepared,
) -> Result<Plan, RequestError> {
    let template = &prepared.template;
    let request = PlanRequest {
        workflow_id: prepared.workflow.id,
        time_zone: template.time_zone.clone(),
        parameters: template.parameters.to_canonical_json(),
        weeks: template.weeks.iter().map(|w| (w.start, w.end)).collect(),
        instances: prepared.instances.clone(),
        slots: planning.slots,
        quota: planning.quota,
        assumed_run: ASSUMED_RUN,
    };
    let plans = store.plan(&request).await?;
    let (start_date, end_date) = span(template)?;
    let total = PlanTotal {
        weeks: plans.iter().map(|p| p.weeks).sum(),
        stored: plans.iter().map(|p| p.stored).sum(),
        executions: plans.iter().map(|p| p.executions).sum(),
        eta_seconds: plans.iter().map(|p| p.eta_seconds).max().unwrap_or(0),
    };
    Ok(Plan {
        instances: plans,
        total,
        start_date,
        end_date,
    })
}

/// One collection created, with the AMC instance id it runs on.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedMember {
    pub instance_id: String,
    pub id: CollectionId,
    pub weeks: usize,
    /// Weeks completed from executions stored already (no AMC run).
    pub reused_weeks: usize,
}

/// What `create` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedSet {
    /// Set when more than one instance was targeted.
    pub fleet_id: Option<FleetId>,
    pub collections: Vec<CreatedMember>,
    pub start_date: NaiveDate,
    pub end_date: NaiveDate,
}

/// Creates one collection per instance of the prepared request, in one transaction, a fleet
/// when the request targets more than one instance.
pub async fn create(store: &Store, prepared: &Prepared) -> Result<CreatedSet, RequestError> {
    let (start_date, end_date) = span(&prepared.template)?;
    let news: Vec<NewCollection> = prepared
        .instances
        .iter()
        .map(|instance| NewCollection {
            instance_id: instance.id,
            ..prepared.template.clone()
        })
        .collect();
    let fleet_id = prepared.fleet.then(FleetId::new);
    let created = store.create_with_reuse(&news, fleet_id).await?;
    let collections = created
        .iter()
        .map(|c| CreatedMember {
            instance_id: prepared
                .instances
                .iter()
                .find(|i| i.id == c.instance_id)
                .map(|i| i.instance_id.clone())
                .unwrap_or_default(),
            id: c.id,
            weeks: c.weeks,
            reused_weeks: c.reused,
        })
        .collect();
    Ok(CreatedSet {
        fleet_id,
        collections,
        start_date,
        end_date,
    })
}

/// The first day of the first week and the last day of the last.
fn span(template: &NewCollection) -> Result<(NaiveDate, NaiveDate), RequestError> {
    match (template.weeks.first(), template.weeks.last()) {
        (Some(first), Some(last)) => Ok((first.start, last.end)),
        _ => Err(bad("a collection needs at least one week")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_instances_refuse_an_empty_list_an_empty_name_and_a_repeat() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Targets::listed(names(&["a", "b"])).unwrap().is_fleet());
        for (list, fragment) in [
            (names(&[]), "no instance given"),
            (names(&["a", " "]), "is empty"),
            (names(&["a", "b", "a"]), "names instance `a` twice"),
        ] {
            let message = Targets::listed(list).unwrap_err().to_string();
            assert!(message.contains(fragment), "{message}");
        }
    }
}
