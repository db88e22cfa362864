// configspec-opt web page: one vanilla module, no dependencies, no network beyond this server.
// It uses the same /v1 API as any client; every user-supplied string reaches the page as
// text (textContent / attributes), never as HTML.

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";

// Fleet metrics an objective or a Pareto axis can name: key in `fleet`, unit, default sense.
const METRICS = {
  goodput: { key: "goodput_tok_s", unit: "tok/s", label: "goodput", sense: "max" },
  cost_efficiency: { key: "cost_efficiency_tok_per_usd", unit: "tok/$", label: "cost efficiency", sense: "max" },
  energy: { key: "energy_j_per_tok", unit: "J/tok", label: "energy", sense: "min" },
  min_goodput: { key: "min_goodput_tok_s", unit: "tok/s", label: "slowest pool's goodput", sense: "max" },
  cost: { key: "cost_usd_per_hour", unit: "$/h", label: "cost", sense: "min" },
  power: { key: "power_w", unit: "W", label: "edge power", sense: "min" },
  verifier_load: { key: "verifier_load_tok_s", unit: "tok/s", label: "verifier load", sense: "min" },
};
const FLEET_CARDS = [
  ["goodput_tok_s", "goodput", "tok/s"], ["cost_usd_per_hour", "cost", "$/h"],
  ["cost_efficiency_tok_per_usd", "cost efficiency", "tok/$"], ["energy_j_per_tok", "energy", "J/tok"],
  ["power_w", "edge power", "W"], ["verifier_load_tok_s", "verifier load", "tok/s"],
  ["min_goodput_tok_s", "slowest pool", "tok/s"], ["devices", "devices", ""],
];
const JOBS_PER_PAGE = 10;
const TOKEN_KEY = "configspec-token";

const state = { solve: null, pareto: null, selected: null, jobsOffset: 0, jobsTimer: null, errors: [] };

// ---------------------------------------------------------------- small helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  for (const c of children.flat(Infinity)) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

const nf4 = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });
const nf0 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumSignificantDigits: 3 });

function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (typeof v !== "number") return String(v);
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "−∞";
  const a = Math.abs(v);
  if (a !== 0 && a < 1e-3) return v.toExponential(2);
  return a >= 1e4 ? nf0.format(v) : nf4.format(v);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateTime.format(d);
}

function took(job) {
  const start = Date.parse(job.started_at);
  const end = Date.parse(job.finished_at);
  return Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, (end - start) / 1000) : null;
}

function pill(text, cls = text) {
  return h("span", { class: `pill ${cls}` }, text);
}

function table(columns, rows, { onRow, rowClass } = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null, scope: "col" },
    c.title, c.unit ? h("span", { class: "unit" }, ` ${c.unit}`) : null)));
  const body = rows.map((r, i) => h("tr", {
    class: [onRow ? "clickable" : "", rowClass ? rowClass(r) : ""].join(" ").trim() || null,
    onclick: onRow ? () => onRow(r, i) : null,
  }, columns.map((c) => {
    const v = c.get(r);
    return h("td", { class: c.num ? "num" : c.cls || null }, v instanceof Node ? v : (c.num ? num(v) : v ?? "—"));
  })));
  return h("table", {}, h("thead", {}, head), h("tbody", {}, body));
}

