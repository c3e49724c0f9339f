// The classroom view: draws the devices, the broker and the other clients, animates each
// message from its publisher to the broker and on to each subscriber the broker delivered
// it to (as the broker tells each delivery), and sends the controls as real MQTT publishes
// through the server. No library, no build.
import { matches, describe } from "./model.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const LEG_MS = 800;          // one leg of a message's trip at normal speed
const MAX_PACKETS = 40;      // messages drawn at once; more are logged, not drawn
const MAX_LOG = 300;
const MAX_RECENT = 500;      // messages kept by seq, for their deliveries to join

const view = {
  devices: new Map(), clients: new Map(), readings: new Map(),
  home: 1, paused: false, slow: false, held: [], packets: [], hits: new Map(),
  perSec: 0, count: 0, lost: 0, aggregating: false, edges: [], blind: "", recent: new Map(),
  homeRates: new Map(), homeCount: new Map(), me: { teacher: false, controls: false, unplug: false },
};
// For tests and the curious: what the page has done.
window.classroom = { msgs: 0, animated: 0, deliveries: 0, trips: [], view };

function el(tag, attrs = {}, parent) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

// ---- layout: where each node of the shown home stands
const SLOTS = [[40, 130], [220, 130], [40, 235], [220, 235], [40, 340], [220, 340], [40, 445], [220, 445]];
const KIND_ORDER = ["phone", "bulb", "heater", "camera", "vacuum", "sensor"];
const BROKER = { x: 510, y: 330, r: 58 };
const VIEW = { w: 820, h: 600 };     // the scene's viewBox
const CLIENT = { x: 622, w: 190 };   // the column of outside clients: room for a 16-letter id
const SUMMARY = ["phone", "bulb", "heater", "camera", "vacuum"]; // what a home's tile tells

function layout() {
  const pos = new Map();
  const devs = [...view.devices.values()].filter((d) => d.home === view.home)
    .sort((a, b) => (KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind)) || a.id.localeCompare(b.id));
  let slot = 0, outside = 0;
  for (const d of devs) {
    const r = view.readings.get(d.node) || {};
    const out = (d.kind === "phone" && d.state === "away") || (d.kind === "sensor" && r.location === "outdoor");
    if (out && outside < 2) { pos.set(d.node, { x: 40 + 180 * outside++, y: 12, w: 160, h: 80 }); continue; }
    if (slot < SLOTS.length) { const [x, y] = SLOTS[slot++]; pos.set(d.node, { x, y, w: 160, h: 80 }); }
  }
  // The other clients, the latest 8 (one that came and went, like mosquitto_pub, stays
  // a while, dashed), in a column on the far side of the broker.
  let y = 14;
  for (const c of [...view.clients.values()].filter((c) => !c.fleet).slice(-8)) {
    pos.set(c.node, { x: CLIENT.x, y, w: CLIENT.w, h: 56 });
    y += 70;
  }
  return pos;
}

function center(p) { return p === "broker" ? { x: BROKER.x, y: BROKER.y } : { x: p.x + p.w / 2, y: p.y + p.h / 2 }; }

// anchor is where node p's edge to the broker starts: a client's at its card's left side,
// so the edges of the column of clients do not run under each other's cards.
function anchor(p) { return p.x >= CLIENT.x ? { x: p.x, y: p.y + p.h / 2 } : center(p); }

// rim is where the edge from node p to the broker leaves p's card: messages start and end
// there, in sight, as the cards are drawn over them.
function rim(p) {
  if (p.x >= CLIENT.x) return anchor(p);
  const c = center(p), dx = BROKER.x - c.x, dy = BROKER.y - c.y;
  const t = Math.min(1, Math.abs(dx) > 0 ? p.w / 2 / Math.abs(dx) : 1, Math.abs(dy) > 0 ? p.h / 2 / Math.abs(dy) : 1);
  return { x: c.x + dx * t, y: c.y + dy * t };
}

// ---- drawing
let positions = new Map();

