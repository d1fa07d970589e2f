// Patronus dashboard: one page, no dependencies. Live figures arrive once a
// second over a graphql-transport-ws subscription; the charts start from the
// history query and grow with each figure. The token (if any) is kept in
// this tab's sessionStorage and sent as a bearer token, never as a cookie.
"use strict";

const state = { token: sessionStorage.getItem("patronus-token") || "", figures: null, events: [], errors: [],
  history: {}, role: null, ws: null, lastPorts: null };
window.__patronus = state; // read by the browser test

const $ = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "-").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const num = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v)) ? "-" : Number(v).toFixed(d);
const cell = (v, cls = "") => `<td class="${cls}">${esc(v)}</td>`;
const ncell = (v, d = 0) => `<td class="n">${esc(num(v, d))}</td>`;

function headers() {
  const h = { "content-type": "application/json" };
  if (state.token) h.authorization = "Bearer " + state.token;
  return h;
}

async function gql(query, variables = {}) {
  const r = await fetch("/graphql", { method: "POST", headers: headers(), body: JSON.stringify({ query, variables }) });
  const body = await r.json().catch(() => ({ errors: [{ message: `HTTP ${r.status}` }] }));
  if (!r.ok && !body.errors) body.errors = [{ message: `HTTP ${r.status}` }];
  return body;
}

// Every field below a type, from the schema: the page asks for all of a
// figure without a list of field names to keep in step with the server.
async function selections() {
  const r = await gql("{ __schema { types { name kind fields { name type { name ofType { name ofType { name ofType { name } } } } } } } }");
  if (r.errors) throw new Error(r.errors[0].message);
  const types = {};
  for (const t of r.data.__schema.types) types[t.name] = t;
  const named = (t) => t.name || named(t.ofType);
  const sel = (name) => {
    const t = types[name];
    return t && t.kind === "OBJECT" ? `{ ${t.fields.map((f) => f.name + " " + sel(named(f.type))).join(" ")} }` : "";
  };
  return sel;
}

function setRows(id, rows) {
  $(id).querySelector("tbody").innerHTML = rows.join("");
}

// ---- live figures -------------------------------------------------------

function pathState(p) {
  return p.drained ? "drained" : p.state;
}