function empty(text) {
  return h("p", { class: "empty" }, text);
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

function mediaType(text) {
  return /^\s*[[{]/.test(text) ? "application/json" : "application/yaml";
}

async function api(method, path, { body = null, query = {}, type = null } = {}) {
  const url = new URL(path, document.baseURI);
  for (const [k, v] of Object.entries(query)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one !== null && one !== undefined && one !== "") url.searchParams.append(k, String(one));
    }
  }
  const headers = { Accept: "application/json, application/problem+json" };
  const token = $("token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== null) headers["Content-Type"] = type || mediaType(body);
  let res;
  try {
    res = await fetch(url, { method, headers, body, cache: "no-store" });
  } catch (e) {
    setServer(false, "server unreachable");
    throw new ApiError(0, { title: "Server unreachable", detail: `${method} ${url.pathname}: ${e.message}` });
  }
  const ct = res.headers.get("content-type") || "";
  const data = ct.includes("json") ? await res.json().catch(() => null) : await res.text();
  if (res.status === 401) $("token").parentElement.classList.add("needed");
  if (!res.ok) {
    throw new ApiError(res.status, typeof data === "object" && data ? data
      : { title: `HTTP ${res.status}`, detail: String(data).slice(0, 300) });
  }
  return { data, headers: res.headers };
}

// ---------------------------------------------------------------- the editor

const text = $("text");

function lineHeight() {
  return parseFloat(getComputedStyle(text).lineHeight) || 18;
}

function padTop() {
  return parseFloat(getComputedStyle(text).paddingTop) || 0;
}

function renderGutter() {
  const lines = text.value.split("\n").length;
  if (Number($("gutter").dataset.lines) !== lines) {
    $("gutter").dataset.lines = String(lines);
    $("gutter").textContent = Array.from({ length: lines }, (_, i) => i + 1).join("\n");
  }
  $("gutter").scrollTop = text.scrollTop;
}

function renderMarks() {
  const lh = lineHeight();
  const top = padTop() - text.scrollTop;
  const seen = new Set();
  $("marks").replaceChildren(...state.errors.filter((e) => e.line && !seen.has(e.line) && seen.add(e.line))
    .map((e) => {
      const mark = h("div", { "data-line": e.line, title: e.message });
      mark.style.top = `${top + (e.line - 1) * lh}px`;
      return mark;
    }));
}

function setErrors(errors) {
  state.errors = errors.filter((e) => Number.isInteger(e.line) && e.line > 0);
  renderMarks();
}

function goToLine(line, column = 1) {
  const lines = text.value.split("\n");
  const l = Math.min(Math.max(line, 1), lines.length);
  let start = 0;
  for (let i = 0; i < l - 1; i++) start += lines[i].length + 1;
  const end = start + lines[l - 1].length;
  text.focus();
  text.setSelectionRange(Math.min(start + Math.max(column - 1, 0), end), end);
  text.scrollTop = Math.max(0, (l - 1) * lineHeight() - text.clientHeight / 3);
  renderGutter();
  renderMarks();
}

function setSpec(value) {
  text.value = value;
  text.scrollTop = 0;
  setErrors([]);
  renderGutter();
}

text.addEventListener("scroll", () => { renderGutter(); renderMarks(); });
text.addEventListener("input", () => { if (state.errors.length) setErrors([]); renderGutter(); });
text.addEventListener("keydown", (ev) => {
  if (ev.key === "Tab" && !ev.shiftKey && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
    ev.preventDefault();
    text.setRangeText("  ", text.selectionStart, text.selectionEnd, "end");
    renderGutter();
  } else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    solve();
  }
});

$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  if (!file) return;
  setSpec(await file.text());
  say("ok", `Opened ${file.name}`, `${file.size.toLocaleString()} bytes`);
  $("file").value = "";
});

$("stored").addEventListener("change", async () => {
  const sha = $("stored").value;
  if (!sha) return;
  try {
    const { data } = await api("GET", `v1/specs/${sha}`);
    setSpec(data.text);
    say("ok", `Opened stored spec ${data.name}`, `sha256 ${data.sha256.slice(0, 12)}…, stored ${when(data.received_at)}`);
  } catch (e) {
    showProblem(e);
  }
  $("stored").value = "";
});

async function refreshStored() {
  try {
    const { data } = await api("GET", "v1/specs", { query: { limit: 100 } });
    const options = data.specs.map((sp) => h("option", { value: sp.sha256 },
      `${sp.name} · ${sp.sha256.slice(0, 8)} · ${when(sp.received_at)}`));
    $("stored").replaceChildren(h("option", { value: "" },
      data.total ? `Stored specs (${data.total})…` : "No stored specs yet"), ...options);
  } catch (e) {
    if (e.status !== 401) console.warn("stored specs:", e.message);
  }
}

// ---------------------------------------------------------------- messages

function say(kind, title, ...lines) {
  $("messages").replaceChildren(h("div", { class: `msg ${kind}`, role: kind === "bad" ? "alert" : null },
    h("h3", {}, title), lines.filter(Boolean).map((l) => h("div", {}, l))));
}