function render() {
  positions = layout();
  $("house-label").textContent = `Home ${view.home}`;
  const nodes = $("nodes");
  nodes.textContent = "";
  const b = el("g", { id: "broker", "data-node": "broker" }, nodes);
  el("circle", { cx: BROKER.x, cy: BROKER.y, r: BROKER.r }, b);
  el("text", { x: BROKER.x, y: BROKER.y + 6, "text-anchor": "middle" }, b).textContent = "broker";
  for (const [node, p] of positions) {
    const d = view.devices.get(node);
    const c = d ? null : [...view.clients.values()].find((x) => x.node === node);
    const info = d ? describe(d, view.readings.get(node)) : { kind: c.user ? "user " + c.user : "client", word: c.id, cls: "external" };
    const g = el("g", { class: `node ${info.cls}`, "data-node": node, "data-state": d ? d.state || "" : c.connected ? "connected" : "gone",
      transform: `translate(${p.x},${p.y})` }, nodes);
    if (d) g.setAttribute("data-kind", d.kind);
    const rides = d && d.client && view.clients.get(d.client);
    if ((rides && !rides.connected) || (c && !c.connected)) g.classList.add("offline");
    el("title", {}, g).textContent = d ? `${d.kind} ${d.id} (${d.state || "?"})` : `${info.kind} ${c.id}`; // the full name, on hover
    el("rect", { width: p.w, height: p.h, rx: 10 }, g);
    const room = p.w - 20;
    fit(el("text", { x: 10, y: 18, class: "kind" }, g), d ? `${d.kind} ${d.id}` : info.kind, room);
    fit(el("text", { x: 10, y: d ? 50 : 40, class: "state" }, g), info.word, room);
    if (info.detail) fit(el("text", { x: 10, y: 70, class: "kind" }, g), info.detail, room);
  }
  drawEdges();
  renderSubs();
  renderHomes();
}

// fit writes s into the SVG text t, cut short with "…" where it would pass width px
// (the full name is in the node's tooltip and the subscriptions panel).
const fitted = new Map(); // class|width|s -> what fits
function fit(t, s, width) {
  const key = `${t.getAttribute("class")}|${width}|${s}`;
  if (fitted.has(key)) { t.textContent = fitted.get(key); return; }
  t.textContent = s;
  for (let n = s.length - 1; n > 0 && t.getComputedTextLength() > width; n--) t.textContent = s.slice(0, n) + "…";
  if (fitted.size > 2000) fitted.clear();
  fitted.set(key, t.textContent);
}

function drawEdges() {
  const g = $("edges");
  g.textContent = "";
  for (const [, p] of positions) {
    const c = anchor(p);
    el("line", { x1: c.x, y1: c.y, x2: BROKER.x, y2: BROKER.y }, g);
  }
  if (!view.aggregating) return;
  const per = new Map(); // node -> messages/s on its edge, either way
  for (const e of view.edges) {
    const n = e.to === "broker" ? e.from : e.to;
    per.set(n, (per.get(n) || 0) + e.n);
  }
  for (const [n, rate] of per) {
    const p = positions.get(n);
    if (!p) continue;
    const c = anchor(p);
    el("line", { x1: c.x, y1: c.y, x2: BROKER.x, y2: BROKER.y, class: "rate", "stroke-width": Math.min(12, 2 + Math.log2(1 + rate)) }, g);
    el("text", { x: (c.x + BROKER.x) / 2, y: (c.y + BROKER.y) / 2 - 4, "text-anchor": "middle" }, g).textContent = `${rate}/s`;
  }
}

function renderSubs() {
  const ul = $("sublist");
  ul.textContent = "";
  const rows = [];
  for (const d of view.devices.values()) if (d.home === view.home && d.filters && d.filters.length) rows.push([d.node, d.id, d.filters]);
  for (const c of view.clients.values()) if (!c.fleet && c.connected && c.filters && c.filters.length) rows.push([c.node, c.id, c.filters]);
  for (const [node, name, filters] of rows) {
    const li = document.createElement("li");
    li.dataset.node = node;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = name + ": ";
    li.appendChild(who);
    for (const f of filters) {
      const code = document.createElement("code");
      code.textContent = f;
      if (view.hits.get(node) === f) code.className = "hit";
      li.appendChild(code);
      li.appendChild(document.createTextNode(" "));
    }
    ul.appendChild(li);
  }
  if (view.blind) { $("blind").hidden = false; $("blind").textContent = view.blind; }
}