function render(f) {
  state.figures = f;
  const st = f.status || {};
  $("site").textContent = st.site ? `· ${st.site}` : "";
  $("status").textContent = `up ${num(st.uptime_seconds)} s · v${st.version} · ${(st.workers || []).length} worker(s) · reloads ${st.reloads?.ok ?? 0} ok / ${st.reloads?.failed ?? 0} rejected`;
  const paths = f.paths?.paths || [];
  const admin = state.role === "admin";
  setRows("paths", paths.map((p) => `<tr data-path="${esc(p.path)}">${cell(p.path)}${cell(p.peer)}${cell(p.port)}` +
    `<td class="state state-${esc(pathState(p))}">${esc(pathState(p))}</td>${ncell(p.rtt_ms?.p50, 2)}${ncell(p.rtt_ms?.p99, 2)}` +
    `${ncell(p.loss_pct, 1)}${ncell(p.jitter_ms, 2)}${cell((p.rules || []).join(", "))}` +
    `<td>${admin ? `<button class="drain" data-path="${esc(p.path)}" data-drained="${p.drained}">${p.drained ? "undrain" : "drain"}</button>` : ""}</td></tr>`));
  const apps = f.apps || [];
  setRows("apps", apps.slice(0, 30).map((a) => `<tr>${cell(a.application)}${cell(a.category)}${ncell(a.flows)}${ncell(a.packets)}${ncell(a.bytes)}${cell(a.rule)}${cell(a.path)}</tr>`));
  const cats = {};
  for (const a of apps) { const c = (cats[a.category] ||= { flows: 0, bytes: 0 }); c.flows += a.flows; c.bytes += a.bytes; }
  setRows("categories", Object.entries(cats).sort((a, b) => b[1].bytes - a[1].bytes).map(([c, v]) => `<tr>${cell(c)}${ncell(v.flows)}${ncell(v.bytes)}</tr>`));
  const ports = f.ports || [];
  const prev = state.lastPorts;
  const dt = prev ? Math.max(0.001, f.unix - prev.unix) : 0;
  setRows("ports", ports.map((p, i) => {
    const q = prev?.rows[i];
    const rate = (k) => (q && q.port === p.port && dt) ? (p[k] - q[k]) / dt : null;
    return `<tr data-port="${esc(p.port)}">${cell(p.port)}${cell(p.role)}${ncell(p.rx_packets)}${ncell(p.tx_packets)}${ncell(rate("rx_packets"))}${ncell(rate("tx_packets"))}${ncell(p.drops)}</tr>`;
  }));
  state.lastPorts = { unix: f.unix, rows: ports };
  setRows("qos", (f.qos || []).filter((q) => q.sent_packets || q.depth || q.tail_drops || q.codel_drops)
    .map((q) => `<tr>${cell(q.port)}${cell(q.class)}${ncell(q.depth)}${ncell(q.sent_packets)}${ncell(q.sent_bytes)}${ncell(q.tail_drops)}${ncell(q.codel_drops)}</tr>`));
  setRows("drops", (f.drops || []).map((d) => `<tr>${cell(d.port)}${cell(d.core)}${cell(d.reason)}${ncell(d.packets)}</tr>`));
  setRows("peers", (f.peers?.peers || []).map((p) => `<tr data-peer="${esc(p.peer)}">${cell(p.peer)}${cell(p.endpoint)}${ncell(p.latest_handshake_seconds_ago, 0)}${ncell(p.rx_bytes)}${ncell(p.tx_bytes)}</tr>`));
  setRows("bfd", (f.paths?.bfd?.sessions || []).map((s) => `<tr>${cell(s.name)}${cell(s.peer)}<td class="state-${s.state === "up" ? "up" : "down"}">${esc(s.state)}</td>${cell(s.remote_state)}${cell(s.diagnostic)}</tr>`));
  for (const p of paths) {
    const h = (state.history[p.path] ||= { unix: [], p50: [], p99: [], loss: [], jitter: [] });
    const measured = p.state !== "unmeasured";
    h.unix.push(f.unix); h.p50.push(p.rtt_ms?.p50 ?? null); h.p99.push(p.rtt_ms?.p99 ?? null);
    h.loss.push(measured ? p.loss_pct : null); h.jitter.push(measured ? p.jitter_ms : null);
    for (const k of ["unix", "p50", "p99", "loss", "jitter"]) if (h[k].length > 900) h[k].shift();
  }
  topology(st.site || "this site", paths);
  charts();
}

// ---- topology -------------------------------------------------------------

const COLORS = { up: "#1a7f37", down: "#cf222e", suppressed: "#bf8700", unmeasured: "#8c959f", drained: "#0969da" };