function showProblem(e) {
  const p = e.problem || {};
  const errors = Array.isArray(p.errors) ? p.errors : [];
  setErrors(errors);
  const items = errors.map((err) => h("li", {},
    err.line ? h("button", { class: "link loc", type: "button", onclick: () => goToLine(err.line, err.column) },
      `line ${err.line}, column ${err.column ?? 1}`) : null,
    err.line ? " " : null,
    err.path ? h("span", { class: "loc" }, err.path) : null,
    err.path ? ": " : null,
    err.message || "",
    err.hint ? h("span", { class: "hint" }, `hint: ${err.hint}`) : null));
  const extra = e.status === 401 ? "Enter the server's API token at the top right." : null;
  const retry = e.status === 503 || e.status === 429 ? "The server is busy; try again in a moment." : null;
  $("messages").replaceChildren(h("div", { class: "msg bad", role: "alert" },
    h("h3", {}, `${p.title || "Error"}${e.status ? ` (${e.status})` : ""}`),
    p.detail && !errors.length ? h("div", {}, p.detail) : null,
    extra ? h("div", {}, extra) : null, retry ? h("div", {}, retry) : null,
    items.length ? h("ul", { class: "errors" }, items) : null));
  if (errors.length && errors[0].line) goToLine(errors[0].line, errors[0].column);
}

function busy(on) {
  for (const id of ["validate", "solve", "submit-job", "pareto"]) $(id).disabled = on;
  $("busy").hidden = !on;
}

function specText() {
  const t = text.value;
  if (!t.trim()) {
    say("warn", "No spec", "Paste a spec, open a file or pick a stored spec first.");
    return null;
  }
  return t;
}

function solveQuery() {
  return {
    objective: $("objective").value,
    time_limit: $("time-limit").value,
    profiles: $("use-stored").checked ? "stored" : null,
    sensitivity: $("sensitivity").checked,
  };
}

// ---------------------------------------------------------------- validate, solve, jobs

async function validate() {
  const body = specText();
  if (body === null) return;
  busy(true);
  try {
    const { data } = await api("POST", "v1/validate", { body, query: { profiles: solveQuery().profiles } });
    setErrors([]);
    const warnings = [...(data.warnings || []), ...(data.usability || []).map((u) => u.message || JSON.stringify(u))];
    say(warnings.length ? "warn" : "ok", `Valid: ${data.name}`,
      `${data.pools} pools, ${num(data.devices)} devices, ${data.candidates} candidates `
      + `(${data.candidates_meeting_slo} meet their SLOs)`,
      (data.pools_without_candidates || []).length
        ? `No candidate meets the SLOs for: ${data.pools_without_candidates.join(", ")}` : null,
      ...warnings.map((w) => `warning: ${w}`));
  } catch (e) {
    showProblem(e);
  } finally {
    busy(false);
  }
}

async function solve() {
  const body = specText();
  if (body === null) return;
  busy(true);
  try {
    const { data, headers } = await api("POST", "v1/solve", { body, query: solveQuery() });
    setErrors([]);
    showSolve(data);
    const stored = headers.get("content-location");
    say(data.status === "infeasible" ? "warn" : "ok", `Solved: ${data.status}`,
      data.diagnosis?.message || data.message || null, stored ? `stored as ${stored}` : null);
    refreshStored();
    if (data.fleet) await computePareto(body);
  } catch (e) {
    showProblem(e);
  } finally {
    busy(false);
  }
}

async function submitJob() {
  const body = specText();
  if (body === null) return;
  busy(true);
  try {
    const { data } = await api("POST", "v1/jobs", { body, query: solveQuery() });
    say("ok", "Job queued", `job ${data.id}: ${data.status}; it appears under Jobs below`);
    state.jobsOffset = 0;
    await refreshJobs();
  } catch (e) {
    showProblem(e);
  } finally {
    busy(false);
  }
}

// ---------------------------------------------------------------- solve results

function showSolve(data) {
  state.solve = data;
  const obj = data.objective || {};
  const solver = data.solver || {};
  $("solve-status").replaceChildren(pill(data.status),
    ` ${obj.sense || ""} ${obj.metric || ""}${obj.value !== null && obj.value !== undefined ? ` = ${num(obj.value)}` : ""}`,
    solver.name ? ` · ${solver.name} ${num(solver.time_s)} s` : "",
    solver.gap !== null && solver.gap !== undefined ? ` · gap ${num(solver.gap)}` : "",
    data.spec_sha256 ? ` · sha256 ${data.spec_sha256.slice(0, 12)}…` : "");
  renderAssignment(data);
  renderFleet(data);
  renderWhy(data);
  renderSensitivity(data);
  if (state.pareto) drawPareto();
}

