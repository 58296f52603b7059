// Argon's web UI: a single page over the engine's REST API and the event
// API. Plain JavaScript, no build step. Data is put into the page as text
// (never as HTML), and every API call carries the token the user entered.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PAGE = 50;
const POLL_MS = 2000;
const PHASES = ["Pending", "Running", "Succeeded", "Failed", "Error"];
/** Node colours by phase (as in app.css). */
const COLOURS = { Succeeded: "#2f9e44", Failed: "#e03131", Error: "#c2255c", Running: "#1c7ed6", Pending: "#adb5bd", Skipped: "#ced4da", Omitted: "#ced4da" };
const colour = (phase) => COLOURS[phase] || COLOURS.Pending;

// ---- small helpers -------------------------------------------------------

/** An element with attributes (`on*` are listeners) and children (strings are text). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** An SVG element with attributes. */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const enc = encodeURIComponent;
const ns = (n) => (n ? n : "-");

function phaseBadge(phase) {
  return h("span", { class: "phase " + (phase || "Pending"), "data-phase": phase || "Pending" }, phase || "Pending");
}

function ago(time) {
  if (!time) return "";
  const secs = Math.round((Date.now() - Date.parse(time)) / 1000);
  if (secs < 60) return secs + "s ago";
  if (secs < 3600) return Math.round(secs / 60) + "m ago";
  if (secs < 86400) return Math.round(secs / 3600) + "h ago";
  return Math.round(secs / 86400) + "d ago";
}

function until(time) {
  const secs = Math.max(0, Math.round((Date.parse(time) - Date.now()) / 1000));
  if (secs < 60) return "in " + secs + "s";
  if (secs < 3600) return "in " + Math.round(secs / 60) + "m";
  if (secs < 86400) return "in " + Math.round(secs / 3600) + "h";
  return "in " + Math.round(secs / 86400) + "d";
}

/** Seconds between two times (to now when `end` is missing); null without a start. */
function seconds(start, end) {
  if (!start) return null;
  const e = end ? Date.parse(end) : Date.now();
  return Math.max(0, (e - Date.parse(start)) / 1000);
}

function duration(secs) {
  if (secs === null || secs === undefined) return "";
  if (secs < 60) return secs.toFixed(secs < 10 ? 1 : 0) + "s";
  const m = Math.floor(secs / 60);
  if (m < 60) return m + "m" + Math.round(secs % 60) + "s";
  return Math.floor(m / 60) + "h" + (m % 60) + "m";
}

function notice(text, isError) {
  const el = document.getElementById("notice");
  if (!text) {
    el.hidden = true;
    return;
  }
  el.textContent = text;
  el.className = isError ? "error" : "";
  el.hidden = false;
}

// ---- the API -------------------------------------------------------------

function token() {
  return localStorage.getItem("argon.token") || "";
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the API; JSON in and out. Refusals become an ApiError with the server's message. */
async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  const t = token();
  if (t) opts.headers["Authorization"] = "Bearer " + t;
  if (opts.body !== undefined && typeof opts.body !== "string") {
    opts.body = JSON.stringify(opts.body);
    opts.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, opts);
  const text = await resp.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  if (!resp.ok) {
    let message = (body && body.message) || resp.statusText;
    if (resp.status === 401) message = "The API needs a token: enter it above. (" + message + ")";
    if (resp.status === 403) message = "This token may only read: changes need the read-write token.";
    throw new ApiError(resp.status, message);
  }
  return body;
}

/** Log lines as the log endpoint streams them (newline-delimited JSON). */
async function logLines(namespace, name, after) {
  const t = token();
  const resp = await fetch(
    `/api/v1/workflows/${ns(namespace)}/${enc(name)}/log?logOptions.follow=false&after=${after}`,
    { headers: t ? { Authorization: "Bearer " + t } : {} },
  );
  if (!resp.ok) throw new ApiError(resp.status, "cannot read the logs (" + resp.status + ")");
  const text = await resp.text();
  return text
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l).result);
}

/** Runs an action, then tells how it went; `then` runs after a success. */
async function act(what, call, then) {
  try {
    const result = await call();
    notice(what + ": done");
    if (then) then(result);
  } catch (e) {
    notice(what + " failed: " + e.message, true);
  }
}

// ---- routing -------------------------------------------------------------

let stopPage = () => {};

/** Polls `fn` every `ms` until the page changes. */
function every(ms, fn) {
  const id = setInterval(fn, ms);
  const previous = stopPage;
  stopPage = () => {
    clearInterval(id);
    previous();
  };
}

