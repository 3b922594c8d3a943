// amc-collector console. Reads /api/collections and /api/collections/{id} every second (changes
// show within 2 s without reloading), sends the operator's actions as same-origin POSTs with the
// console header, and asks for the token once when the daemon has one. Every value from the
// server is inserted as text (textContent), never as markup: error messages come from AMC.
"use strict";

const POLL_MS = 1000;
const HEADER = { "X-Amc-Console": "1" };
const WEEK_GROUP = {
  pending: "pending", submitting: "running", running: "running", downloading: "running",
  completed: "completed", failed: "failed", cancelled: "cancelled",
};
const GLYPH = { completed: "\u2713", running: "\u25B6", failed: "\u2717", pending: "\u2026", cancelled: "\u2298" };
const ACTIONS = {
  pause: { allowed: ["pending", "running"], ask: "Pause this collection? No new weeks are submitted; running executions finish and are stored." },
  resume: { allowed: ["paused"], ask: "Resume this collection?" },
  cancel: { allowed: ["pending", "running", "paused", "failed"], ask: "Cancel this collection? Unfinished weeks are cancelled and running AMC executions are cancelled. This cannot be undone." },
  "retry-failed": { allowed: ["pending", "running", "paused", "failed"], ask: "Put the failed weeks back to pending with fresh attempts?" },
};

const $ = (id) => document.getElementById(id);
let current = null; // the collection shown, when the detail view is open
let selectedWeek = null; // the week id whose detail is open
let busy = false;
let lastWeeks = new Map(); // the weeks last shown, by id
let lastList = ""; // the list last shown, to leave the table alone when nothing changed
let listPage = 0; // the page of the collections list shown (50 a page, newest first)

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function when(value) {
  if (!value) return "\u2014";
  const date = new Date(value);
  return isNaN(date) ? String(value) : date.toLocaleString();
}

function say(text, isError) {
  const message = $("message");
  message.textContent = text || "";
  message.className = isError ? "error" : "";
}

