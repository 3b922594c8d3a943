// amc-collector console: a fleet (#/f/<id>) as an instance × week matrix, one row per
// collection, one column per week start, each cell coloured by the week's status (with the same
// symbols as a collection's grid). app.js's refresh calls fleetRefresh every second while shown.
"use strict";

function fleetRoute() {
  const match = location.hash.match(/^#\/f\/([0-9a-fA-F-]{36})$/);
  return match ? match[1] : null;
}

function fleetRender(data) {
  $("fleet-title").textContent = `Fleet ${data.fleet_id}`;
  const starts = [...new Set(data.collections.flatMap((c) => c.weeks.map((w) => w.week_start)))].sort();
  const head = el("tr", {});
  head.append(el("th", { scope: "col" }, "Instance"), el("th", { scope: "col" }, "Status"));
  for (const start of starts) head.append(el("th", { scope: "col", class: "week-col" }, start.slice(5)));
  $("fleet-matrix").querySelector("thead").replaceChildren(head);
  $("fleet-matrix").querySelector("tbody").replaceChildren(...data.collections.map((c) => {
    const row = el("tr", { "data-instance": c.instance_id });
    const name = el("th", { scope: "row" });
    name.append(el("a", { href: `#/c/${c.id}` }, c.instance_id));
    row.append(name, el("td", {}, c.status));
    const byStart = new Map(c.weeks.map((w) => [w.week_start, w.status]));
    for (const start of starts) {
      const status = byStart.get(start);
      const group = status ? WEEK_GROUP[status] || "pending" : null;
      const cell = el("td", group ? { class: `cell w-${group}`, "data-status": status, title: `${c.instance_id} ${start}: ${status}` } : { class: "cell" },
        group ? GLYPH[group] : "");
      row.append(cell);
    }
    return row;
  }));
}

async function fleetRefresh() {
  const id = fleetRoute();
  try {
    const data = await call("GET", `/api/fleets/${id}`);
    if (fleetRoute() !== id) return;
    fleetRender(data);
    $("logout").hidden = false;
  } catch (error) {
    if ($("login").hidden) say(`Cannot load: ${error.message}`, true);
  }
}