function renderSensitivity(data) {
  const sens = data.sensitivity;
  if (!sens) {
    $("sensitivity-out").replaceChildren(empty(data.fleet ? "Not computed: tick \"breaking points\" and solve again."
      : "No plan to test."));
    return;
  }
  const el = Object.fromEntries((sens.elasticities || []).map((e) => [e.parameter, e.elasticity]));
  $("sensitivity-out").replaceChildren(table([
    { title: "parameter", get: (b) => b.parameter },
    { title: "holds to", num: true, get: (b) => (b.holds_to_factor === null ? `beyond ×${num(b.scanned_to_factor)}` : `×${num(b.holds_to_factor)}`) },
    { title: "then breaks", get: (b) => (b.breaks.length ? b.breaks.join(", ") : "nothing on the scan") },
    { title: "elasticity", num: true, get: (b) => (el[b.parameter] === null || el[b.parameter] === undefined ? "n/a" : el[b.parameter].toFixed(2)) },
  ], sens.breaking_points || []));
}

function renderAssignment(data) {
  const rows = data.assignments || [];
  if (!rows.length) {
    const d = data.diagnosis;
    $("assignment").replaceChildren(
      empty(data.status === "infeasible" ? "No feasible assignment." : "No assignment."),
      d ? h("p", {}, d.message) : null,
      d && (d.relaxations || []).length ? table([
        { title: "constraint", get: (r) => r.label ? `${r.label} (${r.constraint})` : r.constraint },
        { title: "limit", num: true, get: (r) => r.limit },
        { title: "relax to", num: true, get: (r) => r.relax_to },
        { title: "unit", get: (r) => r.unit || "" },
      ], d.relaxations) : null);
    return;
  }
  const targets = [...new Set(rows.map((r) => r.target))];
  $("assignment").replaceChildren(table([
    { title: "pool", get: (r) => r.device },
    { title: "count", num: true, get: (r) => r.count },
    targets.length > 1 ? { title: "target", get: (r) => r.target } : null,
    { title: "draft", get: (r) => r.draft },
    { title: "quant", get: (r) => r.quant },
    { title: "K", num: true, get: (r) => r.k },
    { title: "α", num: true, get: (r) => r.alpha },
    { title: "goodput", unit: "tok/s", num: true, get: (r) => r.goodput_tok_s },
    { title: "cost eff.", unit: "tok/$", num: true, get: (r) => r.cost_tok_per_usd },
    { title: "energy", unit: "J/tok", num: true, get: (r) => r.energy_j_per_tok },
    { title: "power", unit: "W", num: true, get: (r) => r.power_w },
    { title: "cost", unit: "$/h", num: true, get: (r) => r.cost_usd_per_hour },
  ].filter(Boolean), rows), targets.length === 1 ? h("p", { class: "note" }, `verifier: ${targets[0]}`) : null);
}

function renderFleet(data) {
  const fleet = data.fleet;
  if (!fleet) {
    $("fleet").replaceChildren();
    $("limits").replaceChildren(empty("No fleet metrics (no feasible assignment)."));
    return;
  }
  $("fleet").replaceChildren(...FLEET_CARDS.filter(([k]) => k in fleet).map(([k, label, unit]) =>
    h("div", { class: "card" }, h("div", { class: "v" }, num(fleet[k])),
      h("div", { class: "k" }, unit ? `${label}, ${unit}` : label))));
  const constraints = data.constraints || [];
  if (!constraints.length) {
    $("limits").replaceChildren(empty("The spec sets no fleet limits."));
    return;
  }
  $("limits").replaceChildren(table([
    { title: "limit", get: (c) => c.constraint },
    { title: "value", num: true, get: (c) => c.value },
    { title: "bound", num: true, get: (c) => c.limit },
    { title: "unit", get: (c) => c.unit || "" },
    { title: "used", get: (c) => usage(c) },
    { title: "", get: (c) => (c.binding ? pill("binds") : h("span", { class: "empty" }, "slack")) },
  ], constraints));
}

function usage(c) {
  if (typeof c.value !== "number" || typeof c.limit !== "number" || c.limit === 0) return "—";
  const share = c.value / c.limit;
  const bar = h("span", { class: `bar${c.binding || share > 0.98 ? " hot" : ""}` }, h("span"));
  bar.firstChild.style.width = `${Math.max(0, Math.min(1, share)) * 100}%`;
  return h("span", {}, bar, ` ${Math.round(share * 100)}%`);
}