const routes = [
  [/^#\/workflows\/([^/]+)\/([^/]+)$/, (m) => workflowPage(decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^#\/workflows(\?.*)?$/, (m) => workflowsPage(new URLSearchParams((m[1] || "").slice(1)))],
  [/^#\/templates\/([^/]+)\/([^/]+)$/, (m) => templatePage(decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^#\/templates$/, () => templatesPage()],
  [/^#\/cron\/([^/]+)\/([^/]+)$/, (m) => cronPage(decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^#\/cron$/, () => cronListPage()],
  [/^#\/events\/(.+)$/, (m) => eventPage(decodeURIComponent(m[1]))],
  [/^#\/events(\?.*)?$/, (m) => eventsPage(new URLSearchParams((m[1] || "").slice(1)))],
  [/^#\/event-flow$/, () => eventFlowPage()],
];

async function render() {
  stopPage();
  stopPage = () => {};
  notice("");
  const hash = location.hash || "#/workflows";
  const main = document.getElementById("main");
  main.replaceChildren();
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", hash.startsWith("#/" + a.dataset.nav));
  }
  for (const [re, page] of routes) {
    const m = hash.match(re);
    if (m) {
      try {
        await page(m, main);
      } catch (e) {
        notice(e.message, true);
      }
      return;
    }
  }
  main.append(h("p", {}, "No such page. ", h("a", { href: "#/workflows" }, "Workflows")));
}

function main() {
  return document.getElementById("main");
}

// ---- workflows list ------------------------------------------------------

function workflowQuery(params, continueToken) {
  const q = new URLSearchParams();
  q.set("listOptions.limit", String(PAGE));
  if (continueToken) q.set("listOptions.continue", continueToken);
  const labels = [];
  if (params.get("label")) labels.push(params.get("label"));
  if (labels.length) q.set("listOptions.labelSelector", labels.join(","));
  if (params.get("phase")) q.set("listOptions.fieldSelector", "status.phase=" + params.get("phase"));
  if (params.get("template")) q.set("template", params.get("template"));
  const since = params.get("since");
  if (since) q.set("createdAfter", new Date(Date.now() - Number(since) * 1000).toISOString());
  return q.toString();
}

async function workflowsPage(params) {
  const m = main();
  const filters = h(
    "form",
    { class: "filters", id: "workflow-filters" },
    h("select", { name: "phase", "aria-label": "phase" }, h("option", { value: "" }, "any phase"),
      PHASES.map((p) => h("option", { value: p, selected: params.get("phase") === p }, p))),
    h("input", { name: "template", placeholder: "template", value: params.get("template") || "" }),
    h("input", { name: "label", placeholder: "label selector (k=v)", value: params.get("label") || "" }),
    h("select", { name: "since", "aria-label": "since" },
      [["", "any time"], ["3600", "last hour"], ["86400", "last day"], ["604800", "last week"]].map(([v, t]) =>
        h("option", { value: v, selected: (params.get("since") || "") === v }, t))),
    h("button", { type: "submit" }, "Filter"),
  );
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(filters)) if (v) q.set(k, v);
    location.hash = "#/workflows" + (q.toString() ? "?" + q : "");
  });
  const body = h("tbody");
  const table = h("table", { id: "workflow-list" },
    h("thead", {}, h("tr", {}, ["Name", "Namespace", "Phase", "Template", "Created", "Duration", "Made by"].map((c) => h("th", {}, c)))),
    body);
  const pager = h("div", { class: "pager" });
  m.append(h("h1", {}, "Workflows"), filters, table, pager);

  // The continue tokens of the pages before this one.
  const pages = [null];
  let current = 0;
  let renderedAt = null;
  const load = async () => {
    const started = performance.now();
    const list = await api("/api/v1/workflows/-?" + workflowQuery(params, pages[current]));
    const rows = (list.items || []).map(workflowRow);
    body.replaceChildren(...rows);
    if (!rows.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No workflows.")));
    const next = list.metadata && list.metadata.continue;
    pages.length = current + 1;
    if (next) pages.push(next);
    pager.replaceChildren(
      h("button", { id: "prev", disabled: current === 0, onclick: () => { current--; load(); } }, "Previous"),
      h("span", { class: "muted" }, "page " + (current + 1)),
      h("button", { id: "next", disabled: !next, onclick: () => { current++; load(); } }, "Next"),
    );
    if (renderedAt === null) {
      renderedAt = performance.now() - started;
      table.dataset.firstRenderMs = renderedAt.toFixed(1);
    }
    table.dataset.loaded = String(Number(table.dataset.loaded || 0) + 1);
  };
  await load();
  // Live: the page is read again while it is shown.
  every(POLL_MS, () => load().catch((e) => notice(e.message, true)));
}

function workflowRow(wf) {
  const md = wf.metadata || {};
  const st = wf.status || {};
  const labels = md.labels || {};
  const template = labels["workflows.argoproj.io/workflow-template"];
  const sensor = labels["events.argoproj.io/sensor"];
  const event = labels["events.argon.dev/event"];
  return h("tr", { "data-name": md.name, "data-phase": st.phase || "Pending" },
    h("td", {}, h("a", { href: `#/workflows/${enc(md.namespace)}/${enc(md.name)}` }, md.name)),
    h("td", {}, md.namespace),
    h("td", {}, phaseBadge(st.phase)),
    h("td", {}, template ? h("a", { href: `#/templates/${enc(md.namespace)}/${enc(template)}` }, template) : ""),
    h("td", { title: md.creationTimestamp }, ago(md.creationTimestamp)),
    h("td", {}, duration(seconds(st.startedAt, st.finishedAt))),
    h("td", {}, sensor ? [sensor + "/" + (labels["events.argoproj.io/trigger"] || ""), event ? [" ", h("a", { href: "#/events/" + enc(event) }, "event")] : ""] : ""),
  );
}

// ---- one workflow --------------------------------------------------------

async function workflowPage(namespace, name) {
  const m = main();
  let wf = await api(`/api/v1/workflows/${ns(namespace)}/${enc(name)}`);
  let selected = null;
  const head = h("div");
  const graph = h("div", { id: "graph-box" });
  const details = h("div", { class: "panel", id: "node-details" }, h("p", { class: "muted" }, "Click a step for its inputs, outputs, artifacts and logs."));
  const logs = h("pre", { id: "logs" });
  const lines = [];
  m.append(head, h("div", { class: "grid" }, h("div", {}, graph, h("h2", {}, "Logs"), logs), details));

  const show = () => {
    head.replaceChildren(...workflowHeader(wf));
    graph.replaceChildren(workflowGraph(wf, selected, (id) => {
      selected = id;
      show();
    }));
    details.replaceChildren(...nodeDetails(wf, selected, lines));
  };
  const showLogs = () => {
    const node = selected && (wf.status.nodes || {})[selected];
    const shown = node ? lines.filter((l) => l.podName === node.displayName || l.podName === node.name) : lines;
    logs.textContent = shown.map((l) => (node ? "" : l.podName + ": ") + l.content).join("\n") || "(no output yet)";
  };
  let after = 0;
  const readLogs = async () => {
    const more = await logLines(namespace, name, after);
    if (more.length) {
      lines.push(...more);
      after = more[more.length - 1].seq;
    }
    showLogs();
  };
  show();
  await readLogs();
  every(POLL_MS, async () => {
    const running = !wf.status || !["Succeeded", "Failed", "Error"].includes(wf.status.phase);
    if (!running && lines.length && after >= 0 && wf._finalRead) return;
    try {
      wf = await api(`/api/v1/workflows/${ns(namespace)}/${enc(name)}`);
      if (!running) wf._finalRead = true;
      show();
      await readLogs();
    } catch (e) {
      notice(e.message, true);
    }
  });
  // Clicking a node shows its logs only.
  graph.addEventListener("click", () => setTimeout(showLogs, 0));
}

function workflowHeader(wf) {
  const md = wf.metadata;
  const st = wf.status || {};
  const labels = md.labels || {};
  const annotations = md.annotations || {};
  const path = `/api/v1/workflows/${ns(md.namespace)}/${enc(md.name)}`;
  const reload = () => render();
  const action = (verb) =>
    h("button", { "data-action": verb, onclick: () => act(verb, () => api(`${path}/${verb}`, { method: "PUT", body: {} }), (res) => {
      if (verb === "resubmit" && res && res.metadata) location.hash = `#/workflows/${enc(res.metadata.namespace)}/${enc(res.metadata.name)}`;
      else reload();
    }) }, verb);
  let eventIds = [];
  try {
    eventIds = Object.entries(JSON.parse(annotations["events.argon.dev/events"] || "{}"));
  } catch (_) {
    eventIds = [];
  }
  const template = labels["workflows.argoproj.io/workflow-template"];
  return [
    h("h1", {}, md.name, " ", phaseBadge(st.phase)),
    h("dl", { class: "kv" },
      h("dt", {}, "Namespace"), h("dd", {}, md.namespace),
      h("dt", {}, "Started"), h("dd", {}, st.startedAt || ""),
      h("dt", {}, "Duration"), h("dd", {}, duration(seconds(st.startedAt, st.finishedAt))),
      st.message ? [h("dt", {}, "Message"), h("dd", {}, st.message)] : [],
      template ? [h("dt", {}, "Template"), h("dd", {}, h("a", { href: `#/templates/${enc(md.namespace)}/${enc(template)}` }, template))] : [],
      labels["events.argoproj.io/sensor"] ? [h("dt", {}, "Made by"), h("dd", {}, "sensor " + labels["events.argoproj.io/sensor"] + ", trigger " + (labels["events.argoproj.io/trigger"] || ""))] : [],
      eventIds.length ? [h("dt", {}, "Events"), h("dd", { id: "workflow-events" }, eventIds.map(([dep, id]) => h("div", {}, dep + ": ", h("a", { href: "#/events/" + enc(id) }, id))))] : [],
      labels["events.argon.dev/replay-of"] ? [h("dt", {}, "Replay of"), h("dd", {}, h("a", { href: "#/events/" + enc(labels["events.argon.dev/replay-of"]) }, labels["events.argon.dev/replay-of"]))] : [],
    ),
    h("div", { class: "actions" },
      ["resubmit", "retry", "suspend", "resume", "stop", "terminate"].map(action),
      h("button", { class: "danger", "data-action": "delete", onclick: () => {
        if (confirm("Delete workflow " + md.name + "?")) act("delete", () => api(path, { method: "DELETE" }), () => { location.hash = "#/workflows"; });
      } }, "delete"),
    ),
  ];
}

/** The steps or DAG as an SVG graph: one row per depth, nodes coloured by phase. */
function workflowGraph(wf, selected, onSelect) {
  const nodes = (wf.status && wf.status.nodes) || {};
  const ids = Object.keys(nodes);
  const svg = s("svg", { class: "graph", id: "graph", "data-nodes": ids.length });
  if (!ids.length) {
    svg.setAttribute("width", 300);
    svg.setAttribute("height", 40);
    svg.append(s("text", { x: 10, y: 25, class: "dark" }, "No steps yet."));
    return svg;
  }
  const isChild = new Set();
  for (const n of Object.values(nodes)) for (const c of n.children || []) isChild.add(c);
  const depth = {};
  const queue = ids.filter((id) => !isChild.has(id)).map((id) => [id, 0]);
  while (queue.length) {
    const [id, d] = queue.shift();
    if (depth[id] !== undefined && depth[id] >= d) continue;
    depth[id] = d;
    for (const c of (nodes[id] && nodes[id].children) || []) if (nodes[c] && d < ids.length) queue.push([c, d + 1]);
  }
  const rows = [];
  for (const id of ids) {
    const d = depth[id] || 0;
    (rows[d] = rows[d] || []).push(id);
  }
  const W = 170, H = 40, GX = 24, GY = 34;
  const pos = {};
  const widest = Math.max(...rows.map((r) => (r || []).length));
  rows.forEach((row, d) => {
    (row || []).sort((a, b) => String(nodes[a].startedAt || "").localeCompare(String(nodes[b].startedAt || "")) ||
      String(nodes[a].displayName || "").localeCompare(String(nodes[b].displayName || ""), undefined, { numeric: true }));
    const offset = ((widest - row.length) * (W + GX)) / 2;
    row.forEach((id, i) => { pos[id] = [10 + offset + i * (W + GX), 10 + d * (H + GY)]; });
  });
  svg.setAttribute("width", 20 + widest * (W + GX));
  svg.setAttribute("height", 20 + rows.length * (H + GY));
  for (const id of ids) {
    for (const c of nodes[id].children || []) {
      if (!pos[c]) continue;
      const [x1, y1] = pos[id];
      const [x2, y2] = pos[c];
      svg.append(s("path", { class: "edge", d: `M${x1 + W / 2},${y1 + H} C${x1 + W / 2},${y1 + H + GY / 2} ${x2 + W / 2},${y2 - GY / 2} ${x2 + W / 2},${y2}` }));
    }
  }
  for (const id of ids) {
    const n = nodes[id];
    const [x, y] = pos[id];
    const phase = n.phase || "Pending";
    const g = s("g", { class: "node" + (id === selected ? " selected" : ""), "data-id": id, "data-phase": phase, "data-name": n.displayName || n.name, transform: `translate(${x},${y})`, onclick: () => onSelect(id) },
      s("rect", { width: W, height: H, rx: 6, fill: colour(phase) }),
      s("text", { x: 8, y: 16 }, truncate(n.displayName || n.name, 22)),
      s("text", { x: 8, y: 32 }, (n.type || "") + " " + duration(seconds(n.startedAt, n.finishedAt))),
      s("title", {}, `${n.displayName || n.name} (${phase})`),
    );
    svg.append(g);
  }
  return svg;
}

function truncate(text, n) {
  text = String(text || "");
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function nodeDetails(wf, id, lines) {
  const node = id && ((wf.status && wf.status.nodes) || {})[id];
  if (!node) return [h("p", { class: "muted" }, "Click a step for its inputs, outputs, artifacts and logs.")];
  const md = wf.metadata;
  const params = (list) => (list || []).map((p) => h("div", {}, h("b", {}, p.name), " = ", p.value === undefined ? "" : String(p.value)));
  const artifacts = (list, stored) => (list || []).map((a) => h("div", { class: "artifact", "data-name": a.name },
    stored && a.deleted !== true
      ? h("a", { href: "#", onclick: (e) => { e.preventDefault(); download(md, node.id, a.name); } }, a.name)
      : h("b", {}, a.name),
    " ", h("span", { class: "muted" }, a.path || ""),
    " ", h("code", { class: "location" }, artifactLocation(a))));
  const inputs = node.inputs || {};
  const outputs = node.outputs || {};
  return [
    h("h2", {}, node.displayName || node.name, " ", phaseBadge(node.phase)),
    h("dl", { class: "kv" },
      h("dt", {}, "Type"), h("dd", {}, node.type || ""),
      h("dt", {}, "Template"), h("dd", {}, node.templateName || ""),
      h("dt", {}, "Started"), h("dd", {}, node.startedAt || ""),
      h("dt", {}, "Duration"), h("dd", {}, duration(seconds(node.startedAt, node.finishedAt))),
      node.message ? [h("dt", {}, "Message"), h("dd", {}, node.message)] : [],
    ),
    h("h2", {}, "Inputs"), h("div", { id: "node-inputs" }, params(inputs.parameters), artifacts(inputs.artifacts, false)),
    h("h2", {}, "Outputs"), h("div", { id: "node-outputs" }, params(outputs.parameters), artifacts(outputs.artifacts, true),
      outputs.result !== undefined ? h("div", {}, h("b", {}, "result"), " = ", String(outputs.result)) : "",
      outputs.exitCode !== undefined ? h("div", {}, h("b", {}, "exit code"), " = ", String(outputs.exitCode)) : ""),
    h("p", { class: "muted" }, lines.length + " log lines in the workflow; the log shows this step's."),
  ];
}

// Where an artifact is stored, as `argon get` prints it: s3://bucket/key
// (with the endpoint), local:key in the engine's own repository, or the
// source of an input (http, git, raw).
function artifactLocation(a) {
  let where = "";
  if (a.s3) {
    const key = a.s3.key || "";
    where = a.s3.bucket ? `s3://${a.s3.bucket}/${key}` + (a.s3.endpoint ? ` (${a.s3.endpoint})` : "") : `local:${key}`;
  } else if (a.http) where = a.http.url || "";
  else if (a.git) where = (a.git.repo || "") + (a.git.revision ? "@" + a.git.revision : "");
  else if (a.raw) where = "raw";
  else if (a.gcs) where = `gs://${a.gcs.bucket || ""}/${a.gcs.key || ""}`;
  else if (a.azure) where = `azure://${a.azure.container || ""}/${a.azure.blob || ""}`;
  if (a.deleted === true) where += " [deleted]";
  return where;
}

async function download(md, nodeId, artifact) {
  const t = token();
  const resp = await fetch(`/artifacts/${enc(md.namespace)}/${enc(md.name)}/${enc(nodeId)}/${enc(artifact)}`, { headers: t ? { Authorization: "Bearer " + t } : {} });
  if (!resp.ok) {
    notice("cannot download " + artifact + " (" + resp.status + ")", true);
    return;
  }
  const url = URL.createObjectURL(await resp.blob());
  const a = h("a", { href: url, download: artifact });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---- templates -----------------------------------------------------------

async function templatesPage() {
  const m = main();
  const list = await api("/api/v1/workflow-templates/-");
  const items = list.items || [];
  m.append(h("h1", {}, "WorkflowTemplates"),
    h("table", { id: "template-list" },
      h("thead", {}, h("tr", {}, ["Name", "Namespace", "Entrypoint", "Parameters"].map((c) => h("th", {}, c)))),
      h("tbody", {}, items.length ? items.map((t) => h("tr", { "data-name": t.metadata.name },
        h("td", {}, h("a", { href: `#/templates/${enc(t.metadata.namespace || "default")}/${enc(t.metadata.name)}` }, t.metadata.name)),
        h("td", {}, t.metadata.namespace || ""),
        h("td", {}, (t.spec && t.spec.entrypoint) || ""),
        h("td", {}, templateParameters(t).map((p) => p.name).join(", ")),
      )) : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "No WorkflowTemplates.")))));
}

function templateParameters(t) {
  return (t.spec && t.spec.arguments && t.spec.arguments.parameters) || [];
}

async function templatePage(namespace, name) {
  const m = main();
  const t = await api(`/api/v1/workflow-templates/${ns(namespace)}/${enc(name)}`);
  const history = h("div", { id: "template-history" });
  const form = h("form", { class: "params", id: "submit-form" },
    templateParameters(t).map((p) => [
      h("label", { for: "p-" + p.name }, p.name),
      p.enum ? h("select", { id: "p-" + p.name, name: p.name }, p.enum.map((v) => h("option", { value: v, selected: v === p.value }, v)))
        : h("input", { id: "p-" + p.name, name: p.name, value: p.value === undefined ? "" : String(p.value) }),
    ]),
    h("span"), h("button", { type: "submit", class: "primary", id: "submit" }, "Submit"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const parameters = [...new FormData(form)].map(([k, v]) => ({ name: k, value: v }));
    const workflow = {
      apiVersion: "argoproj.io/v1alpha1",
      kind: "Workflow",
      metadata: { generateName: name + "-", namespace: t.metadata.namespace || namespace },
      spec: { workflowTemplateRef: { name }, arguments: { parameters } },
    };
    act("submit", () => api(`/api/v1/workflows/${ns(t.metadata.namespace || namespace)}`, { method: "POST", body: { workflow } }), (wf) => {
      location.hash = `#/workflows/${enc(wf.metadata.namespace)}/${enc(wf.metadata.name)}`;
    });
  });
  m.append(h("h1", {}, "WorkflowTemplate ", name), h("h2", {}, "Submit"), form, h("h2", {}, "Run history"), history);
  const load = async () => {
    const runs = await api(`/api/v1/workflows/-?template=${enc(name)}&listOptions.limit=500`);
    history.replaceChildren(...runHistory(runs.items || []));
  };
  await load();
  every(POLL_MS * 2, () => load().catch((e) => notice(e.message, true)));
}

/** Success rate, a chart of durations and the last runs of a list of workflows. */
function runHistory(items) {
  const finished = items.filter((w) => w.status && ["Succeeded", "Failed", "Error"].includes(w.status.phase));
  const succeeded = finished.filter((w) => w.status.phase === "Succeeded").length;
  const rate = finished.length ? Math.round((100 * succeeded) / finished.length) + "%" : "–";
  const durations = finished.map((w) => seconds(w.status.startedAt, w.status.finishedAt) || 0);
  const mean = durations.length ? durations.reduce((a, b) => a + b, 0) / durations.length : null;
  return [
    h("div", {},
      h("span", { class: "stat" }, h("b", { id: "run-count" }, items.length), "runs"),
      h("span", { class: "stat" }, h("b", { id: "success-rate" }, rate), "succeeded"),
      h("span", { class: "stat" }, h("b", {}, duration(mean) || "–"), "mean duration")),
    durationChart(finished.slice(0, 60).reverse()),
    h("table", { id: "run-list" },
      h("thead", {}, h("tr", {}, ["Run", "Phase", "Created", "Duration"].map((c) => h("th", {}, c)))),
      h("tbody", {}, items.slice(0, 20).map((w) => h("tr", { "data-name": w.metadata.name },
        h("td", {}, h("a", { href: `#/workflows/${enc(w.metadata.namespace)}/${enc(w.metadata.name)}` }, w.metadata.name)),
        h("td", {}, phaseBadge(w.status && w.status.phase)),
        h("td", {}, ago(w.metadata.creationTimestamp)),
        h("td", {}, duration(seconds(w.status && w.status.startedAt, w.status && w.status.finishedAt))))))),
  ];
}

/** Bars of the durations of finished runs, oldest left, coloured by phase. */
function durationChart(runs) {
  const W = 12, GAP = 3, HEIGHT = 120;
  const svg = s("svg", { class: "graph", id: "duration-chart", width: Math.max(200, 40 + runs.length * (W + GAP)), height: HEIGHT + 30, "data-bars": runs.length });
  const max = Math.max(1, ...runs.map((w) => seconds(w.status.startedAt, w.status.finishedAt) || 0));
  svg.append(s("text", { x: 4, y: 14, class: "dark" }, "duration (max " + duration(max) + ")"));
  runs.forEach((w, i) => {
    const d = seconds(w.status.startedAt, w.status.finishedAt) || 0;
    const bh = Math.max(2, (d / max) * HEIGHT);
    svg.append(s("rect", { x: 30 + i * (W + GAP), y: 20 + HEIGHT - bh, width: W, height: bh, fill: colour(w.status.phase) },
      s("title", {}, `${w.metadata.name}: ${duration(d)} (${w.status.phase})`)));
  });
  return svg;
}

// ---- CronWorkflows -------------------------------------------------------

async function cronListPage() {
  const m = main();
  const body = h("tbody");
  m.append(h("h1", {}, "CronWorkflows"),
    h("table", { id: "cron-list" }, h("thead", {}, h("tr", {}, ["Name", "Namespace", "Schedule", "Next run", "Last run", "Suspended", ""].map((c) => h("th", {}, c)))), body));
  const load = async () => {
    const list = await api("/api/v1/cron-workflows/-");
    const rows = [];
    for (const c of list.items || []) {
      const md = c.metadata;
      let next = "";
      try {
        const runs = await api(`/api/v1/cron-workflows/${ns(md.namespace)}/${enc(md.name)}/next-runs?count=1`);
        next = runs.nextRuns[0] || "";
      } catch (_) {
        next = "";
      }
      rows.push(cronRow(c, next, load));
    }
    body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No CronWorkflows."))]));
  };
  await load();
  every(POLL_MS * 5, () => load().catch((e) => notice(e.message, true)));
}

function schedules(c) {
  const spec = c.spec || {};
  return [spec.schedule, ...(spec.schedules || [])].filter(Boolean).join(", ");
}

function cronRow(c, next, reload) {
  const md = c.metadata;
  const suspended = !!(c.spec && c.spec.suspend);
  const verb = suspended ? "resume" : "suspend";
  return h("tr", { "data-name": md.name },
    h("td", {}, h("a", { href: `#/cron/${enc(md.namespace)}/${enc(md.name)}` }, md.name)),
    h("td", {}, md.namespace),
    h("td", {}, schedules(c)),
    h("td", {}, next ? next + " (" + until(next) + ")" : suspended ? "suspended" : ""),
    h("td", {}, (c.status && c.status.lastScheduledTime) || ""),
    h("td", {}, suspended ? "yes" : "no"),
    h("td", {}, h("button", { "data-action": verb, onclick: () => act(verb, () => api(`/api/v1/cron-workflows/${ns(md.namespace)}/${enc(md.name)}/${verb}`, { method: "PUT", body: {} }), reload) }, verb)),
  );
}

async function cronPage(namespace, name) {
  const m = main();
  const c = await api(`/api/v1/cron-workflows/${ns(namespace)}/${enc(name)}`);
  const next = await api(`/api/v1/cron-workflows/${ns(namespace)}/${enc(name)}/next-runs?count=5`);
  const runs = await api(`/api/v1/workflows/-?listOptions.labelSelector=${enc("workflows.argoproj.io/cron-workflow=" + name)}&listOptions.limit=500`);
  const suspended = !!(c.spec && c.spec.suspend);
  const verb = suspended ? "resume" : "suspend";
  m.append(h("h1", {}, "CronWorkflow ", name),
    h("dl", { class: "kv" },
      h("dt", {}, "Schedule"), h("dd", {}, schedules(c)),
      h("dt", {}, "Time zone"), h("dd", {}, (c.spec && c.spec.timezone) || "UTC"),
      h("dt", {}, "Next runs"), h("dd", { id: "next-runs" }, next.nextRuns.length ? next.nextRuns.map((t) => h("div", {}, t)) : "none (suspended)"),
      h("dt", {}, "Last run"), h("dd", {}, (c.status && c.status.lastScheduledTime) || "never"),
      h("dt", {}, "Suspended"), h("dd", {}, suspended ? "yes" : "no")),
    h("div", { class: "actions" }, h("button", { "data-action": verb, onclick: () => act(verb, () => api(`/api/v1/cron-workflows/${ns(namespace)}/${enc(name)}/${verb}`, { method: "PUT", body: {} }), () => render()) }, verb)),
    h("h2", {}, "History"), ...runHistory(runs.items || []));
}

// ---- events --------------------------------------------------------------

async function eventsPage(params) {
  const m = main();
  const filters = h("form", { class: "filters" },
    h("input", { name: "source", placeholder: "EventSource", value: params.get("source") || "" }),
    h("input", { name: "event", placeholder: "event name", value: params.get("event") || "" }),
    h("select", { name: "since", "aria-label": "since" },
      [["", "any time"], ["1h", "last hour"], ["24h", "last day"], ["168h", "last week"]].map(([v, t]) =>
        h("option", { value: v, selected: (params.get("since") || "") === v }, t))),
    h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(filters)) if (v) q.set(k, v);
    location.hash = "#/events" + (q.toString() ? "?" + q : "");
  });
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  m.append(h("h1", {}, "Events"), filters,
    h("table", { id: "event-list" }, h("thead", {}, h("tr", {}, ["Id", "EventSource", "Event", "Type", "Stored", "Replay of"].map((c) => h("th", {}, c)))), body), pager);
  const pages = [null];
  let current = 0;
  const load = async () => {
    const q = new URLSearchParams();
    for (const k of ["source", "event", "since"]) if (params.get(k)) q.set(k, params.get(k));
    q.set("limit", String(PAGE));
    if (pages[current]) q.set("continue", pages[current]);
    const list = await api("/api/v1/events?" + q);
    const rows = (list.items || []).map((e) => h("tr", { "data-id": e.context.id },
      h("td", {}, h("a", { href: "#/events/" + enc(e.context.id) }, e.context.id)),
      h("td", {}, e.context.source), h("td", {}, e.context.subject), h("td", {}, e.context.type),
      h("td", { title: e.storedAt }, ago(e.storedAt)),
      h("td", {}, e.context.argonreplayof ? h("a", { href: "#/events/" + enc(e.context.argonreplayof) }, e.context.argonreplayof) : "")));
    body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No stored events."))]));
    const next = list.metadata && list.metadata.continue;
    pages.length = current + 1;
    if (next) pages.push(next);
    pager.replaceChildren(
      h("button", { disabled: current === 0, onclick: () => { current--; load(); } }, "Previous"),
      h("span", { class: "muted" }, "page " + (current + 1)),
      h("button", { disabled: !next, onclick: () => { current++; load(); } }, "Next"));
  };
  await load();
  every(POLL_MS * 2, () => load().catch((e) => notice(e.message, true)));
}

async function eventPage(id) {
  const m = main();
  const [event, flow] = await Promise.all([api("/api/v1/events/" + enc(id)), api("/api/v1/event-flow").catch(() => null)]);
  const c = event.context;
  const sensors = flow ? flow.nodes.filter((n) => n.kind === "Sensor").map((n) => n.name) : [];
  const target = h("select", { id: "replay-sensor", "aria-label": "sensor" }, h("option", { value: "" }, "every sensor"), sensors.map((n) => h("option", { value: n }, n)));
  const data = event.data !== undefined ? JSON.stringify(event.data, null, 2) : "(base64) " + (event.data_base64 || "");
  const workflows = event.workflows || [];
  m.append(
    h("h1", {}, "Event ", c.id),
    h("dl", { class: "kv" },
      h("dt", {}, "EventSource"), h("dd", {}, c.source),
      h("dt", {}, "Event"), h("dd", {}, c.subject),
      h("dt", {}, "Type"), h("dd", {}, c.type),
      h("dt", {}, "Time"), h("dd", {}, c.time),
      h("dt", {}, "Stored"), h("dd", {}, event.storedAt + " (bus " + event.bus + ", sequence " + event.sequence + ")"),
      c.argonreplayof ? [h("dt", {}, "Replay of"), h("dd", {}, h("a", { href: "#/events/" + enc(c.argonreplayof) }, c.argonreplayof))] : [],
      c.argonsensor ? [h("dt", {}, "For sensor"), h("dd", {}, c.argonsensor)] : []),
    h("div", { class: "actions" }, "Replay to ", target,
      h("button", { class: "primary", id: "replay", onclick: () => act("replay", () => api(`/api/v1/events/${enc(id)}/replay${target.value ? "?sensor=" + enc(target.value) : ""}`, { method: "POST" }), (replay) => {
        location.hash = "#/events/" + enc(replay.context.id);
      }) }, "Replay")),
    h("h2", {}, "Data"), h("pre", { id: "event-data" }, data),
    h("h2", {}, "Workflows it created"),
    h("table", { id: "event-workflows" },
      h("thead", {}, h("tr", {}, ["Workflow", "Phase", "Sensor", "Trigger", "Created"].map((x) => h("th", {}, x)))),
      h("tbody", {}, workflows.length ? workflows.map((w) => h("tr", { "data-name": w.name },
        h("td", {}, h("a", { href: `#/workflows/${enc(w.namespace)}/${enc(w.name)}` }, w.name), w.replayOf ? h("span", { class: "muted" }, " (from replay ", h("a", { href: "#/events/" + enc(w.event) }, w.event), ")") : ""),
        h("td", {}, phaseBadge(w.phase)), h("td", {}, w.sensor || ""), h("td", {}, w.trigger || ""), h("td", {}, ago(w.createdAt)))) :
        h("tr", {}, h("td", { colspan: 5, class: "muted" }, "None (yet).")))),
  );
  // Workflows a sensor is still creating show up.
  every(POLL_MS * 2, async () => {
    const again = await api("/api/v1/events/" + enc(id)).catch(() => null);
    if (again && (again.workflows || []).length !== workflows.length) render();
  });
}

/** EventSources → Sensors → triggers → workflows, in four columns, with counts on the edges. */
async function eventFlowPage() {
  const m = main();
  const since = h("select", { id: "flow-since", "aria-label": "since" }, [["1h", "last hour"], ["24h", "last day"], ["168h", "last week"]].map(([v, t]) => h("option", { value: v, selected: v === "24h" }, t)));
  const box = h("div");
  m.append(h("h1", {}, "Event flow"), h("div", { class: "filters" }, "Counts of the ", since), box);
  const load = async () => {
    const flow = await api("/api/v1/event-flow?since=" + enc(since.value));
    box.replaceChildren(flowGraph(flow), flow.truncated ? h("p", { class: "muted" }, "Counts stop at the first 50,000 events and 10,000 workflows of a trigger.") : "");
  };
  since.addEventListener("change", () => load().catch((e) => notice(e.message, true)));
  await load();
  every(POLL_MS * 3, () => load().catch((e) => notice(e.message, true)));
}

function flowGraph(flow) {
  const columns = { EventSource: 0, Sensor: 1, Trigger: 2, Workflows: 3 };
  const W = 190, H = 44, GX = 110, GY = 20;
  const perColumn = [0, 0, 0, 0];
  const pos = {};
  for (const n of flow.nodes) {
    const col = columns[n.kind];
    pos[n.id] = [10 + col * (W + GX), 40 + perColumn[col]++ * (H + GY)];
  }
  const height = 60 + Math.max(1, ...perColumn) * (H + GY);
  const svg = s("svg", { class: "graph", id: "flow", width: 20 + 4 * W + 3 * GX, height, "data-nodes": flow.nodes.length, "data-edges": flow.edges.length });
  ["EventSources", "Sensors", "Triggers", "Workflows"].forEach((t, i) => svg.append(s("text", { x: 10 + i * (W + GX), y: 22, class: "dark" }, t)));
  for (const e of flow.edges) {
    if (!pos[e.from] || !pos[e.to]) continue;
    const [x1, y1] = pos[e.from];
    const [x2, y2] = pos[e.to];
    const a = [x1 + W, y1 + H / 2], b = [x2, y2 + H / 2];
    svg.append(s("path", { class: "edge", d: `M${a[0]},${a[1]} C${a[0] + GX / 2},${a[1]} ${b[0] - GX / 2},${b[1]} ${b[0]},${b[1]}` }));
    svg.append(s("text", { class: "count", x: (a[0] + b[0]) / 2 - 8, y: (a[1] + b[1]) / 2 - 4, "data-from": e.from, "data-to": e.to, "data-count": e.count }, String(e.count), s("title", {}, e.label || "")));
  }
  const colours = { EventSource: "#5f3dc4", Sensor: "#1864ab", Trigger: "#087f5b", Workflows: "#495057" };
  for (const n of flow.nodes) {
    const [x, y] = pos[n.id];
    const label = n.kind === "Workflows" ? Object.entries(n.phases || {}).map(([p, c]) => p + " " + c).join(", ") || "none" : n.name;
    const sub = n.kind === "EventSource" ? (n.events || []).map((e) => e.name).join(", ") : n.kind === "Trigger" ? n.triggerKind : n.kind === "Sensor" ? "bus " + n.bus : "workflows";
    const g = s("g", { class: "node", "data-id": n.id, transform: `translate(${x},${y})`, onclick: () => {
      if (n.kind === "Workflows") location.hash = "#/workflows?label=" + enc(n.selector);
      else if (n.kind === "EventSource") location.hash = "#/events?source=" + enc(n.name);
    } },
      s("rect", { width: W, height: H, rx: 6, fill: colours[n.kind] }),
      s("text", { x: 8, y: 18 }, truncate(label, 26)),
      s("text", { x: 8, y: 35 }, truncate(sub, 28)));
    svg.append(g);
  }
  return svg;
}

// ---- start ---------------------------------------------------------------

document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = document.getElementById("token");
  localStorage.setItem("argon.token", input.value.trim());
  input.value = "";
  input.placeholder = token() ? "token set" : "API token";
  render();
});
document.getElementById("token").placeholder = token() ? "token set" : "API token";
window.addEventListener("hashchange", render);
render();
