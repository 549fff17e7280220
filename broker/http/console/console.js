// The Switchyard web console: the broker's HTTP API (docs/HTTP-API.md)
// in a page. Credentials stay in this page's memory (HTTP Basic on every
// request); nothing is fetched from anywhere but the broker.
"use strict";

const state = { auth: null, vhost: "/", tab: "overview", history: [], last: null };
const HISTORY_SECONDS = 300;
const SERIES = [
  ["published", "#1f77b4"],
  ["delivered", "#2ca02c"],
  ["acked", "#9467bd"],
  ["dead_lettered", "#d62728"],
];

const $ = (selector) => document.querySelector(selector);

function showError(message) {
  $("#error").textContent = message || "";
}

async function api(method, path, body, contentType) {
  const separator = path.includes("?") ? "&" : "?";
  const url = `${path}${separator}vhost=${encodeURIComponent(state.vhost)}`;
  // The header spares the page the browser's own password dialog.
  const headers = { Authorization: state.auth, "X-Switchyard-Console": "1" };
  if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : contentType ? body : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((data && data.error) || `${method} ${path}: ${response.status}`);
  return data;
}

// Runs a change, then shows the tab again; errors go to the page.
async function act(change) {
  try {
    showError("");
    await change();
    await refresh();
  } catch (e) {
    showError(e.message);
  }
}

function cell(row, value, number) {
  const td = row.insertCell();
  td.textContent = value === undefined || value === null ? "" : String(value);
  if (number) td.className = "number";
  return td;
}

function button(td, label, onClick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.addEventListener("click", onClick);
  td.appendChild(b);
  return b;
}

// Fills `table` with `rows` (objects), the columns named, plus actions.
function fill(table, rows, columns, actions) {
  table.innerHTML = "";
  const head = table.createTHead().insertRow();
  for (const column of columns) cell(head, column);
  if (actions) cell(head, "");
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    tr.dataset.name = row.name || row.id || "";
    for (const column of columns) cell(tr, row[column], typeof row[column] === "number");
    if (actions) actions(row, tr.insertCell());
  }
}

function sum(rows, column) {
  return rows.reduce((total, row) => total + (row[column] || 0), 0);
}

// One sample of the vhost's totals: rates from the last sample.
function sample(queues) {
  const now = Date.now() / 1000;
  const totals = Object.fromEntries(SERIES.map(([name]) => [name, sum(queues, name)]));
  if (state.last) {
    const seconds = Math.max(now - state.last.at, 0.001);
    const rates = Object.fromEntries(
      SERIES.map(([name]) => [name, Math.max(totals[name] - state.last.totals[name], 0) / seconds]),
    );
    state.history.push({ at: now, rates });
    state.history = state.history.filter((point) => point.at >= now - HISTORY_SECONDS);
  }
  state.last = { at: now, totals };
}

function drawChart() {
  const canvas = $("#rates");
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const points = state.history;
  const peak = Math.max(1, ...points.flatMap((p) => SERIES.map(([name]) => p.rates[name])));
  const now = Date.now() / 1000;
  const x = (at) => canvas.width - ((now - at) / HISTORY_SECONDS) * canvas.width;
  const y = (rate) => canvas.height - 10 - (rate / peak) * (canvas.height - 30);
  g.fillStyle = "#555";
  g.fillText(`${Math.round(peak)}/s`, 4, 12);
  for (const [name, colour] of SERIES) {
    g.strokeStyle = colour;
    g.lineWidth = 2;
    g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(x(p.at), y(p.rates[name])) : g.moveTo(x(p.at), y(p.rates[name]))));
    g.stroke();
  }
  // What the chart shows, for people reading numbers and for tests.
  const latest = points[points.length - 1];
  canvas.dataset.points = String(points.length);
  canvas.dataset.peakPublishRate = String(Math.max(0, ...points.map((p) => p.rates.published)));
  canvas.title = latest
    ? SERIES.map(([name]) => `${name} ${latest.rates[name].toFixed(1)}/s`).join(", ")
    : "";
}