function renderHomes() {
  const homes = [...new Set([...view.devices.values()].map((d) => d.home))].sort((a, b) => a - b);
  const grid = $("homes");
  if (homes.length <= 1) { grid.hidden = true; return; }
  grid.hidden = false;
  grid.textContent = "";
  for (const h of homes.slice(0, 200)) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.home = h;
    const states = [...view.devices.values()].filter((d) => d.home === h && SUMMARY.includes(d.kind))
      .sort((a, c) => SUMMARY.indexOf(a.kind) - SUMMARY.indexOf(c.kind))
      .map((d) => `${d.kind} ${describe(d, view.readings.get(d.node)).word}`).join(", ");
    b.textContent = `Home ${h} · ${view.homeRates.get(h) || 0} msg/s — ${states || "no smart-home devices"}`;
    b.setAttribute("aria-pressed", String(h === view.home));
    b.onclick = () => { view.home = h; render(); };
    grid.appendChild(b);
  }
  grid.style.maxHeight = "110px";
}

// ---- messages
// animate draws a message's trip: from its publisher to the broker, then to each
// delivery, the ones it came with (m.to) and those the broker tells after (onDelivery).
function animate(m) {
  const fromBroker = m.from === "broker"; // a retained message, sent as a client subscribed
  const from = fromBroker ? { x: BROKER.x - 1, y: BROKER.y - 1, w: 2, h: 2 } : positions.get(m.from);
  if (!from || view.packets.length >= MAX_PACKETS) return null;
  const g = el("g", { class: "packet" + (m.retained ? " retained" : ""), "data-topic": m.topic }, $("packets"));
  const tag = `${m.topic} Q${m.qos}${m.retained ? " R" : ""}`;
  const p = { g, from: rim(from), targets: [], tag, retained: m.retained, t: fromBroker ? 1 : 0, step: view.paused };
  view.packets.push(p);
  window.classroom.animated++;
  trip(m, p, m.to);
  return p;
}

// trip sends packet p on from the broker to the deliveries in to, and notes the trip.
function trip(m, p, to) {
  p.targets.push(...to.map((t) => positions.get(t.node)).filter(Boolean).map(rim));
  window.classroom.trips = [...window.classroom.trips.slice(-49), `${m.from} ${m.topic} ${to.map((t) => t.node).join(",")}`];
}

// onDelivery takes a delivery the broker made of message e.seq (0: not known).
function onDelivery(e, draw) {
  window.classroom.deliveries++;
  const r = view.recent.get(e.seq);
  const m = r ? r.m : { from: "broker", topic: e.topic, qos: e.qos, to: [] };
  if (r) { m.to.push(...e.to); logText(r.li, m); }
  for (const t of e.to) view.hits.set(t.node, t.filter);
  renderSubs();
  if (!draw) return;
  if (r && r.p && r.p.t < 1 && view.packets.includes(r.p)) { trip(m, r.p, e.to); return; } // still on its way in
  const p = animate({ ...m, from: "broker", to: [] }); // it reached the broker already
  if (p) { window.classroom.trips.pop(); trip(m, p, e.to); }
}

function frame(prev) {
  return (now) => {
    const dt = now - prev;
    const speed = view.slow ? 0.2 : 1;
    for (const p of view.packets) {
      if (!view.paused || p.step) p.t += (dt * speed) / LEG_MS;
      drawPacket(p);
    }
    view.packets = view.packets.filter((p) => { if (p.t < 2) return true; p.g.remove(); return false; });
    drawLabels();
    requestAnimationFrame(frame(now));
  };
}

function drawPacket(p) {
  p.g.textContent = "";
  const b = { x: BROKER.x, y: BROKER.y };
  const pts = p.t < 1 ? [lerp(p.from, b, p.t)] : p.targets.map((t) => lerp(b, t, p.t - 1));
  for (const q of pts) el("circle", { cx: q.x, cy: q.y, r: 9 }, p.g);
  p.at = pts[0]; // where its one label goes
}