function topology(site, paths) {
  const peers = [...new Set(paths.map((p) => p.peer))];
  const svg = [];
  const me = { x: 110, y: 130 };
  svg.push(`<rect x="${me.x - 80}" y="${me.y - 22}" width="160" height="44" rx="8" fill="#24292f"/><text x="${me.x}" y="${me.y + 4}" fill="#fff" text-anchor="middle">${esc(site)}</text>`);
  peers.forEach((peer, i) => {
    const y = peers.length === 1 ? 130 : 40 + i * (180 / Math.max(1, peers.length - 1));
    const x = 610;
    const mine = paths.filter((p) => p.peer === peer);
    mine.forEach((p, j) => {
      // A quadratic curve per path; its label sits on the curve's middle.
      const off = (j - (mine.length - 1) / 2) * 110;
      const s = pathState(p);
      const ctrl = (me.y + y) / 2 + off;
      const mid = 0.25 * me.y + 0.5 * ctrl + 0.25 * y;
      svg.push(`<path d="M${me.x + 80},${me.y} Q360,${ctrl} ${x - 70},${y}" stroke="${COLORS[s] || "#8c959f"}" stroke-width="4" fill="none"${s === "drained" ? ' stroke-dasharray="8 6"' : ""}><title>${esc(p.path)}: ${esc(s)}</title></path>`);
      svg.push(`<text x="360" y="${mid - 7}" text-anchor="middle" data-path="${esc(p.path)}">${esc(p.path)} · ${esc(s)} · ${num(p.rtt_ms?.p50, 1)} ms · ${num(p.loss_pct, 1)}% loss · ±${num(p.jitter_ms, 1)} ms</text>`);
    });
    svg.push(`<rect x="${x - 70}" y="${y - 18}" width="140" height="36" rx="8" fill="#fff" stroke="#24292f"/><text x="${x}" y="${y + 4}" text-anchor="middle">${esc(peer)}</text>`);
  });
  $("topology").innerHTML = svg.join("");
}

// ---- charts ----------------------------------------------------------------

function line(xs, ys, x0, x1, ymax, w, h, cls) {
  const pts = [];
  xs.forEach((x, i) => {
    if (ys[i] === null || ys[i] === undefined) return;
    pts.push(`${((x - x0) / Math.max(1, x1 - x0) * w).toFixed(1)},${(h - ys[i] / ymax * h).toFixed(1)}`);
  });
  return pts.length ? `<polyline class="${cls}" points="${pts.join(" ")}"/>` : "";
}

function charts() {
  const out = [];
  for (const [name, h] of Object.entries(state.history)) {
    if (!h.unix.length) continue;
    const x0 = h.unix[0], x1 = h.unix[h.unix.length - 1];
    const ymax = Math.max(1, ...h.p99.filter((v) => v !== null));
    const w = 300, hh = 80;
    out.push(`<figure class="chart" data-path="${esc(name)}"><figcaption>${esc(name)}: RTT p50 (blue), p99 (amber) and jitter (green), ms, max ${num(ymax, 1)}; loss % (red)</figcaption>` +
      `<svg width="${w}" height="${hh}" viewBox="0 0 ${w} ${hh}">${line(h.unix, h.p50, x0, x1, ymax, w, hh, "p50")}${line(h.unix, h.p99, x0, x1, ymax, w, hh, "p99")}` +
      `${line(h.unix, h.jitter || [], x0, x1, ymax, w, hh, "jitter")}${line(h.unix, h.loss, x0, x1, 100, w, hh, "loss")}</svg></figure>`);
  }
  $("charts").innerHTML = out.join("");
}

// ---- events ---------------------------------------------------------------

function addEvent(e) {
  if (!e || state.events.some((x) => x.seq === e.seq && e.seq)) return;
  state.events.push(e);
  if (state.events.length > 300) state.events.shift();
  const li = document.createElement("li");
  // A path or BFD session coming up is good news, whatever its kind.
  li.className = e.kind + (/^up$/i.test(e.fields?.state || "") ? " up" : "");
  li.textContent = `${new Date((e.at || 0) * 1000).toLocaleTimeString()} [${e.kind}] ${e.message}`;
  $("events").prepend(li);
}

// ---- the subscription -----------------------------------------------------

function connect() {
  // One subscription at a time: a new one (after a login) replaces it.
  if (state.ws) { const old = state.ws; state.ws = null; old.close(); }
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql/ws", "graphql-transport-ws");
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload: state.token ? { authorization: "Bearer " + state.token } : {} }));
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "connection_ack") {
      ws.send(JSON.stringify({ id: "figures", type: "subscribe", payload: { query: `subscription { figures ${state.sel("Figures")} }` } }));
      ws.send(JSON.stringify({ id: "events", type: "subscribe", payload: { query: `subscription { events ${state.sel("Event")} }` } }));
    } else if (msg.type === "ping") {
      ws.send(JSON.stringify({ type: "pong" }));
    } else if (msg.type === "next" && msg.id === "figures" && msg.payload?.data) {
      render(msg.payload.data.figures);
    } else if (msg.type === "next" && msg.id === "events" && msg.payload?.data) {
      addEvent(msg.payload.data.events);
    } else if (msg.type === "error") {
      $("status").textContent = "subscription refused: " + (msg.payload?.[0]?.message || "error");
    }
  };
  ws.onclose = (e) => {
    if (state.ws === ws) {
      $("status").textContent = `disconnected (${e.code}${e.reason ? ": " + e.reason : ""}); reconnecting…`;
      setTimeout(connect, 1000);
    }
  };
}