function renderWhy(data) {
  const items = (data.explain || []).map((e) => {
    const parts = [];
    if (e.runner_up) {
      const loss = e.runner_up.loss;
      parts.push(h("span", {}, "runner-up ", h("span", { class: "cfg" }, e.runner_up.config),
        loss >= 0 ? ` would lose ${num(loss)} of the objective`
          : ` would gain ${num(-loss)} (this assignment is not proven optimal)`));
    }
    for (const b of (e.blocked_by || []).slice(0, 1)) {
      parts.push(h("span", {}, h("span", { class: "cfg" }, b.config), ` would gain ${num(b.gain)} but breaks `,
        h("span", { class: "cfg" }, (b.constraints || []).join(", "))));
    }
    if (e.split) parts.push("split across configurations");
    if (!parts.length) parts.push("no alternative");
    return h("li", {}, h("strong", {}, e.device), ": ", parts.flatMap((p, i) => (i ? ["; ", p] : [p])));
  });
  $("why").replaceChildren(items.length ? h("ul", { class: "why" }, items)
    : empty(data.fleet ? "No explanation: it is skipped for large fleets." : "No assignment to explain."));
}

// ---------------------------------------------------------------- the Pareto front

function metricOptions(select, selected) {
  select.replaceChildren(...Object.entries(METRICS).map(([name, m]) =>
    h("option", { value: name, selected: name === selected },
      `${m.sense} ${m.label} (${m.unit})`)));
}

async function computePareto(body = specText()) {
  if (body === null) return;
  const x = $("px").value;
  const y = $("py").value;
  if (x === y) {
    $("pareto-note").textContent = "Pick two different metrics.";
    return;
  }
  $("pareto-note").textContent = "Computing the front…";
  const wasBusy = $("solve").disabled;
  if (!wasBusy) busy(true);
  try {
    const { data } = await api("POST", "v1/pareto", {
      body, query: { x, y, points: $("ppoints").value, profiles: solveQuery().profiles,
        time_limit: $("time-limit").value },
    });
    state.pareto = { data, x, y };
    state.selected = null;
    drawPareto();
  } catch (e) {
    $("pareto-note").textContent = `${e.problem.title || "Error"}: ${e.problem.detail || e.message}`;
  } finally {
    if (!wasBusy) busy(false);
  }
}

function niceTicks(lo, hi, count = 6) {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(+t.toPrecision(12));
  return ticks;
}

function tick(v, top) {
  return Math.abs(top) >= 1e5 ? compact.format(v) : nf4.format(v);
}

function domain(values) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  } else {
    const pad = (hi - lo) * 0.06;
    lo -= pad;
    hi += pad;
  }
  return [lo, hi];
}

function axisTitle(name, sense) {
  const m = METRICS[name];
  return `${m.label}, ${m.unit} (${sense === "maximize" ? "higher" : "lower"} is better)`;
}