// ---- message labels: one per message in flight, on a plate, over nothing else. A label
// goes beside its dot or, tied to it by a line, a few rows above or below; one that would
// cover a card, the broker or another label anywhere waits until its message is somewhere
// with room (the log lists every message anyway). A label keeps its place by the dot while
// it fits there, so labels do not jump about.
const LABEL = { h: 22, pad: 6, off: 11, rows: 5 };

function drawLabels() {
  const g = $("labels");
  g.textContent = "";
  const cards = [...positions.values()].map((p) => ({ x: p.x, y: p.y, w: p.w, h: p.h }));
  cards.push({ x: BROKER.x - BROKER.r, y: BROKER.y - BROKER.r, w: 2 * BROKER.r, h: 2 * BROKER.r });
  const taken = [...cards];
  const placed = view.packets.filter((p) => p.spot >= 0);
  const waiting = view.packets.filter((p) => !(p.spot >= 0)).reverse(); // the newest first
  for (const p of [...placed, ...waiting]) {
    if (!p.at || cards.some((c) => inside(p.at, c))) continue; // its dot is under a card
    if (p.w === undefined) p.w = measure(g, p.tag) + 2 * LABEL.pad;
    const spots = around(p.at, p.w);
    const free = (s) => s.x >= 0 && s.y >= 0 && s.x + s.w <= VIEW.w && s.y + s.h <= VIEW.h &&
      !taken.some((o) => overlaps(s, o)) && !(s.far && cards.some((c) => crosses(p.at, leader(p.at, s), c)));
    p.spot = p.spot >= 0 && free(spots[p.spot]) ? p.spot : spots.findIndex(free);
    if (p.spot < 0) continue;
    const s = spots[p.spot];
    taken.push(s);
    const lg = el("g", { class: "label" + (p.retained ? " retained" : "") }, g);
    if (s.far) { const e = leader(p.at, s); el("line", { x1: p.at.x, y1: p.at.y, x2: e.x, y2: e.y }, lg); }
    el("rect", { x: s.x, y: s.y, width: s.w, height: s.h, rx: 4 }, lg);
    el("text", { x: s.x + LABEL.pad, y: s.y + s.h - 6 }, lg).textContent = p.tag;
  }
}

// around lists the places a label of width w may take by a dot at q, the nearest first.
function around(q, w) {
  const { h, off, rows } = LABEL;
  const xs = [q.x + off, q.x - off - w, Math.min(VIEW.w - w, Math.max(0, q.x - w / 2))];
  const spots = [q.x + off, q.x - off - w].map((x) => ({ x, y: q.y - h / 2, w, h }));
  for (let k = 0; k < rows; k++) {
    const up = q.y - off - h - k * (h + 4), down = q.y + off + k * (h + 4);
    for (const x of xs) spots.push({ x, y: up, w, h, far: k > 0 }, { x, y: down, w, h, far: k > 0 });
  }
  return spots;
}

// leader is where the line from a dot at q meets its label's plate s.
function leader(q, s) { return { x: Math.min(s.x + s.w, Math.max(s.x, q.x)), y: s.y > q.y ? s.y : s.y + s.h }; }

// crosses reports whether the segment a-b passes over the rectangle r (tested every 4 px).
function crosses(a, b, r) {
  if (Math.max(a.x, b.x) < r.x || Math.min(a.x, b.x) > r.x + r.w || Math.max(a.y, b.y) < r.y || Math.min(a.y, b.y) > r.y + r.h) return false;
  const n = Math.ceil(Math.hypot(b.x - a.x, b.y - a.y) / 4);
  for (let i = 1; i < n; i++) if (inside(lerp(a, b, i / n), r)) return true;
  return false;
}

function inside(q, r) { return q.x > r.x && q.x < r.x + r.w && q.y > r.y && q.y < r.y + r.h; }

function overlaps(a, b) { return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h; }

function measure(g, s) {
  const t = el("text", {}, el("g", { class: "label" }, g));
  t.textContent = s;
  const w = t.getComputedTextLength();
  t.parentNode.remove();
  return w;
}

