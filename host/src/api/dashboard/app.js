// The Health Dashboard (docs/dashboard.md). Reads the /v1 API once, then
// stays current from two WebSockets: one "live" socket on the health,
// lifecycle, metrics and alerts channels, and one for the tail. REST calls
// after start-up are made only when a pushed message says something changed
// (a plugin loaded, a metrics tick): nothing polls on a timer. The only
// timers redraw what depends on the clock (uptime, alert ages).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const KEEP_LINES = 500; // tail lines shown
const KEEP_HELD = 2000; // tail messages held while paused
const KEEP_HISTORY = 5000; // envelopes kept for correlation
const KEEP_SAMPLES = 60; // chart samples (5 minutes at the default 5 s)
const LIVE_CHANNELS = ["lifecycle", "metrics", "alerts"];

const state = {
  token: sessionStorage.getItem("exesdb-token") || "",
  session: null,
  plugins: new Map(),
  subs: new Map(),
  alerts: new Map(),
  history: new Map(),
  series: { eps: [], queue: [], latency: new Map() },
  latencyNow: new Map(),
  node: null,
  live: null,
  liveRetry: 500,
  tail: { ws: null, paused: false, held: [], seq: 0 },
};

class Unauthorized extends Error {}

/** A call to the API: JSON in and out, the token as a bearer header. */
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (state.token) headers.set("Authorization", `Bearer ${state.token}`);
  const init = { method: options.method || "GET", headers };
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    init.body = JSON.stringify(options.json);
  } else if (options.body !== undefined) {
    init.body = options.body;
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  if (response.status === 401) throw new Unauthorized((body && body.error) || "a token is needed");
  if (!response.ok) {
    const why = body && body.error ? body.error : `HTTP ${response.status}`;
    throw new Error(body && body.field ? `${why} (${body.field})` : why);
  }
  return body;
}

/** The WebSocket URL of a stream; the token goes in `access_token`
 *  (a browser's WebSocket cannot send an Authorization header). */