// ---- start-up, login, reload, drain ---------------------------------------

async function load() {
  let r;
  try {
    state.sel = await selections();
    r = await gql(`{ whoami { name role } config { file text drained_paths } events(last: 100) ${state.sel("Event")} history ${state.sel("History")} }`);
  } catch (e) {
    r = { errors: [{ message: String(e.message || e) }] };
  }
  if (r.errors) {
    $("whoami").textContent = r.errors[0].message;
    return false;
  }
  const d = r.data;
  state.role = d.whoami.role;
  $("whoami").textContent = `${d.whoami.name} (${d.whoami.role || "no access"})`;
  $("config-file").textContent = d.config.file + (d.config.drained_paths.length ? ` · drained: ${d.config.drained_paths.join(", ")}` : "");
  $("config").value = d.config.text;
  $("reload").disabled = state.role !== "admin";
  for (const e of d.events) addEvent(e);
  for (const s of d.history.paths) {
    const c = s.columns;
    state.history[s.name] = { unix: c.unix, p50: c.rtt_p50_ms, p99: c.rtt_p99_ms, loss: c.loss_pct, jitter: c.jitter_ms };
  }
  charts();
  return true;
}

async function reload() {
  $("reload-result").textContent = "validating…";
  $("reload-errors").textContent = "";
  const r = await gql("mutation ($text: String) { reload(text: $text) { ok error errors snapshot applied } }", { text: $("config").value });
  const v = r.data?.reload;
  if (r.errors) {
    $("reload-result").textContent = "refused";
    $("reload-errors").textContent = r.errors.map((e) => e.message).join("\n");
  } else if (v && v.ok) {
    $("reload-result").textContent = `applied as snapshot ${v.snapshot}` + (v.applied?.length ? `: changed ${v.applied.join(", ")}` : ": nothing changed");
  } else {
    $("reload-result").textContent = (v && v.error) || "rejected";
    $("reload-errors").textContent = ((v && v.errors) || []).join("\n");
  }
}

async function drain(path, on) {
  const r = await gql(`mutation ($p: String!) { ${on ? "drainPath" : "undrainPath"}(path: $p) { ok message error } }`, { p: path });
  const v = r.data && (r.data.drainPath || r.data.undrainPath);
  addEvent({ seq: 0, at: Date.now() / 1000, kind: "ui", message: r.errors ? r.errors[0].message : v.message || v.error });
}

window.addEventListener("error", (e) => state.errors.push(String(e.message)));
document.addEventListener("DOMContentLoaded", () => {
  $("token").value = state.token;
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    sessionStorage.setItem("patronus-token", state.token);
    state.started = true;
    load().then((ok) => ok && connect());
  });
  $("reload").addEventListener("click", reload);
  $("paths").addEventListener("click", (e) => {
    const b = e.target.closest("button.drain");
    if (b) drain(b.dataset.path, b.dataset.drained !== "true");
  });
  // With tokens configured, nothing is asked before one is given.
  fetch("/auth").then((r) => r.json()).then((a) => {
    if (state.started) return; // a login got there first
    state.started = true;
    if (a.tokens && !state.token) {
      state.started = false;
      $("status").textContent = "this appliance needs an API token";
      $("token").focus();
    } else {
      load().then((ok) => ok && connect());
    }
  });
});