async function call(method, url, body) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    Object.assign(options.headers, HEADER, { "Content-Type": "application/json" });
    options.body = JSON.stringify(body || {});
  }
  const response = await fetch(url, options);
  if (response.status === 401 && url !== "/console/login") {
    showLogin();
    throw new Error("sign in first");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

function show(id) {
  for (const section of ["login", "list", "detail", "new", "fleet"]) $(section).hidden = section !== id;
}

function showLogin() {
  show("login");
  $("logout").hidden = true;
  $("token").focus();
}

function daemonLine(daemon) {
  const parts = [];
  if (daemon && daemon.credentials_failing) parts.push(`AMC ${daemon.credentials_failing}: weeks wait`);
  for (const set of (daemon && daemon.credential_sets_failing) || []) parts.push(`${set}: its instances wait`);
  if (daemon && daemon.shutting_down) parts.push("the daemon is shutting down");
  $("daemon").textContent = parts.join(" \u00B7 ");
}

function heldBack(collection, daemon) {
  const open = collection.pending + collection.running > 0;
  const reasons = [];
  if (collection.held_reason) reasons.push(`held: ${collection.held_reason}`);
  if (collection.create_refusal) reasons.push(collection.create_refusal);
  if (collection.waiting_daily_limit_until) reasons.push(`daily limit until ${when(collection.waiting_daily_limit_until)}`);
  if (open && daemon && daemon.credentials_failing) reasons.push("credentials failing");
  return reasons.join("; ") || "\u2014";
}

function bar(collection, node) {
  node.replaceChildren();
  const total = Math.max(collection.weeks_total, 1);
  for (const part of ["completed", "running", "failed", "cancelled"]) {
    const span = el("span", { class: `seg-${part}` });
    span.style.width = `${(100 * collection[part]) / total}%`;
    node.append(span);
  }
  return node;
}

function countsText(c) {
  return `${c.completed}/${c.weeks_total} completed, ${c.running} running, ${c.failed} failed, ${c.pending} pending` +
    (c.cancelled ? `, ${c.cancelled} cancelled` : "");
}

function statusBadge(status) {
  return el("span", { class: `status st-${status}` }, status);
}

function renderList(data) {
  daemonLine(data.daemon);
  const shown = JSON.stringify([data.daemon, data.collections]);
  if (shown === lastList) return;
  lastList = shown;
  const body = $("collections").tBodies[0];
  body.replaceChildren();
  for (const c of data.collections) {
    const row = el("tr");
    const name = el("td", { "data-label": "Workflow" });
    name.append(el("a", { href: `#/c/${c.id}` }, c.workflow));
    const progress = el("td", { "data-label": "Progress" });
    progress.append(bar(c, el("div", { class: "bar", "aria-hidden": "true" })), el("p", { class: "counts" }, countsText(c)));
    const status = el("td", { "data-label": "Status" });
    status.append(statusBadge(c.status));
    row.append(name, el("td", { "data-label": "Instance" }, c.instance), status, progress,
      el("td", { "data-label": "Started" }, when(c.started_at)),
      el("td", { "data-label": "Finished" }, when(c.finished_at)),
      el("td", { "data-label": "Held back by" }, heldBack(c, data.daemon)));
    body.append(row);
  }
  $("empty").hidden = data.collections.length > 0;
  const pages = Math.max(1, Math.ceil(data.total / data.per_page));
  $("pager").hidden = pages < 2;
  $("page-of").textContent = `page ${data.page + 1} of ${pages} (${data.total} collections)`;
  $("newer").disabled = data.page === 0;
  $("older").disabled = data.page + 1 >= pages;
}

function fields(node, pairs) {
  node.replaceChildren();
  for (const [name, value] of pairs) node.append(el("dt", {}, name), el("dd", {}, value ?? "\u2014"));
}

function weekLabel(week) {
  return `Week ${week.week_start} to ${week.week_end}: ${week.status}`;
}

function weekTooltip(week) {
  return [weekLabel(week), `attempts ${week.attempts}`, `execution ${week.execution_id || "\u2014"}`,
    `AMC id ${week.amc_execution_id || "\u2014"}`, `rows ${week.row_count ?? "\u2014"}`,
    week.error_message ? `error: ${week.error_message}` : ""].filter(Boolean).join("\n");
}

// What export returns for the week (the same rule as `collection show`'s "serves").
function serves(week) {
  if (week.rows_dropped_at) return `nothing: rows dropped by keep_weeks ${when(week.rows_dropped_at)}`;
  if (!week.serves_execution_id) return "nothing yet";
  return `execution ${week.serves_execution_id} (AMC id ${week.serves_amc_execution_id}): ` +
    `${week.serves_row_count ?? "?"} rows, checksum ${(week.serves_data_checksum || "").slice(0, 12)}`;
}

function renderWeek(week) {
  const panel = $("week");
  if (!week) { panel.hidden = true; return; }
  panel.hidden = false;
  $("week-title").textContent = `Week ${week.week_start} \u2013 ${week.week_end}`;
  fields($("week-fields"), [
    ["Status", week.status], ["Attempts", week.attempts], ["Execution UUID", week.execution_id],
    ["AMC execution id", week.amc_execution_id], ["Rows", week.row_count], ["Checksum", week.data_checksum],
    ["Error", week.error_message], ["Started", when(week.started_at)], ["Completed", when(week.completed_at)],
    ["Updated", when(week.updated_at)], ["Next attempt", when(week.next_attempt_at)],
    ["Re-run of execution", week.rerun_of],
    ["Export serves", serves(week)],
  ]);
  const rerun = $("rerun");
  rerun.disabled = week.status !== "completed" || (current && current.status === "cancelled");
  rerun.dataset.week = week.week_start;
}

function renderDetail(data) {
  daemonLine(data.daemon);
  const c = data.collection;
  current = c;
  $("detail-title").textContent = `${c.workflow} on ${c.instance}`;
  fields($("summary"), [
    ["Collection", c.id], ["Status", c.status],
    ["Keeps fresh", c.keep_fresh ? "yes: each new week is added once AMC has it" : "no (a backfill)"],
    ["Created", when(c.created_at)], ["Started", when(c.started_at)],
    ["Finished", when(c.finished_at)], ["Held back by", heldBack(c, data.daemon)], ["Error", c.error_message],
    ["Typed relation", data.relation || "none yet (made when a week of its workflow completes)"],
  ]);
  bar(c, $("detail-bar"));
  $("detail-progress").textContent = countsText(c);
  for (const button of document.querySelectorAll("[data-action]")) {
    const action = ACTIONS[button.dataset.action];
    button.disabled = !action.allowed.includes(c.status) || (button.dataset.action === "retry-failed" && c.failed === 0);
  }
  // The grid is updated in place, cell by cell: focus, hover and screen readers keep their
  // place while the page refreshes every second.
  const grid = $("weeks");
  if (grid.dataset.collection !== c.id) {
    grid.replaceChildren();
    grid.dataset.collection = c.id;
  }
  const cells = new Map([...grid.querySelectorAll("button")].map((b) => [b.dataset.id, b]));
  let selected = null;
  for (const week of data.weeks) {
    let button = cells.get(week.id);
    if (!button) {
      button = el("button", { type: "button", "data-id": week.id });
      button.addEventListener("click", () => {
        selectedWeek = week.id;
        for (const other of grid.querySelectorAll("button")) other.setAttribute("aria-pressed", String(other === button));
        renderWeek(lastWeeks.get(week.id));
      });
      const item = el("li");
      item.append(button);
      grid.append(item);
    }
    const group = WEEK_GROUP[week.status] || "pending";
    button.className = `w-${group}`;
    button.dataset.status = week.status;
    button.setAttribute("aria-label", weekLabel(week));
    button.setAttribute("aria-pressed", String(week.id === selectedWeek));
    button.title = weekTooltip(week);
    button.textContent = `${GLYPH[group]} ${week.week_start.slice(5)}`;
    if (week.id === selectedWeek) selected = week;
  }
  lastWeeks = new Map(data.weeks.map((week) => [week.id, week]));
  renderWeek(selected);
}

function legend() {
  const list = $("legend");
  for (const group of ["completed", "running", "failed", "pending", "cancelled"]) {
    list.append(el("li", { class: `w-${group}` }, `${GLYPH[group]} ${group}`));
  }
}

function route() {
  const match = location.hash.match(/^#\/c\/([0-9a-fA-F-]{36})$/);
  return match ? match[1] : null;
}

async function refresh() {
  if (busy || !$("login").hidden) return;
  const id = route();
  if (location.hash === "#/new") { show("new"); newEnter(); return; } // new_collection.js
  if (location.hash.startsWith("#/f/")) { show("fleet"); fleetRefresh(); return; } // fleet.js
  try {
    if (id) {
      const data = await call("GET", `/api/collections/${id}`);
      if (route() !== id) return;
      show("detail");
      renderDetail(data);
    } else {
      const data = await call("GET", `/api/collections?page=${listPage}`);
      if (route()) return;
      current = null;
      show("list");
      renderList(data);
    }
    $("logout").hidden = false;
  } catch (error) {
    if ($("login").hidden) say(`Cannot load: ${error.message}`, true);
  }
}

async function act(description, url) {
  busy = true;
  try {
    await call("POST", url);
    say(`${description}: done.`);
  } catch (error) {
    say(`${description}: ${error.message}`, true);
  } finally {
    busy = false;
    refresh();
  }
}

function bind() {
  legend();
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", () => {
      const name = button.dataset.action;
      if (!current || !window.confirm(ACTIONS[name].ask)) return;
      act(button.textContent, `/api/collections/${current.id}/${name}`);
    });
  }
  $("rerun").addEventListener("click", () => {
    const week = $("rerun").dataset.week;
    if (!current || !week) return;
    if (!window.confirm(`Collect week ${week} again with a new execution? Its rows stay until the new ones are stored.`)) return;
    act(`Re-run of week ${week}`, `/api/collections/${current.id}/weeks/${week}/rerun`);
  });
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      await call("POST", "/console/login", { token: $("token").value });
      $("token").value = "";
      $("login").hidden = true;
      refresh();
    } catch (error) {
      $("login-error").textContent = `Sign-in failed: ${error.message}`;
    }
  });
  $("newer").addEventListener("click", () => { listPage = Math.max(0, listPage - 1); lastList = ""; refresh(); });
  $("older").addEventListener("click", () => { listPage += 1; lastList = ""; refresh(); });
  $("logout").addEventListener("click", async () => {
    try { await call("POST", "/console/logout"); } catch (_) { /* the login form shows anyway */ }
    showLogin();
  });
  window.addEventListener("hashchange", () => { selectedWeek = null; lastList = ""; say(""); refresh(); });
  refresh();
  setInterval(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", bind);