function streamUrl(channel, patterns, view) {
  const url = new URL(`/v1/channels/${encodeURIComponent(channel)}/stream`, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  for (const p of patterns) url.searchParams.append("pattern", p);
  if (view) url.searchParams.set("view", view);
  if (state.token) url.searchParams.set("access_token", state.token);
  return url.href;
}

// ---------------------------------------------------------------- helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "tabindex" || k === "type" || k === "title" || k === "colspan") node.setAttribute(k, v === true ? "" : String(v));
    else node[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function badge(cls, text) {
  return el("span", { class: `badge ${cls}`, text });
}

/** Makes `old` look like `fresh` while keeping every unchanged child node
 *  (so a focused button or an open disclosure survives an update). */
function patch(old, fresh) {
  for (const a of [...old.attributes]) if (!fresh.hasAttribute(a.name)) old.removeAttribute(a.name);
  for (const a of [...fresh.attributes]) if (old.getAttribute(a.name) !== a.value) old.setAttribute(a.name, a.value);
  const now = [...old.childNodes];
  const want = [...fresh.childNodes];
  if (now.length !== want.length || now.some((n, i) => n.nodeType !== want[i].nodeType || n.nodeName !== want[i].nodeName)) {
    old.replaceChildren(...want);
    return;
  }
  want.forEach((w, i) => {
    const n = now[i];
    if (w.nodeType !== Node.ELEMENT_NODE) {
      if (n.textContent !== w.textContent) n.textContent = w.textContent;
      return;
    }
    const open = n.querySelector && n.querySelector("details[open]");
    if (open && w.querySelector("details")) w.querySelector("details").open = true;
    if (n.outerHTML !== w.outerHTML) patch(n, w);
  });
}

/** Shows `rows` (elements carrying `key` as an attribute) in `container`
 *  in that order, patching the rows already there, removing the others;
 *  `empty` is shown when there are none. */
function syncRows(container, key, rows, empty) {
  const existing = new Map();
  for (const child of [...container.children]) {
    const k = child.getAttribute(key);
    if (k === null) child.remove();
    else existing.set(k, child);
  }
  const wanted = new Set(rows.map((r) => r.getAttribute(key)));
  for (const [k, child] of existing) if (!wanted.has(k)) child.remove();
  rows.forEach((row, i) => {
    const k = row.getAttribute(key);
    let node = existing.get(k);
    if (node) patch(node, row);
    else node = row;
    if (container.children[i] !== node) container.insertBefore(node, container.children[i] || null);
  });
  if (!rows.length && empty) container.append(empty);
}

function bytes(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function duration(secs) {
  secs = Math.max(0, Math.floor(secs));
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m ${s}s`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function fixed(v, digits = 1) {
  return v === undefined || v === null || Number.isNaN(Number(v)) ? "–" : Number(v).toFixed(digits);
}

/** Runs `fn` at most once per `ms`, after the first call in a window. */
function coalesce(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn().catch(report);
    }, ms);
  };
}

function report(err) {
  if (err instanceof Unauthorized) {
    // The token was refused while the page was open (revoked, or the host
    // restarted with other tokens): start again with the one entered.
    askToken(err.message).then(() => location.reload());
    return;
  }
  setConnection("down", err && err.message ? err.message : String(err));
}

function setConnection(kind, text) {
  const c = $("#connection");
  c.className = `connection ${kind}`;
  c.textContent = text;
}

// ---------------------------------------------------------------- token

let tokenWaiters = [];

/** Shows the token dialog; resolves when a token was entered. */
function askToken(message) {
  const dialog = $("#token-dialog");
  $("#token-error").textContent = state.token ? message : "";
  if (dialog.hidden) {
    dialog.hidden = false;
    if (!dialog.open) dialog.showModal();
    $("#token-input").focus();
  }
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

function tokenEntered(event) {
  event.preventDefault();
  const value = $("#token-input").value.trim();
  if (!value) return;
  state.token = value;
  sessionStorage.setItem("exesdb-token", value);
  const dialog = $("#token-dialog");
  dialog.close();
  dialog.hidden = true;
  const waiters = tokenWaiters;
  tokenWaiters = [];
  for (const w of waiters) w();
}

// ---------------------------------------------------------------- node

function setComponent(name, status) {
  const li = document.querySelector(`[data-component="${CSS.escape(name)}"]`);
  if (!li) return;
  li.dataset.status = status;
  $(".status-text", li).textContent = status;
}

async function refreshNode() {
  const n = await api("/v1/node");
  state.node = { ...n, fetchedAt: Date.now() };
  $("#node-name").textContent = n.node;
  $("#node-version").textContent = n.version;
  $("#node-memory").textContent = bytes(n.rss_bytes);
  $("#node-cpu").textContent = n.cpu_percent === null ? "–" : `${fixed(n.cpu_percent)} %`;
  $("#node-load").textContent = `${fixed(n.load_avg, 2)} (${n.cpus} CPUs)`;
  setComponent("node", n.status);
  for (const c of n.components) setComponent(c.component, c.status);
  tickClock();
}

function tickClock() {
  if (state.node) {
    const secs = state.node.uptime_secs + (Date.now() - state.node.fetchedAt) / 1000;
    $("#node-uptime").textContent = duration(secs);
  }
  for (const li of document.querySelectorAll("#alerts li[data-alert-id]")) {
    const a = state.alerts.get(li.dataset.alertId);
    if (a) $(".age", li).textContent = `${duration((Date.now() - Date.parse(a.raised_at)) / 1000)} ago`;
  }
}

// ---------------------------------------------------------------- plugins

async function refreshPlugins() {
  const list = await api("/v1/plugins");
  state.plugins = new Map(list.map((p) => [p.name, p]));
  renderPlugins();
}

function renderPlugins() {
  const body = $("#plugins tbody");
  const admin = document.body.dataset.role === "admin";
  const rows = [...state.plugins.values()].sort((a, b) => a.name.localeCompare(b.name));
  const rendered = rows.map((p) => {
    const error = p.last_error
      ? el("details", {}, el("summary", { text: p.last_error }), (p.stderr || []).length ? el("pre", { text: p.stderr.join("\n") }) : null)
      : (p.stderr || []).length
        ? el("details", {}, el("summary", { text: "stderr" }), el("pre", { text: p.stderr.join("\n") }))
        : "";
    const actions = admin
      ? el("td", {},
        el("button", { type: "button", "data-action": "reload", "data-plugin": p.name, "aria-label": `Reload ${p.name}`, text: "Reload" }),
        " ",
        el("button", { type: "button", "data-action": "unload", "data-plugin": p.name, "aria-label": `Unload ${p.name}`, text: "Unload" }))
      : null;
    const row = el("tr", {
      "data-plugin": p.name,
      "data-state": p.state,
      "data-world": p.world,
      "data-language": p.language || "unknown",
      class: `state-${p.state}`,
    },
    el("th", { scope: "row", text: p.name }),
    el("td", {}, badge("state", p.state)),
    el("td", { text: p.world }),
    el("td", { text: p.language || "unknown" }),
    el("td", { text: p.version }),
    el("td", { class: "num", text: String(p.delivered) }),
    el("td", { class: "num", text: String(p.failed) }),
    el("td", { class: "num", text: String(p.restarts) }),
    el("td", { class: "num", text: String(p.traps) }),
    el("td", { class: "num", text: bytes(p.memory_bytes) }),
    el("td", { class: "error" }, error),
    actions);
    return row;
  });
  syncRows(body, "data-plugin", rendered, el("tr", {}, el("td", { colspan: 12, text: "no plugins loaded" })));
}

async function pluginAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const name = button.dataset.plugin;
  const out = $("#plugin-upload .result");
  button.disabled = true;
  try {
    if (button.dataset.action === "reload") {
      await api(`/v1/plugins/${encodeURIComponent(name)}/reload`, { method: "POST", json: {} });
      out.textContent = `${name} reloaded`;
    } else {
      await api(`/v1/plugins/${encodeURIComponent(name)}`, { method: "DELETE" });
      out.textContent = `${name} unloaded`;
    }
    out.classList.remove("error");
  } catch (err) {
    out.textContent = `${name}: ${err.message}`;
    out.classList.add("error");
  } finally {
    button.disabled = false;
    refreshPlugins().catch(report);
  }
}

async function uploadPlugin(event) {
  event.preventDefault();
  const form = event.target;
  const out = $(".result", form);
  const data = new FormData();
  data.append("manifest", form.manifest.files[0]);
  data.append("component", form.component.files[0]);
  try {
    const p = await api("/v1/plugins/upload", { method: "POST", body: data });
    out.textContent = `${p.name || "plugin"} loaded`;
    out.classList.remove("error");
    form.reset();
  } catch (err) {
    out.textContent = err.message;
    out.classList.add("error");
  }
}

// ---------------------------------------------------------------- subscriptions

async function refreshHealth() {
  const h = await api("/v1/health");
  const store = h.summary && h.summary.store ? h.summary.store : "default";
  for (const s of h.subscriptions) {
    const key = `${store}/${s.name}`;
    state.subs.set(key, { ...state.subs.get(key), ...s, store });
  }
  if (h.summary) renderSummary(h.summary);
  renderSubs();
}

function renderSummary(s) {
  $("#health-summary").textContent = `${s.store}: ${s.healthy}/${s.total} healthy${s.failed ? `, ${s.failed} failed` : ""}${s.degraded ? `, ${s.degraded} degraded` : ""}`;
}

function subscriptionHealth(p) {
  const key = `${p.store}/${p.subscription}`;
  const old = state.subs.get(key) || {};
  state.subs.set(key, {
    ...old,
    name: p.subscription,
    store: p.store,
    status: p.status,
    breaker: p.breaker,
    event_count: p.event_count,
    error_count: p.error_count,
    consecutive_failures: p.consecutive_failures,
    last_error: p.last_error,
  });
  renderSubs();
}

function renderSubs() {
  const body = $("#subscriptions tbody");
  const rows = [...state.subs.values()].sort((a, b) => `${a.store}/${a.name}`.localeCompare(`${b.store}/${b.name}`));
  syncRows(body, "data-key", rows.map((s) => {
    const breaker = s.breaker || "closed";
    return el("tr", {
      "data-key": `${s.store}/${s.name}`,
      "data-subscription": s.name,
      "data-store": s.store,
      "data-status": s.status,
      "data-breaker": breaker,
      class: `status-${s.status} breaker-${breaker.replace(/_/g, "-")}`,
    },
    el("th", { scope: "row", text: s.store === "default" ? s.name : `${s.store}/${s.name}` }),
    el("td", {}, badge("status", s.status)),
    el("td", {}, badge("breaker", breaker.replace(/_/g, "-"))),
    el("td", { class: "num", text: String(s.event_count ?? 0) }),
    el("td", { class: "num", text: String(s.error_count ?? 0) }),
    el("td", { class: "num", text: String(s.consecutive_failures ?? 0) }),
    el("td", { class: "num", text: s.queue_depth === undefined || s.queue_depth === null ? "–" : String(s.queue_depth) }),
    el("td", { class: "num", text: s.dropped === undefined || s.dropped === null ? "–" : String(s.dropped) }),
    el("td", { class: "error", text: s.last_error || "" }));
  }), el("tr", {}, el("td", { colspan: 9, text: "no subscriptions yet" })));
}

async function refreshEmitters() {
  const { emitters } = await api("/v1/emitters");
  const body = $("#emitters tbody");
  syncRows(body, "data-emitter", emitters.map((e) => el("tr", { "data-emitter": e.id, "data-paused": e.paused },
    el("td", { text: e.store }),
    el("td", { text: e.selector }),
    el("td", { text: e.subscriber }),
    el("td", { class: "num", text: String(e.position) }),
    el("td", { class: "num", text: String(e.lag) }),
    el("td", {}, badge("state", e.paused ? "paused" : "running")))), el("tr", {}, el("td", { colspan: 6, text: "no emitters" })));
}

// ---------------------------------------------------------------- metrics

function push(list, value) {
  list.push(value);
  while (list.length > KEEP_SAMPLES) list.shift();
}

function metricsTick(summary) {
  push(state.series.eps, summary.events_per_second);
  push(state.series.queue, summary.queue_depth);
  for (const [name, l] of state.latencyNow) {
    if (!state.series.latency.has(name)) state.series.latency.set(name, []);
    push(state.series.latency.get(name), l.p99 ?? 0);
  }
  draw($("#chart-eps"), [state.series.eps]);
  draw($("#chart-queue"), [state.series.queue]);
  draw($("#chart-latency"), [...state.series.latency.values()]);
  $("#now-eps").textContent = `now ${fixed(summary.events_per_second)} /s · total ${summary.total_events}`;
  $("#now-queue").textContent = `now ${summary.queue_depth} · dropped ${summary.dropped}`;
  const legend = $("#latency-legend");
  legend.replaceChildren(...[...state.latencyNow].map(([name, l], i) => el("li", { class: `s${i % 4}`, text: `${name}: p50 ${fixed(l.p50, 2)} ms · p99 ${fixed(l.p99, 2)} ms` })));
  const worst = Math.max(0, ...[...state.latencyNow.values()].map((l) => l.p99 ?? 0));
  $("#now-latency").textContent = state.latencyNow.size ? `worst p99 ${fixed(worst, 2)} ms` : "no deliveries yet";
}

/** Draws each series as a polyline scaled to the largest value. */
function draw(svg, seriesList) {
  const max = Math.max(1, ...seriesList.flat());
  const longest = Math.max(0, ...seriesList.map((s) => s.length));
  const lines = seriesList.map((values, i) => {
    const step = 300 / Math.max(1, KEEP_SAMPLES - 1);
    const offset = (KEEP_SAMPLES - values.length) * step;
    const points = values.map((v, j) => `${(offset + j * step).toFixed(1)},${(98 - (v / max) * 94).toFixed(1)}`).join(" ");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points);
    line.setAttribute("class", `s${i % 4}`);
    return line;
  });
  const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
  title.textContent = `max ${fixed(max)}`;
  svg.replaceChildren(title, ...lines);
  svg.dataset.points = String(longest);
}

function latency(p) {
  const name = p.operation.startsWith("delivery:") ? p.operation.slice(9) : p.operation;
  const l = state.latencyNow.get(name) || {};
  l[p.percentile] = p.latency_ms;
  state.latencyNow.set(name, l);
}

// ---------------------------------------------------------------- alerts

async function refreshAlerts() {
  const { alerts } = await api("/v1/alerts");
  for (const a of alerts) state.alerts.set(a.alert_id, a);
  renderAlerts();
}

function canAck() {
  const scopes = (state.session && state.session.scopes) || [];
  return scopes.some((s) => s === "admin" || s === "publish:*" || s === "publish:alerts");
}

function renderAlerts() {
  const list = $("#alerts .alerts");
  const alerts = [...state.alerts.values()].sort((a, b) => Date.parse(b.raised_at) - Date.parse(a.raised_at));
  const open = alerts.filter((a) => !a.acknowledged).length;
  $("#alerts-open").textContent = `${open} open of ${alerts.length}`;
  syncRows(list, "data-alert-id", alerts.map((a) => {
    const acked = Boolean(a.acknowledged);
    const meta = [a.severity, a.category, a.source, a.level ? `escalated to ${a.level}` : "not escalated",
      acked ? `acknowledged by ${a.acknowledged.by}` : a.requires_ack ? "needs an ack" : null].filter(Boolean).join(" · ");
    return el("li", {
      "data-alert-id": a.alert_id,
      "data-severity": a.severity,
      "data-level": a.level || "none",
      "data-acked": acked ? "true" : "false",
    },
    el("span", { class: "title", text: a.title }),
    !acked && canAck() ? el("button", { type: "button", class: "ack", "data-alert": a.alert_id, "aria-label": `Acknowledge ${a.title}`, text: "Ack" }) : null,
    el("span", { class: "meta" }, `${meta} · `, el("span", { class: "age", text: "" })),
    a.description ? el("span", { class: "meta", text: a.description }) : null);
  }), el("li", { class: "empty", text: "no alerts" }));
  tickClock();
}

async function ackAlert(event) {
  const button = event.target.closest("button.ack");
  if (!button) return;
  button.disabled = true;
  const id = button.dataset.alert;
  const by = state.session && state.session.name !== "anonymous" ? state.session.name : "dashboard";
  try {
    await api(`/v1/alerts/${encodeURIComponent(id)}/ack`, { method: "POST", json: { acknowledged_by: by, notes: "acknowledged on the dashboard" } });
  } catch (err) {
    button.disabled = false;
    report(err);
  }
}

function alertMessage(env) {
  const p = env.payload;
  if (env.kind === "SystemAlert") {
    state.alerts.set(p.alert_id, { ...p, envelope_id: env.id, raised_at: env.timestamp, level: null, acknowledged: null, ...(state.alerts.get(p.alert_id) && { acknowledged: state.alerts.get(p.alert_id).acknowledged, level: state.alerts.get(p.alert_id).level }) });
  } else if (env.kind === "AlertEscalation") {
    const a = state.alerts.get(p.alert_id);
    if (a && (!a.level || p.to_level > a.level)) a.level = p.to_level;
  } else if (env.kind === "AlertAck") {
    const a = state.alerts.get(p.alert_id);
    if (a && !a.acknowledged) a.acknowledged = { by: p.ack_by, at: env.timestamp, note: p.ack_note };
  } else {
    return;
  }
  renderAlerts();
}

// ---------------------------------------------------------------- live socket

const pluginsChanged = coalesce(() => Promise.all([refreshPlugins(), refreshHealth(), refreshEmitters()]), 50);
const nodeChanged = coalesce(refreshNode, 250);
const countsChanged = coalesce(() => Promise.all([refreshPlugins(), refreshHealth(), refreshEmitters()]), 250);

function remember(env) {
  state.history.set(env.id, env);
  if (state.history.size > KEEP_HISTORY) state.history.delete(state.history.keys().next().value);
}

function onLive(env) {
  remember(env);
  const p = env.payload;
  switch (env.kind) {
    case "NodeHealth": setComponent("node", p.status); nodeChanged(); break;
    case "ComponentHealth": setComponent(p.component, p.status); break;
    case "SubscriptionHealth": subscriptionHealth(p); pluginsChanged(); break;
    case "HealthSummary": if (p.store === "default") renderSummary(p); break;
    case "MetricsSummary": if (p.store === "default") metricsTick(p); countsChanged(); break;
    case "LatencyMetric": latency(p); break;
    case "SystemAlert": case "AlertEscalation": case "AlertAck": alertMessage(env); break;
    default: if (env.channel === "lifecycle") pluginsChanged();
  }
}

/** Opens the live socket; resolves once every channel is subscribed. */
function openLive() {
  return new Promise((resolve) => {
    const ws = new WebSocket(streamUrl("health", [">"]));
    state.live = ws;
    let waiting = LIVE_CHANNELS.length;
    ws.addEventListener("open", () => {
      for (const channel of LIVE_CHANNELS) ws.send(JSON.stringify({ subscribe: ">", channel }));
    });
    ws.addEventListener("message", (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === "subscribed") {
        waiting -= 1;
        if (waiting === 0) {
          state.liveRetry = 500;
          setConnection("live", "live");
          resolve();
        }
      } else if (msg.type === "lagged") {
        // Something was missed: read the current state again.
        refreshAll().catch(report);
      } else if (msg.type === "error") {
        setConnection("down", msg.error);
      } else if (msg.kind) {
        onLive(msg);
      }
    });
    ws.addEventListener("close", () => {
      setConnection("down", "disconnected; reconnecting…");
      const wait = state.liveRetry;
      state.liveRetry = Math.min(wait * 2, 10000);
      setTimeout(() => {
        checkSession()
          .then(openLive)
          .then(refreshAll)
          .catch(report);
      }, wait);
      resolve();
    });
  });
}

// ---------------------------------------------------------------- tail

function tailPatterns() {
  const text = $("#tail-pattern").value.trim();
  return text ? text.split(/\s+/) : [">"];
}

function openTail() {
  if (state.tail.ws) {
    state.tail.ws.onclose = null;
    state.tail.ws.close();
  }
  const channel = $("#tail-channel").value;
  const patterns = tailPatterns();
  const seq = ++state.tail.seq;
  return new Promise((resolve) => {
    const ws = new WebSocket(streamUrl(channel, patterns, "console"));
    state.tail.ws = ws;
    ws.onopen = () => {
      $("#tail-status").textContent = `${channel} ${patterns.join(" ")}`;
      resolve();
    };
    ws.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === "lagged") tailItem({ lagged: msg.missed });
      else if (msg.type === "error") $("#tail-status").textContent = msg.error;
      else if (msg.envelope) tailItem(msg);
    };
    ws.onclose = () => {
      if (seq !== state.tail.seq) return;
      $("#tail-status").textContent = "tail disconnected; reconnecting…";
      setTimeout(() => {
        if (seq === state.tail.seq) openTail();
      }, 2000);
      resolve();
    };
  });
}

function tailItem(item) {
  if (item.envelope) remember(item.envelope);
  if (state.tail.paused) {
    state.tail.held.push(item);
    if (state.tail.held.length > KEEP_HELD) state.tail.held.shift();
    $("#tail-status").textContent = `paused · ${state.tail.held.length} held`;
    return;
  }
  showLine(item);
}

function showLine(item) {
  const list = $("#tail-lines");
  const li = item.lagged !== undefined
    ? el("li", { class: "lagged", text: `⚠️ LAGGED: ${item.lagged} messages missed (this page fell behind)` })
    : el("li", { class: item.class, "data-id": item.envelope.id, tabindex: 0, text: item.line });
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(li);
  while (list.children.length > KEEP_LINES) list.firstElementChild.remove();
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function togglePause() {
  const button = $("#tail-pause");
  state.tail.paused = !state.tail.paused;
  button.setAttribute("aria-pressed", String(state.tail.paused));
  button.textContent = state.tail.paused ? "Resume" : "Pause";
  if (!state.tail.paused) {
    const held = state.tail.held;
    state.tail.held = [];
    for (const item of held) showLine(item);
    $("#tail-status").textContent = `${$("#tail-channel").value} ${tailPatterns().join(" ")}`;
  }
}

function describe(env) {
  const time = env.timestamp.slice(11, 23);
  return `${time} ${env.channel} ${env.topic} ${env.kind}`;
}

function showEnvelope(id) {
  const env = state.history.get(id);
  if (!env) return;
  for (const li of document.querySelectorAll("#tail-lines li.selected")) li.classList.remove("selected");
  const line = document.querySelector(`#tail-lines li[data-id="${CSS.escape(id)}"]`);
  if (line) line.classList.add("selected");
  $("#envelope").hidden = false;
  $("#envelope-json").textContent = JSON.stringify(env, null, 2);
  const cid = env.correlation_id;
  $("#correlation-id").textContent = cid ? cid : "(none)";
  const list = $("#correlated");
  if (!cid) {
    list.replaceChildren(el("li", { text: "this message has no correlation id" }));
    return;
  }
  const related = [...state.history.values()]
    .filter((e) => e.correlation_id === cid)
    .sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  list.replaceChildren(...related.map((e) => el("li", { "data-id": e.id, tabindex: 0, class: e.id === id ? "selected" : "", text: describe(e) })));
}

function pickLine(event) {
  const li = event.target.closest("li[data-id]");
  if (!li) return;
  if (event.type === "keydown" && event.key !== "Enter" && event.key !== " ") return;
  if (event.type === "keydown") event.preventDefault();
  showEnvelope(li.dataset.id);
}

// ---------------------------------------------------------------- start

async function checkSession() {
  for (;;) {
    try {
      state.session = await api("/v1/session");
      break;
    } catch (err) {
      if (!(err instanceof Unauthorized)) throw err;
      await askToken(err.message);
    }
  }
  const s = state.session;
  document.body.dataset.role = s.admin ? "admin" : s.scopes.includes("read") ? "read" : "none";
  $("#plugin-upload").hidden = !s.admin;
}

function refreshAll() {
  return Promise.all([refreshNode(), refreshPlugins(), refreshHealth(), refreshEmitters(), refreshAlerts()]);
}

async function start() {
  $("#token-form").addEventListener("submit", tokenEntered);
  $("#plugins tbody").addEventListener("click", (e) => pluginAction(e).catch(report));
  $("#plugin-upload").addEventListener("submit", (e) => uploadPlugin(e).catch(report));
  $("#alerts .alerts").addEventListener("click", (e) => ackAlert(e).catch(report));
  $("#tail-form").addEventListener("submit", (e) => {
    e.preventDefault();
    openTail().catch(report);
  });
  $("#tail-channel").addEventListener("change", () => openTail().catch(report));
  $("#tail-pause").addEventListener("click", togglePause);
  $("#tail-clear").addEventListener("click", () => $("#tail-lines").replaceChildren());
  for (const list of [$("#tail-lines"), $("#correlated")]) {
    list.addEventListener("click", pickLine);
    list.addEventListener("keydown", pickLine);
  }
  setInterval(tickClock, 1000);
  for (;;) {
    try {
      await checkSession();
      if (document.body.dataset.role === "none") {
        setConnection("down", `token \`${state.session.name}\` lacks the scope \`read\``);
        return;
      }
      // Streams first, then the snapshot: nothing that changes in between
      // is missed.
      await Promise.all([openLive(), openTail()]);
      await refreshAll();
      break;
    } catch (err) {
      report(err);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  document.body.dataset.ready = "true";
}

start();
