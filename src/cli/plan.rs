//! `collection create` on one instance or several (a fleet), and its `--dry-run` plan.
//!
//! Which instances: `--instance ID`, `--instances a,b,c` or `--all-instances`; naming one twice
//! or an unknown one is bad input, refused before anything is written. Without `--dry-run` the
//! collections and their weeks are created in one transaction (weeks stored already for the same
//! key are completed from the stored execution, `store::reuse`); with it nothing is written and
//! the plan is printed (`store::plan`).

use std::collections::HashSet;

use serde_json::json;

use super::CliError;
use crate::escape::escape_controls;
use crate::new_collection::{self, Planning, Prepared, RequestError, Targets};
use crate::store::InstancePlan;

impl From<RequestError> for CliError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::Bad(message) => CliError::Usage(message),
            RequestError::Store(error) => CliError::Runtime(error.into()),
        }
    }
}

/// `--instance`, `--instances` or `--all-instances`: exactly one. A repeated or empty item of
/// `--instances` is refused here, before the database is opened.
pub(super) fn targets_of(
    instance: &Option<String>,
    instances: &Option<String>,
    all: bool,
) -> Result<Targets, CliError> {
    match (instance, instances, all) {
        (Some(one), None, false) => Ok(Targets::One(one.clone())),
        (None, Some(listed), false) => Ok(Targets::Listed(listed_instances(listed)?)),
        (None, None, true) => Ok(Targets::All),
        _ => Err(CliError::Usage(
            "give one of --instance, --instances or --all-instances".into(),
        )),
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

/// Creates what `prepared` asks (`new_collection::create`) and prints it.
pub(super) async fn create(
    store: &crate::store::Store,
    prepared: &Prepared,
    json: bool,
) -> Result<(), CliError> {
    let created = new_collection::create(store, prepared).await?;
    let template = &prepared.template;
    let (first, last) = (created.start_date, created.end_date);
    match (created.fleet_id, json) {
        (None, false) => created
            .collections
            .iter()
            .for_each(|c| println!("{}", c.id)),
        (None, true) => {
            for c in &created.collections {
                let value = json!({
                    "id": c.id, "weeks": c.weeks, "start_date": first, "end_date": last,
                    "keep_fresh": template.keep_fresh.is_some(), "reused_weeks": c.reused_weeks,
                    "parameters": template.parameters.to_json(),
                });
                println!("{value}");
            }
        }
        (Some(fleet), false) => {
            println!("fleet {fleet}");
            for c in &created.collections {
                let instance = escape_controls(&c.instance_id).into_owned();
                let reused = reused_note(c.reused_weeks);
                println!("  {instance:<16} {}  {} weeks{reused}", c.id, c.weeks);
            }
        }
        (Some(fleet), true) => {
            let value = json!({
                "fleet_id": fleet, "start_date": first, "end_date": last,
                "keep_fresh": template.keep_fresh.is_some(), "collections": created.collections,
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

/// Prints what creating `prepared` would cost (`new_collection::plan`); writes nothing.
pub(super) async fn dry_run(
    store: &crate::store::Store,
    planning: &Planning,
    prepared: &Prepared,
    json: bool,
) -> Result<(), CliError> {
    let plan = new_collection::plan(store, planning, prepared).await?;
    let (workflow, template) = (&prepared.workflow, &prepared.template);
    let (first, last) = (plan.start_date, plan.end_date);
    let total = plan.total;
    if json {
        let value = plan.to_json(prepared);
        println!("{value}");
        return Ok(());
    }
    println!(
        "plan (dry run, nothing written): workflow {}, {} weeks {first}..{last} ({}), {} instance(s)",
        escape_controls(&workflow.name),
        template.weeks.len(),
        template.time_zone,
        plan.instances.len()
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
    for row in &plan.instances {
        print_row(row);
    }
    println!(
        "total: {} weeks, {} stored already (reused, not run again), \
         {} AMC executions, all done in {}",
        total.weeks,
        total.stored,
        total.executions,
        crate::store::eta_text(total.eta_seconds, total.executions)
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
