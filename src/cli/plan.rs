//! `collection create` on one instance or several (a fleet), and its `--dry-run` plan.
//!
//! Which instances: `--instance ID`, `--instances a,b,c` or `--all-instances`; naming one twice
//! or an unknown one is bad input, refused before anything is written. Without `--dry-run` the
//! collections and their weeks are created in one transaction (weeks stored already for the same
//! key are completed from the stored execution, `store::reuse`); with it nothing is written and
//! the plan is printed (`store::plan`).

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use super::CliError;
use crate::config::Settings;
use crate::escape::escape_controls;
use crate::ids::FleetId;
use crate::store::model::{Instance, Workflow};
use crate::store::{Created, InstancePlan, NewCollection, PlanRequest, Store};

/// The run time a plan assumes for a workflow with no run recorded on the instance. Our own
/// placeholder, not a figure AMC publishes (AMC documents no typical run time; queries over a
/// week of data observed in practice run from a few minutes to well over an hour); the plan marks
/// it `assumed`, and learns the real one from the first completed runs.
const ASSUMED_RUN: Duration = Duration::from_secs(15 * 60);

/// Which instances `collection create` was given.
pub(super) enum Targets<'a> {
    One(&'a str),
    Listed(&'a str),
    All,
}

impl<'a> Targets<'a> {
    /// `--instance`, `--instances` or `--all-instances`: exactly one. A repeated or empty item of
    /// `--instances` is refused here, before the database is opened.
    pub(super) fn of(
        instance: &'a Option<String>,
        instances: &'a Option<String>,
        all: bool,
    ) -> Result<Self, CliError> {
        match (instance, instances, all) {
            (Some(one), None, false) => Ok(Targets::One(one)),
            (None, Some(listed), false) => {
                listed_instances(listed)?;
                Ok(Targets::Listed(listed))
            }
            (None, None, true) => Ok(Targets::All),
            _ => Err(CliError::Usage(
                "give one of --instance, --instances or --all-instances".into(),
            )),
        }
    }
}

/// The instances `--instances a,b,c` names, in order; empty items or one named twice are bad input.
pub(super) fn listed_instances(text: &str) -> Result<Vec<String>, CliError> {
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(CliError::Usage(format!(
                "--instances `{text}` has an empty item (give instance ids separated by commas)"
            )));
        }
        if !seen.insert(name.to_string()) {
            return Err(CliError::Usage(format!(
                "--instances names instance `{name}` twice"
            )));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// The instances the targets name, as stored; an unknown one is bad input.
pub(super) async fn resolve_instances(
    store: &Store,
    targets: &Targets<'_>,
) -> Result<Vec<Instance>, CliError> {
    let names = match targets {
        Targets::One(name) => vec![name.to_string()],
        Targets::Listed(text) => listed_instances(text)?,
        Targets::All => {
            let all = store.list_instances().await.map_err(anyhow::Error::from)?;
            if all.is_empty() {
                return Err(CliError::Usage(
                    "--all-instances: no instance is registered (see `instance add`)".into(),
                ));
            }
            return Ok(all);
        }
    };
    let mut instances = Vec::with_capacity(names.len());
    for name in &names {
        let instance = store
            .find_instance(name)
            .await
            .map_err(anyhow::Error::from)?
            .ok_or_else(|| CliError::Usage(format!("unknown instance `{name}`")))?;
        instances.push(instance);
    }
    Ok(instances)
}

/// Creates one collection per instance of `template` (its `instance_id` replaced), a fleet when
/// there is more than one target, and prints what was created.
pub(super) async fn create(
    store: &Store,
    template: NewCollection,
    instances: &[Instance],
    fleet: bool,
    json: bool,
) -> Result<(), CliError> {
    let news: Vec<NewCollection> = instances
        .iter()
        .map(|instance| NewCollection {
            instance_id: instance.id,
            ..template.clone()
        })
        .collect();
    let fleet_id = fleet.then(FleetId::new);
    let created = store
        .create_with_reuse(&news, fleet_id)
        .await
        .map_err(anyhow::Error::from)?;
    let (first, last) = match (template.weeks.first(), template.weeks.last()) {
        (Some(first), Some(last)) => (first.start, last.end),
        _ => {
            return Err(CliError::Usage(
                "a collection needs at least one week".into(),
            ))
        }
    };
    let name_of = |c: &Created| {
        instances
            .iter()
            .find(|i| i.id == c.instance_id)
            .map(|i| i.instance_id.clone())
            .unwrap_or_default()
    };
    match (fleet_id, json) {
        (None, false) => created.iter().for_each(|c| println!("{}", c.id)),
        (None, true) => {
            for c in &created {
                let value = json!({
                    "id": c.id, "weeks": c.weeks, "start_date": first, "end_date": last,
                    "keep_fresh": template.keep_fresh.is_some(), "reused_weeks": c.reused,
                    "parameters": template.parameters.to_json(),
                });
                println!("{value}");
            }
        }
        (Some(fleet), false) => {
            println!("fleet {fleet}");
            for c in &created {
                let instance = escape_controls(&name_of(c)).into_owned();
                let reused = reused_note(c.reused);
                println!("  {instance:<16} {}  {} weeks{reused}", c.id, c.weeks);
            }
        }
        (Some(fleet), true) => {
            let members: Vec<_> = created
                .iter()
                .map(|c| json!({"instance_id": name_of(c), "id": c.id, "weeks": c.weeks, "reused_weeks": c.reused}))
                .collect();
            let value = json!({
                "fleet_id": fleet, "start_date": first, "end_date": last,
                "keep_fresh": template.keep_fresh.is_some(), "collections": members,
                "parameters": template.parameters.to_json(),
            });
            println!("{value}");
        }
    }
    Ok(())
}

fn reused_note(reused: usize) -> String {
    match reused {
        0 => String::new(),
        n => format!(", {n} completed from stored executions"),
    }
}

/// Prints what creating `template` on `instances` would cost; writes nothing.
pub(super) async fn dry_run(
    store: &Store,
    settings: &Settings,
    workflow: &Workflow,
    template: &NewCollection,
    instances: Vec<Instance>,
    json: bool,
) -> Result<(), CliError> {
    let request = PlanRequest {
        workflow_id: workflow.id,
        time_zone: template.time_zone.clone(),
        parameters: template.parameters.to_canonical_json(),
        weeks: template.weeks.iter().map(|w| (w.start, w.end)).collect(),
        instances,
        slots: settings.amc.max_in_flight_per_instance,
        quota: settings.amc.create_quota(),
        assumed_run: ASSUMED_RUN,
    };
    let plans = store.plan(&request).await.map_err(anyhow::Error::from)?;
    let (first, last) = match (template.weeks.first(), template.weeks.last()) {
        (Some(first), Some(last)) => (first.start, last.end),
        _ => {
            return Err(CliError::Usage(
                "a collection needs at least one week".into(),
            ))
        }
    };
    let weeks: usize = plans.iter().map(|p| p.weeks).sum();
    let stored: usize = plans.iter().map(|p| p.stored).sum();
    let executions: usize = plans.iter().map(|p| p.executions).sum();
    let eta = plans.iter().map(|p| p.eta_seconds).max().unwrap_or(0);
    if json {
        let value = json!({
            "dry_run": true,
            "workflow": workflow.name,
            "time_zone": template.time_zone,
            "parameters": template.parameters.to_json(),
            "start_date": first,
            "end_date": last,
            "instances": plans,
            "total": {"weeks": weeks, "stored": stored, "executions": executions, "eta_seconds": eta},
        });
        println!("{value}");
        return Ok(());
    }
    println!(
        "plan (dry run, nothing written): workflow {}, {} weeks {first}..{last} ({}), {} instance(s)",
        escape_controls(&workflow.name),
        template.weeks.len(),
        template.time_zone,
        plans.len()
    );
    println!(
        "{:<16}  {:>5}  {:>6}  {:>10}  {:>5}  {:>5}  {:<12}  {:<11}  {:>7}",
        "INSTANCE",
        "WEEKS",
        "STORED",
        "EXECUTIONS",
        "QUEUE",
        "SLOTS",
        "RUN TIME",
        "DAILY LIMIT",
        "ETA"
    );
    for plan in &plans {
        print_row(plan);
    }
    println!(
        "total: {weeks} weeks, {stored} stored already (reused, not run again), \
         {executions} AMC executions, all done in {}",
        crate::store::eta_text(eta, executions)
    );
    Ok(())
}

fn print_row(plan: &InstancePlan) {
    let run = format!(
        "{} {}",
        crate::store::eta_text(plan.run_time.seconds, 1),
        plan.run_time.source
    );
    let daily = match plan.daily_limit {
        0 => "none".to_string(),
        limit => format!("{}/{limit} used", plan.daily_used),
    };
    println!(
        "{:<16}  {:>5}  {:>6}  {:>10}  {:>5}  {:>5}  {:<12}  {:<11}  {:>7}",
        crate::output::cell(&plan.instance_id, 16),
        plan.weeks,
        plan.stored,
        plan.executions,
        plan.queue,
        plan.slots,
        run,
        daily,
        crate::store::eta_text(plan.eta_seconds, plan.executions)
    );
}