function drawPareto() {
  const { data, x, y } = state.pareto;
  const points = (data.points || []).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const note = [`${points.length} non-dominated point${points.length === 1 ? "" : "s"}`,
    `${num(data.time_s)} s`];
  if (!data.complete) note.push("more exist between them (raise points for a finer front)");
  $("pareto-note").textContent = note.join(" · ");
  if (!points.length) {
    $("plot").replaceChildren(empty("No feasible point."));
    $("point").replaceChildren();
    return;
  }
  const fleet = state.solve?.fleet;
  const chosen = fleet && Number.isFinite(fleet[METRICS[x].key]) && Number.isFinite(fleet[METRICS[y].key])
    ? { x: fleet[METRICS[x].key], y: fleet[METRICS[y].key] } : null;
  const W = 640, H = 360, L = 72, R = 18, T = 14, B = 48;
  const [x0, x1] = domain([...points.map((p) => p.x), ...(chosen ? [chosen.x] : [])]);
  const [y0, y1] = domain([...points.map((p) => p.y), ...(chosen ? [chosen.y] : [])]);
  const sx = (v) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
  const sy = (v) => H - B - ((v - y0) / (y1 - y0)) * (H - T - B);
  const xt = niceTicks(x0, x1).filter((t) => t >= x0 && t <= x1);
  const yt = niceTicks(y0, y1, 5).filter((t) => t >= y0 && t <= y1);
  const sorted = [...points].sort((a, b) => a.x - b.x);
  const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label":
    `Pareto front of ${METRICS[x].label} against ${METRICS[y].label}` },
  svg("g", { class: "grid" },
    xt.map((t) => svg("line", { x1: sx(t), x2: sx(t), y1: T, y2: H - B })),
    yt.map((t) => svg("line", { x1: L, x2: W - R, y1: sy(t), y2: sy(t) }))),
  svg("g", { class: "axis" },
    svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B }),
    svg("line", { x1: L, x2: L, y1: T, y2: H - B }),
    xt.map((t) => svg("text", { x: sx(t), y: H - B + 15, "text-anchor": "middle" }, tick(t, x1))),
    yt.map((t) => svg("text", { x: L - 6, y: sy(t) + 4, "text-anchor": "end" }, tick(t, y1)))),
  svg("text", { class: "label", x: L + (W - L - R) / 2, y: H - 10, "text-anchor": "middle" },
    axisTitle(x, data.x?.sense)),
  svg("text", { class: "label", x: 14, y: T + (H - T - B) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${T + (H - T - B) / 2})` }, axisTitle(y, data.y?.sense)),
  svg("polyline", { class: "front", points: sorted.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" ") }),
  points.map((p, i) => svg("circle", {
    class: `pt${state.selected === i ? " selected" : ""}`, cx: sx(p.x), cy: sy(p.y), r: 5, tabindex: 0,
    "data-index": i, "aria-label": pointText(p, x, y),
    onclick: () => selectPoint(i), onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") selectPoint(i); },
    onmousemove: (ev) => tip(ev, pointText(p, x, y)), onmouseleave: () => tip(null),
  }, svg("title", {}, pointText(p, x, y)))),
  chosen ? svg("g", { class: "chosen-mark" },
    svg("circle", { class: "chosen", cx: sx(chosen.x), cy: sy(chosen.y), r: 10 }),
    svg("text", { class: "chosen-label", x: sx(chosen.x) + (sx(chosen.x) > W - 120 ? -14 : 14),
      y: sy(chosen.y) - 12, "text-anchor": sx(chosen.x) > W - 120 ? "end" : "start" }, "chosen by the solve"))
    : null);
  $("plot").replaceChildren(plot);
  renderPoint();
}

function pointText(p, x, y) {
  const mx = METRICS[x];
  const my = METRICS[y];
  const pools = (p.assignments || []).map((a) => `${a.device}: ${a.draft} ${a.quant} K=${a.k}`).join("\n");
  return `${mx.label} ${num(p.x)} ${mx.unit}, ${my.label} ${num(p.y)} ${my.unit}${pools ? `\n${pools}` : ""}`;
}

function tip(ev, message) {
  const el = $("tip");
  if (!ev) {
    el.hidden = true;
    return;
  }
  el.textContent = message;
  el.hidden = false;
  el.style.left = `${Math.min(ev.clientX + 14, window.innerWidth - 350)}px`;
  el.style.top = `${ev.clientY + 14}px`;
}

function selectPoint(i) {
  state.selected = state.selected === i ? null : i;
  for (const c of $("plot").querySelectorAll("circle.pt")) {
    c.classList.toggle("selected", Number(c.dataset.index) === state.selected);
  }
  renderPoint();
}

function renderPoint() {
  const { data, x, y } = state.pareto;
  const p = state.selected === null ? null : data.points[state.selected];
  if (!p) {
    $("point").replaceChildren(empty("Click a point to see its assignment."));
    return;
  }
  const fleet = p.fleet || {};
  const others = Object.entries(METRICS).filter(([name, m]) => name !== x && name !== y
    && ["goodput", "cost", "energy", "power"].includes(name) && Number.isFinite(fleet[m.key]))
    .map(([, m]) => `${m.label} ${num(fleet[m.key])} ${m.unit}`);
  $("point").replaceChildren(
    h("p", {}, `${METRICS[x].label} ${num(p.x)} ${METRICS[x].unit}, ${METRICS[y].label} ${num(p.y)} `
      + `${METRICS[y].unit}${others.length ? `; ${others.join(", ")}` : ""}`),
    table([
      { title: "pool", get: (r) => r.device }, { title: "count", num: true, get: (r) => r.count },
      { title: "target", get: (r) => r.target }, { title: "draft", get: (r) => r.draft },
      { title: "quant", get: (r) => r.quant }, { title: "K", num: true, get: (r) => r.k },
    ], p.assignments || []));
}

// ---------------------------------------------------------------- jobs and profiles

async function refreshJobs() {
  clearTimeout(state.jobsTimer);
  try {
    const { data } = await api("GET", "v1/jobs", {
      query: { limit: JOBS_PER_PAGE, offset: state.jobsOffset, status: $("job-filter").value },
    });
    const jobs = data.jobs || [];
    $("jobs-page").textContent = data.total
      ? `${state.jobsOffset + 1}–${state.jobsOffset + jobs.length} of ${data.total}` : "";
    $("jobs-prev").disabled = state.jobsOffset === 0;
    $("jobs-next").disabled = state.jobsOffset + jobs.length >= data.total;
    $("jobs").replaceChildren(jobs.length ? table([
      { title: "submitted", get: (j) => when(j.created_at) },
      { title: "job", cls: "id", get: (j) => j.id.slice(0, 12) },
      { title: "status", get: (j) => pill(j.status) },
      { title: "objective", get: (j) => j.params?.objective || "spec's" },
      { title: "tries", num: true, get: (j) => j.attempts },
      { title: "took", unit: "s", num: true, get: (j) => took(j) },
      { title: "", get: (j) => (j.status === "succeeded" || j.status === "failed"
        ? h("button", { type: "button", class: "link", onclick: (ev) => { ev.stopPropagation(); openJob(j.id); } },
          j.status === "succeeded" ? "show result" : "show error") : "") },
    ], jobs) : empty("No jobs. “Queue as job” runs a solve in the background (for large fleets)."));
    if (jobs.some((j) => j.status === "queued" || j.status === "running")) {
      state.jobsTimer = setTimeout(refreshJobs, 2000);
    }
  } catch (e) {
    $("jobs").replaceChildren(empty(`Cannot list jobs: ${e.message}`));
  }
}

async function openJob(id) {
  try {
    const { data } = await api("GET", `v1/jobs/${id}`);
    if (data.result) {
      showSolve(data.result);
      say("ok", `Job ${id.slice(0, 12)}: ${data.result.status}`,
        `submitted ${when(data.created_at)}, finished ${when(data.finished_at)}`,
        data.result_url ? `stored as ${data.result_url}` : null);
      $("assign-h").scrollIntoView({ behavior: "smooth", block: "start" });
    } else if (data.error) {
      showProblem(new ApiError(data.error.status || 0, data.error));
    }
  } catch (e) {
    showProblem(e);
  }
}

function alphaSummary(profile) {
  return Object.entries(profile.acceptance || {}).map(([target, table]) => {
    const ks = Object.keys(table).map(Number).filter(Number.isFinite).sort((a, b) => a - b);
    return ks.length ? `${target}: K ${ks[0]}–${ks[ks.length - 1]}` : target;
  }).join("; ");
}

async function refreshProfiles() {
  try {
    const { data } = await api("GET", "v1/profiles", { query: { limit: 200 } });
    const rows = data.profiles || [];
    $("profiles").replaceChildren(rows.length ? table([
      { title: "device", get: (r) => r.profile.device },
      { title: "draft", get: (r) => r.profile.draft },
      { title: "quant", get: (r) => r.profile.quant },
      { title: "draft speed", unit: "tok/s", num: true, get: (r) => r.profile.draft_tok_s },
      { title: "power", unit: "W", num: true, get: (r) => r.profile.power_w },
      { title: "α for", get: (r) => alphaSummary(r.profile) || "—" },
      { title: "received", get: (r) => when(r.received_at) },
    ], rows) : empty("No stored profiles. Devices push them with `configspec profile … --push URL`."));
  } catch (e) {
    $("profiles").replaceChildren(empty(`Cannot list profiles: ${e.message}`));
  }
}

// ---------------------------------------------------------------- drift watch (docs/drift.md)

const STATUS_PILL = { drifted: "failed", ok: "succeeded", "no data": "queued" };

function checkText(pool, metric) {
  const c = (pool.checks || []).find((x) => x.metric === metric);
  if (!c || c.observed === null) return "—";
  return `${num(c.observed)} vs ${num(c.expected)}: ${c.verdict}`;
}

function configText(rows) {
  return rows.map((e) => `${e.draft} ${e.quant} K=${e.k}`).join(" + ") || "—";
}

function renderDrift(data) {
  const head = h("p", { class: "note" }, `${data.lock.file} · last ${nf0.format(data.window_s)} s · drifted: `
    + (data.drifted.length ? data.drifted.join(", ") : "none")
    + (data.lock.stale.length ? ` · the spec changed since the lock (${data.lock.stale.join(", ")})` : ""));
  $("drift").replaceChildren(head, table([
    { title: "pool", get: (r) => r.device },
    { title: "configuration", get: (r) => `${r.draft} ${r.quant} K=${r.k}` },
    { title: "status", get: (r) => pill(r.status, STATUS_PILL[r.status] || "") },
    { title: "acceptance", get: (r) => r.note || checkText(r, "acceptance") },
    { title: "draft speed", unit: "tok/s", get: (r) => checkText(r, "draft_tok_s") },
    { title: "rtt", unit: "s", get: (r) => checkText(r, "rtt_s") },
    { title: "verifier step", unit: "s", get: (r) => checkText(r, "verify_step_s") },
  ], data.pools, { rowClass: (r) => (r.status === "drifted" ? "drifted" : "") }));
}

function renderReplan(proposal) {
  if (!proposal) {
    $("replan").replaceChildren(empty("No pool drifted: nothing to re-plan."));
    return;
  }
  const sum = (rows) => rows.reduce((a, e) => a + (e.goodput_tok_s || 0) * (e.count || 1), 0);
  const moved = proposal.diff.pools.filter((p) => p.change !== "unchanged");
  $("replan").replaceChildren(
    h("p", { class: "note" }, "Proposed re-plan, not applied (configspec diff of the lock against it): ",
      proposal.changes.join("; ")),
    moved.length ? table([
      { title: "pool", get: (r) => r.device },
      { title: "change", get: (r) => r.change },
      { title: "lock", get: (r) => configText(r.old) },
      { title: "re-plan", get: (r) => configText(r.new) },
      { title: "goodput, lock", unit: "tok/s", num: true, get: (r) => sum(r.old) },
      { title: "goodput, re-plan", unit: "tok/s", num: true, get: (r) => sum(r.new) },
    ], moved, { rowClass: () => "drifted" }) : empty("The re-plan keeps every pool as it is."));
}

async function refreshDrift() {
  try {
    const { data } = await api("GET", "v1/drift");
    renderDrift(data);
  } catch (e) {
    $("drift").replaceChildren(empty(e.status === 404
      ? "This server watches no lock: start it with `configspec serve --watch fleet.yaml.lock`."
      : `Cannot check drift: ${e.message}`));
  }
}

async function proposeReplan() {
  $("replan").replaceChildren(empty("Solving the re-plan…"));
  try {
    const { data } = await api("POST", "v1/drift/replan");
    renderDrift(data);
    renderReplan(data.proposal);
  } catch (e) {
    $("replan").replaceChildren(empty(`Cannot propose a re-plan: ${e.message}`));
  }
}

// ---------------------------------------------------------------- start

function setServer(ok, message) {
  $("server").className = `server ${ok ? "ok" : "down"}`;
  $("server").textContent = message;
}

async function health() {
  try {
    const { data } = await api("GET", "healthz");
    setServer(true, `v${data.version} · ${data.workers} solver process${data.workers === 1 ? "" : "es"}`
      + ` · ${data.unfinished_jobs} unfinished job${data.unfinished_jobs === 1 ? "" : "s"}`);
  } catch (e) {
    setServer(false, e.status ? `server: ${e.problem.title || e.status}` : "server unreachable");
  }
}

function refreshAll() {
  $("token").parentElement.classList.remove("needed");
  refreshStored();
  refreshJobs();
  refreshProfiles();
  refreshDrift();
}

function start() {
  const objective = $("objective");
  for (const [name, m] of Object.entries(METRICS)) {
    objective.append(h("option", { value: `${m.sense}:${name}` }, `${m.sense} ${m.label} (${m.unit})`));
  }
  metricOptions($("px"), "goodput");
  metricOptions($("py"), "cost");
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("token").addEventListener("change", () => {
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    refreshAll();
  });
  $("validate").addEventListener("click", validate);
  $("solve").addEventListener("click", solve);
  $("submit-job").addEventListener("click", submitJob);
  $("pareto").addEventListener("click", () => computePareto());
  $("jobs-refresh").addEventListener("click", refreshJobs);
  $("jobs-prev").addEventListener("click", () => {
    state.jobsOffset = Math.max(0, state.jobsOffset - JOBS_PER_PAGE);
    refreshJobs();
  });
  $("jobs-next").addEventListener("click", () => {
    state.jobsOffset += JOBS_PER_PAGE;
    refreshJobs();
  });
  $("job-filter").addEventListener("change", () => {
    state.jobsOffset = 0;
    refreshJobs();
  });
  $("profiles-refresh").addEventListener("click", refreshProfiles);
  $("drift-refresh").addEventListener("click", refreshDrift);
  $("drift-replan").addEventListener("click", proposeReplan);
  renderGutter();
  health();
  refreshAll();
  document.body.dataset.ready = "true";
}

start();