function lerp(a, b, t) { t = Math.min(1, Math.max(0, t)); return { x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t }; }

function onMsg(m, draw) {
  window.classroom.msgs++;
  view.count++;
  let fields = null;
  try { fields = JSON.parse(m.payload); } catch { /* plain text or cut short */ }
  if (fields && typeof fields === "object") {
    if (fields.sim_time) $("clock").textContent = fields.sim_time;
    if (m.from.startsWith("d:")) view.readings.set(m.from, { ...(view.readings.get(m.from) || {}), ...fields });
  }
  const home = m.from.startsWith("d:") ? Number(m.from.slice(2).split("/")[0]) : 0;
  if (home) view.homeCount.set(home, (view.homeCount.get(home) || 0) + 1);
  view.hits = new Map(m.to.map((t) => [t.node, t.filter]));
  m.to = [...m.to];
  const li = log(m);
  render();
  const p = draw ? animate(m) : null;
  view.recent.set(m.seq, { m, li, p });
  if (view.recent.size > MAX_RECENT) view.recent.delete(view.recent.keys().next().value);
}

function log(m) {
  const li = document.createElement("li");
  li.dataset.topic = m.topic;
  const t = new Date(m.t).toLocaleTimeString();
  const who = m.from === "broker" ? "broker (retained, on subscribe)" : m.from.replace(/^[dc]:/, "");
  li.innerHTML = `<span class="t"></span> <span class="badge">Q${m.qos}</span>${m.retained ? '<span class="badge r">R</span>' : ""}<b></b> <span class="p"></span>`;
  li.querySelector(".t").textContent = t;
  li.querySelector("b").textContent = `${m.topic} `;
  li.dataset.who = who;
  logText(li, m);
  li.hidden = !logShows(m.topic);
  const ol = $("loglist");
  ol.prepend(li);
  while (ol.children.length > MAX_LOG) ol.lastChild.remove();
  return li;
}

// logText says in a log line whom the message reached so far.
function logText(li, m) {
  li.querySelector(".p").textContent = `${li.dataset.who} → ${m.to.length}: ${m.payload || `(${m.size} bytes)`}`;
  li.title = m.to.map((x) => `${x.node.slice(2)} via ${x.filter || "?"}`).join("\n");
}