async function showOverview(queues) {
  const totals = $("#totals");
  totals.innerHTML = "";
  for (const [label, value] of [
    ["queues", queues.length],
    ["ready", sum(queues, "ready")],
    ["unacked", sum(queues, "unacked")],
    ["consumers", sum(queues, "consumers")],
  ]) {
    const div = document.createElement("div");
    div.innerHTML = `<strong data-total="${label}">${value}</strong>${label}`;
    totals.appendChild(div);
  }
  drawChart();
}

const tabs = {
  async overview(queues) {
    await showOverview(queues);
  },
  async queues(queues) {
    fill($("#queues table"), queues, ["name", "ready", "unacked", "consumers", "delayed", "published", "delivered", "acked", "dead_lettered", "arguments"], (q, td) => {
      button(td, "purge", () => act(() => api("POST", `/api/queues/${encodeURIComponent(q.name)}/purge`)));
      button(td, "delete", () => act(() => api("DELETE", `/api/queues/${encodeURIComponent(q.name)}`)));
    });
  },
  async exchanges() {
    const rows = (await api("GET", "/api/exchanges")).map((x) => ({ ...x, plugin: x.plugin || "(none)" }));
    fill($("#exchanges table"), rows, ["name", "type", "plugin", "bindings", "durable"]);
  },
  async bindings() {
    fill($("#bindings table"), await api("GET", "/api/bindings"), ["exchange", "queue", "key", "arguments"]);
  },
  async connections() {
    fill($("#connections table"), await api("GET", "/api/connections"), ["id", "user", "peer", "client", "channels", "opened"], (c, td) => {
      button(td, "close", () => act(() => api("DELETE", `/api/connections/${c.id}`)));
    });
  },
  async plugins() {
    const rows = await api("GET", "/api/plugins");
    fill($("#plugins table"), rows, ["name", "kind", "active", "versions", "language", "calls", "errors", "p99_call_us", "quarantined"], (p, td) => {
      const select = document.createElement("select");
      select.name = "version";
      for (const version of String(p.versions || "").split(",").filter(Boolean)) {
        const option = document.createElement("option");
        option.value = option.textContent = version;
        option.selected = version === p.active;
        select.appendChild(option);
      }
      td.appendChild(select);
      button(td, "activate", () =>
        act(() => api("POST", `/api/plugins/${encodeURIComponent(p.name)}/activate/${encodeURIComponent(select.value)}`)));
      button(td, "roll back", () => act(() => api("POST", `/api/plugins/${encodeURIComponent(p.name)}/rollback`)));
    });
  },
  async users() {
    fill($("#users table"), await api("GET", "/api/users"), ["name", "tags", "permissions"]);
    const vhosts = await api("GET", "/api/vhosts");
    $("#vhosts").textContent = vhosts.map((v) => v.name).join(", ");
  },
};

async function refresh() {
  try {
    const queues = await api("GET", "/api/queues");
    sample(queues);
    await tabs[state.tab](queues);
  } catch (e) {
    showError(e.message);
  }
}

function showTab(tab) {
  state.tab = tab;
  for (const section of document.querySelectorAll("main section")) section.hidden = section.id !== tab;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === tab);
  refresh();
}

$("#login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  state.auth = "Basic " + btoa(`${form.get("user")}:${form.get("password")}`);
  state.vhost = form.get("vhost") || "/";
  try {
    const overview = await api("GET", "/api/overview");
    $("#who").textContent = `${overview.user} @ ${overview.vhost}`;
    $("#login").hidden = true;
    $("#login-error").textContent = "";
    $("#app").hidden = false;
    showTab("overview");
    setInterval(refresh, 1000);
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
});

for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showTab(b.dataset.tab));

$("#upload").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const file = form.get("component");
  const query = new URLSearchParams();
  if (form.get("name")) query.set("name", form.get("name"));
  for (const pair of String(form.get("config") || "").split(",")) {
    const [key, ...value] = pair.split("=");
    if (key.trim()) query.set(`config.${key.trim()}`, value.join("=").trim());
  }
  query.set("activate", form.get("activate") ? "true" : "false");
  act(async () => api("POST", `/api/plugins?${query}`, await file.arrayBuffer(), "application/wasm"));
});
