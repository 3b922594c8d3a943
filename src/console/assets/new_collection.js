// amc-collector console: the "New collection" form (#/new). Loads the stored workflows and
// instances, asks the server for the plan (the same as `collection create --dry-run`), and only
// then offers Create, which the next change to the form takes back (the plan shown must be the
// plan of what is created). Uses app.js's helpers ($, el, call); every server value is text.
"use strict";

let newOptions = null; // what /api/new-collection offered
let plannedBody = null; // the form's body the plan shown was made for
let newLoading = false;

// Called by app.js's refresh while #/new is shown (every second, and after signing in): loads
// the workflows and instances once.
function newEnter() {
  if (newOptions || newLoading) return;
  newLoad();
}

function newBody() {
  const instances = [...document.querySelectorAll("#new-instances input:checked")].map((box) => box.value);
  return {
    workflow: $("new-workflow").value,
    instances,
    all_instances: $("new-all").checked,
    weeks: Number($("new-weeks").value),
    end_date: $("new-end").value || null,
    time_zone: $("new-zone").value,
    week_start: $("new-week-start").value,
    parameters: $("new-params").value,
    allow_recent: $("new-recent").checked,
  };
}

function newReset() {
  plannedBody = null;
  $("new-create").disabled = true;
}

function newHint() {
  const workflow = (newOptions ? newOptions.workflows : []).find((w) => w.name === $("new-workflow").value);
  const names = workflow ? workflow.parameters : [];
  $("new-param-hint").textContent = names.length
    ? `This workflow's SQL needs: ${names.join(", ")} (a name on several lines is a list).`
    : "This workflow's SQL needs no parameter.";
}

async function newLoad() {
  $("new-error").textContent = "";
  newLoading = true;
  try {
    newOptions = await call("GET", "/api/new-collection");
    $("logout").hidden = false;
  } catch (error) {
    $("new-error").textContent = `Cannot load the workflows and instances: ${error.message}`;
    return;
  } finally {
    newLoading = false;
  }
  const select = $("new-workflow");
  select.replaceChildren(...newOptions.workflows.map((w) => el("option", { value: w.name }, w.name)));
  const boxes = $("new-instances");
  boxes.replaceChildren(...newOptions.instances.map((i) => {
    const label = el("label", {});
    label.append(el("input", { type: "checkbox", value: i.instance_id }), ` ${i.instance_id} (${i.instance_name})`);
    return label;
  }));
  newHint();
  newReset();
}

function newCell(row, text) {
  row.append(el("td", {}, text));
}

function eta(seconds, executions) {
  if (!executions) return "-";
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24, m = Math.floor(seconds / 60) % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return m ? `${m}m` : "<1m";
}

function newRenderPlan(plan) {
  const body = $("new-plan-table").querySelector("tbody");
  body.replaceChildren(...plan.instances.map((p) => {
    const row = el("tr", { "data-instance": p.instance_id });
    newCell(row, p.instance_id);
    newCell(row, p.weeks);
    newCell(row, p.stored);
    newCell(row, p.executions);
    newCell(row, p.queue);
    newCell(row, p.slots);
    newCell(row, `${eta(p.run_time.seconds, 1)} ${p.run_time.source}`);
    newCell(row, p.daily_limit ? `${p.daily_used}/${p.daily_limit} used` : "none");
    newCell(row, eta(p.eta_seconds, p.executions));
    return row;
  }));
  const t = plan.total;
  $("new-total").textContent = `Plan (nothing written yet): ${plan.workflow}, weeks ${plan.start_date} to ${plan.end_date} (${plan.time_zone}). ` +
    `Total: ${t.weeks} weeks, ${t.stored} stored already (reused, not run again), ${t.executions} AMC executions, all done in ${eta(t.eta_seconds, t.executions)}.`;
  $("new-plan-view").hidden = false;
}

async function newPlan(event) {
  event.preventDefault();
  $("new-error").textContent = "";
  $("new-created").textContent = "";
  newReset();
  const body = newBody();
  try {
    newRenderPlan(await call("POST", "/api/new-collection/plan", body));
    plannedBody = JSON.stringify(body);
    $("new-create").disabled = false;
  } catch (error) {
    $("new-plan-view").hidden = true;
    $("new-error").textContent = error.message;
  }
}

async function newCreate() {
  const body = newBody();
  if (plannedBody !== JSON.stringify(body)) { newReset(); return; }
  $("new-error").textContent = "";
  $("new-create").disabled = true;
  try {
    const created = await call("POST", "/api/new-collection/create", body);
    const out = $("new-created");
    out.replaceChildren("Created ");
    if (created.fleet_id) out.append(el("a", { href: `#/f/${created.fleet_id}`, id: "new-fleet" }, `fleet ${created.fleet_id}`), ": ");
    for (const c of created.collections) {
      out.append(el("a", { href: `#/c/${c.id}`, "data-collection": c.id }, `${c.instance_id} ${c.id}`), " ");
    }
    plannedBody = null;
  } catch (error) {
    $("new-error").textContent = error.message;
  }
}

function newBind() {
  $("new-form").addEventListener("submit", newPlan);
  $("new-form").addEventListener("input", newReset);
  $("new-form").addEventListener("change", newReset);
  $("new-workflow").addEventListener("change", newHint);
  $("new-create").addEventListener("click", newCreate);
X
  window.addEventListener("hashchange", () => { if (location.hash === "#/new") newOptions = null; });
}

document.addEventListener("DOMContentLoaded", newBind);