function logShows(t) {
  const f = $("logfilter").value.trim();
  if (!f) return true;
  return /[+#]/.test(f) ? matches(f, t) : t.includes(f);
}

// ---- the stream
function handle(e, draw = true) {
  switch (e.type) {
    case "snapshot":
      view.devices.clear(); view.clients.clear();
      for (const d of e.devices) view.devices.set(d.node, d);
      for (const c of e.clients) view.clients.set(c.id, c);
      for (const m of e.last) onMsg(m, false);
      view.blind = e.blind || "";
      if (!view.devices.size || ![...view.devices.values()].some((d) => d.home === view.home)) {
        const first = [...view.devices.values()][0];
        if (first) view.home = first.home;
      }
      render();
      break;
    case "device": view.devices.set(e.device.node, e.device); render(); break;
    case "client": view.clients.set(e.client.id, e.client); render(); break;
    case "msg": onMsg(e.msg, draw); break;
    case "delivery": onDelivery(e, draw); break;
    case "dropped": {
      const li = document.createElement("li");
      li.className = "dropped";
      li.dataset.topic = e.topic;
      li.textContent = `${new Date(e.t).toLocaleTimeString()} dropped for ${e.client}: its queue was full (${e.topic})`;
      $("loglist").prepend(li);
      break;
    }
    case "rates":
      view.aggregating = true; view.edges = e.edges; view.perSec = e.per_sec;
      view.homeRates.clear();
      for (const x of e.edges) {
        if (x.to !== "broker" || !x.from.startsWith("d:")) continue;
        const h = Number(x.from.slice(2).split("/")[0]);
        view.homeRates.set(h, (view.homeRates.get(h) || 0) + x.n);
      }
      $("rate").textContent = `${e.per_sec} msg/s: above ${e.limit}/s, rates instead of each message`;
      render();
      break;
    case "lost":
      view.lost += e.n;
      $("lost").hidden = false;
      $("lost").textContent = `this screen missed ${view.lost} events (it fell behind)`;
      break;
  }
}

function receive(e) {
  if (view.paused && e.type !== "snapshot") { view.held.push(e); $("step").disabled = false; return; }
  handle(e);
}

function connect() {
  const es = new EventSource("events");
  es.onopen = () => { $("conn").textContent = "live"; };
  es.onerror = () => { $("conn").textContent = "reconnecting…"; };
  es.onmessage = (ev) => receive(JSON.parse(ev.data));
}

setInterval(() => {
  if (!view.aggregating || view.count > 0) {
    view.aggregating = false;
    $("rate").textContent = `${view.count} msg/s`;
  }
  view.count = 0;
  if (!view.aggregating) view.homeRates = new Map(view.homeCount);
  view.homeCount.clear();
}, 1000);

// ---- play controls
$("pause").onclick = () => {
  view.paused = !view.paused;
  $("pause").textContent = view.paused ? "Resume" : "Pause";
  $("step").disabled = !view.paused;
  if (!view.paused) {
    const held = view.held.splice(0);
    held.forEach((e, i) => handle(e, i >= held.length - 10));
  }
};
$("slow").onclick = () => { view.slow = !view.slow; $("slow").setAttribute("aria-pressed", String(view.slow)); };
$("step").onclick = () => {
  while (view.held.length) { // up to and including the next message
    const e = view.held.shift();
    handle(e);
    if (e.type !== "msg") continue;
    while (view.held.length && view.held[0].type === "delivery" && view.held[0].seq === e.msg.seq) handle(view.held.shift());
    break;
  }
};
$("logfilter").oninput = () => {
  for (const li of $("loglist").children) li.hidden = !logShows(li.dataset.topic);
};

// ---- MQTT controls
async function post(path, body) {
  const st = $("control-status");
  try {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!r.ok) throw new Error((await r.text()).trim());
    st.className = "";
    st.textContent = body.topic ? `published ${body.payload} to ${body.topic}` : `unplugged ${body.client}`;
  } catch (err) {
    st.className = "error";
    st.textContent = String(err.message || err);
  }
}

function first(kind) {
  return [...view.devices.values()].find((d) => d.home === view.home && d.kind === kind);
}

function command(kind, suffix, payload) {
  const d = first(kind);
  if (!d) { $("control-status").textContent = `no ${kind} in home ${view.home}`; return; }
  post("api/publish", { topic: d.topic + suffix, payload: JSON.stringify(payload), qos: 1 });
}

$("phone-away").onclick = () => command("phone", "/set", { away: true });
$("phone-home").onclick = () => command("phone", "/set", { away: false });
$("set-heater").onclick = () => command("heater", "/setpoint", { celsius: Number($("setpoint").value) });
$("bulb").onclick = () => { const b = first("bulb"); command("bulb", "/set", { on: !(b && b.state === "on") }); };
$("unplug").onclick = () => { const c = $("unplug-who").value; if (c) post("api/unplug", { client: c }); };
$("unplug-who").onfocus = () => {
  const sel = $("unplug-who");
  sel.textContent = "";
  for (const c of view.clients.values()) {
    if (!c.connected) continue;
    const riders = [...view.devices.values()].filter((d) => d.client === c.id).map((d) => d.id);
    const o = document.createElement("option");
    o.value = c.id;
    o.textContent = riders.length ? `${riders.slice(0, 4).join(", ")}${riders.length > 4 ? "…" : ""} (${c.id})` : c.id;
    sel.appendChild(o);
  }
};

async function start() {
  try {
    const r = await fetch("api/me");
    view.me = await r.json();
  } catch { /* the stream still shows everything */ }
  $("controls").hidden = !view.me.controls;
  $("unplug").hidden = $("unplug-who").hidden = !view.me.unplug;
  $("who").textContent = view.me.user ? `${view.me.user} (${view.me.teacher ? "teacher" : "student"})` : "";
  $("unplug-who").onfocus();
  render();
  connect();
  requestAnimationFrame(frame(performance.now()));
}
start();
