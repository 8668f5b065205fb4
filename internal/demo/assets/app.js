// The Causeway demo dashboard. It holds no logic of its own: it shows the
// state the demo pushes (/api/stream, server-sent events) and sends every
// control and client operation to /api/do as an action. The only state it
// keeps is each client panel's session: its name and causal token.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, text) => {
  const e = document.createElementNS(tag === "svg" || attrs.svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs)) if (k !== "svg") e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};
const setText = (e, t) => { if (e.textContent !== t) e.textContent = t; };
const setClass = (e, c) => { if (e.className !== c) e.className = c; };

let regions = [];           // names, in configuration order
let built = false;
let lastState = null;
let lastUpdate = 0;
const sessions = {};        // region -> {name, token, vector}
const panels = {};          // region -> element

function newSession(region) {
  const id = Math.random().toString(36).slice(2, 6);
  sessions[region] = { name: `web-${region}-${id}`, token: "", vector: {} };
}

function fmtVector(v) {
  const keys = Object.keys(v || {}).sort();
  if (keys.length === 0) return "nothing yet";
  return keys.map(k => `${k} ${v[k]}`).join(" · ");
}
function fmtBytes(n) {
  n = Number(n || 0);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
function fmtDur(s) { // "1.2s", "40ms" from Go's Duration text
  return s === "0s" ? "0" : s;
}

async function act(action) {
  const res = await fetch("api/do", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(action) });
  let body;
  try { body = await res.json(); } catch (e) { body = { error: `${res.status} ${res.statusText}` }; }
  if (body.error) { showError(body.error); throw new Error(body.error); }
  return body.result;
}
let errTimer;
function showError(text) {
  const e = $("#action-error");
  e.textContent = text;
  e.classList.add("show");
  clearTimeout(errTimer);
  errTimer = setTimeout(() => e.classList.remove("show"), 6000);
}

// ---- building the page once ----

function build(state) {
  regions = state.regions.map(r => r.name);
  for (const r of regions) newSession(r);
  // presets
  const iso = $("#preset-isolate");
  for (const r of regions) {
    const b = el("button", { id: `isolate-${r}`, class: "fault", title: `Cut ${r} off from every other region` }, `Isolate ${r}`);
    b.onclick = () => act({ op: "isolate", region: r });
    iso.appendChild(b);
  }
  if (regions.length >= 3) {
    const a = regions.slice(0, -1), b = regions.slice(-1);
    const sb = el("button", { id: "split-2-1", class: "fault", title: "Cut between the two sides" }, `Split ${a.join(" + ")} | ${b.join("")}`);
    sb.onclick = () => act({ op: "split", groups: [a, b] });
    $("#preset-split").appendChild(sb);
  }
  $("#report-close").onclick = () => $("#report-dialog").close();
  $("#btn-heal-all").onclick = () => act({ op: "heal-all" });
  $("#btn-story-photo-acl").onclick = () => fetch("api/scenario?name=photo-acl", { method: "POST" }).then(r => r.json()).then(b => b.error && showError(b.error));
  $("#btn-story-partition").onclick = () => fetch("api/scenario?name=partition", { method: "POST" }).then(r => r.json()).then(b => b.error && showError(b.error));
  $("#replay-file").onchange = async ev => {
    const f = ev.target.files[0];
    if (!f) return;
    const r = await fetch("api/scenario", { method: "POST", body: await f.text() }).then(r => r.json());
    if (r.error) showError(r.error);
    ev.target.value = "";
  };
  $("#btn-report").onclick = async () => {
    $("#btn-report").disabled = true;
    try {
      const r = await fetch("api/report", { method: "POST" }).then(r => r.json());
      if (r.error) showError(r.error);
      else { $("#report-dialog pre").textContent = r.result.text; $("#report-dialog").showModal(); }
    } finally { $("#btn-report").disabled = false; }
  };
  // link controls
  const la = $("#link-a"), lb = $("#link-b");
  regions.forEach((r, i) => { la.appendChild(el("option", { value: r }, r)); lb.appendChild(el("option", { value: r }, r)); });
  if (regions.length > 1) lb.value = regions[regions.length - 1];
  $("#btn-cut").onclick = () => act({ op: "cut", region: la.value, peer: lb.value, dir: $("#link-dir").value });
  $("#btn-heal").onclick = () => act({ op: "heal", region: la.value, peer: lb.value });
  $("#btn-delay").onclick = () => act({ op: "delay", region: la.value, peer: lb.value,
    delay: `${Number($("#link-delay").value) || 0}ms`, jitter: `${Number($("#link-jitter").value) || 0}ms` });
  // CAP table
  const tb = $("#cap tbody");
  for (const r of regions) {
    const tr = el("tr", { id: `cap-${r}` });
    tr.appendChild(el("td", {}, r));
    tr.appendChild(el("td", { class: "capproc" }));
    const c = el("td"); c.appendChild(el("span", { class: "cell capcausal" })); tr.appendChild(c);
    const l = el("td"); l.appendChild(el("span", { class: "cell caplinear" })); tr.appendChild(l);
    tb.appendChild(tr);
  }
  buildMap(state);
  // region cards
  const tpl = $("#region-tpl");
  for (const r of regions) {
    const card = tpl.content.firstElementChild.cloneNode(true);
    card.id = `region-${r}`;
    setText($(".rname", card), r);
    setText($(".rname2", card), r);
    const q = c => $("." + c, card);
    // stable ids for tests and scripts
    for (const c of ["kill", "restart", "pause", "resume", "put", "get", "del", "claim", "lookup", "key", "value", "claimname", "result", "vector", "svector", "move", "moveto", "linserve", "skewsel", "skewbtn"]) q(c).id = `${c}-${r}`;
    q("kill").onclick = () => act({ op: "kill", region: r });
    q("restart").onclick = () => act({ op: "restart", region: r });
    q("pause").onclick = () => act({ op: "pause", region: r });
    q("resume").onclick = () => act({ op: "resume", region: r });
    q("skewbtn").onclick = () => act({ op: "skew", region: r, delay: q("skewsel").value });
    for (const o of regions) if (o !== r) q("moveto").appendChild(el("option", { value: o }, o));
    q("put").onclick = () => client(r, { op: "put", key: q("key").value, value: q("value").value });
    q("get").onclick = () => client(r, { op: "get", key: q("key").value });
    q("del").onclick = () => client(r, { op: "del", key: q("key").value });
    q("claim").onclick = () => client(r, { op: "claim", key: `users/${q("claimname").value}`, owner: sessions[r].name });
    q("lookup").onclick = () => client(r, { op: "lookup", key: `users/${q("claimname").value}` });
    q("move").onclick = () => {
      const to = q("moveto").value;
      sessions[to] = sessions[r];
      newSession(r);
      showSession(r); showSession(to);
      showResult(r, true, `Session handed to ${to}; this panel starts a new one.`);
      showResult(to, true, `Session ${sessions[to].name} arrived from ${r}, with its causal past ${fmtVector(sessions[to].vector)}. Read something: ${to} answers only once it has that past.`);
    };
    $("#regions").appendChild(card);
    panels[r] = card;
    showSession(r);
  }
  built = true;
}

function showSession(r) {
  const s = sessions[r], card = panels[r];
  setText($(".sname", card), s.name);
  setText($(".svector", card), fmtVector(s.vector));
}
function showResult(r, ok, text) {
  const box = $(".result", panels[r]);
  setClass(box, "result " + (ok ? "ok" : "bad"));
  box.textContent = text;
}

const busy = {};
async function client(region, action) {
  if (busy[region]) return; // one operation at a time per session
  busy[region] = true;
  const s = sessions[region];
  showResult(region, true, `${action.op}… (waits up to the request deadline if ${region} lacks your session's causal past)`);
  try {
    const res = await act(Object.assign({ region, session: s.name, token: s.token }, action));
    if (res.token) { s.token = res.token; s.vector = res.vector || {}; }
    showSession(region);
    let text = res.ok ? res.text : `${res.code}: ${res.error}`;
    if (res.version) text += ` · version ${res.version.origin}/${res.version.seq}`;
    text += ` · ${res.took}`;
    showResult(region, res.ok, text);
  } catch (e) {
    showResult(region, false, e.message);
  } finally { busy[region] = false; }
}

// ---- the map ----

const pos = {};
function buildMap(state) {
  const svg = $("#map");
  const n = regions.length, cx = 268, cy = 165;
  regions.forEach((r, i) => {
    // Three regions: a wide triangle, the first top left, the second top
    // right, the third at the bottom; more go round an ellipse.
    const a = n === 3 ? [-150, -30, 90][i] * Math.PI / 180 : -Math.PI / 2 + (2 * Math.PI * i) / n;
    pos[r] = { x: cx + 205 * Math.cos(a), y: cy + 120 * Math.sin(a) + (n === 3 ? 5 : 0) };
  });
  const defs = el("defs", { svg: 1 });
  for (const [id, color] of [["arrow", "#5b6475"], ["arrowcut", "#b42318"]]) {
    const m = el("marker", { svg: 1, id, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
    m.appendChild(el("path", { svg: 1, d: "M 0 0 L 10 5 L 0 10 z", fill: color }));
    defs.appendChild(m);
  }
  svg.appendChild(defs);
  for (const l of state.links) {
    const a = pos[l.from], b = pos[l.to];
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy);
    const ux = dx / len, uy = dy / len, nx = -uy * 7, ny = ux * 7; // offset to the right of the direction
    const x1 = a.x + ux * 54 + nx, y1 = a.y + uy * 54 + ny, x2 = b.x - ux * 54 + nx, y2 = b.y - uy * 54 + ny;
    const id = `link-${l.from}-${l.to}`;
    svg.appendChild(el("line", { svg: 1, id, x1, y1, x2, y2, stroke: "#5b6475", "stroke-width": 2, "marker-end": "url(#arrow)" }));
    const mx = (x1 + x2) / 2 + nx * 2.2, my = (y1 + y2) / 2 + ny * 2.2 + 4;
    svg.appendChild(el("text", { svg: 1, id: id + "-label", x: mx, y: my, "text-anchor": "middle", class: "lbl" }));
  }
  for (const r of regions) {
    const g = el("g", { svg: 1, id: `node-${r}` });
    g.appendChild(el("circle", { svg: 1, cx: pos[r].x, cy: pos[r].y, r: 52, class: "rcircle", fill: "#e3f4e8", stroke: "#17803d" }));
    g.appendChild(el("text", { svg: 1, x: pos[r].x, y: pos[r].y - 4, "text-anchor": "middle", "font-weight": "600" }, r));
    g.appendChild(el("text", { svg: 1, x: pos[r].x, y: pos[r].y + 12, "text-anchor": "middle", class: "lbl nodestate" }));
    $("#map").appendChild(g);
  }
}

function updateMap(state) {
  for (const l of state.links) {
    const id = `link-${l.from}-${l.to}`;
    const line = document.getElementById(id), label = document.getElementById(id + "-label");
    if (!line) continue;
    line.setAttribute("stroke", l.cut ? "#b42318" : "#5b6475");
    line.setAttribute("stroke-dasharray", l.cut ? "6 5" : "");
    line.setAttribute("marker-end", l.cut ? "url(#arrowcut)" : "url(#arrow)");
    let t = l.cut ? `✂ cut · ${fmtBytes(l.dropped)} lost` : `${fmtDur(l.delay)}${l.jitter !== "0s" ? "±" + l.jitter : ""} · ${fmtBytes(l.bytes)}`;
    setText(label, t);
    label.setAttribute("fill", l.cut ? "#b42318" : "#3b4352");
  }
  for (const r of state.regions) {
    const g = document.getElementById(`node-${r.name}`);
    const c = $("circle", g);
    const colors = { running: ["#e3f4e8", "#17803d"], paused: ["#fff1db", "#a15c00"], down: ["#fde8e6", "#b42318"] }[r.process] || ["#eee", "#888"];
    c.setAttribute("fill", colors[0]); c.setAttribute("stroke", colors[1]);
    const st = r.status;
    let sub = r.process;
    if (r.process === "running" && st) {
      const n = Object.values(st.vector || {}).reduce((a, b) => a + Number(b), 0);
      sub = `${n} write${n === 1 ? "" : "s"} applied`;
    }
    setText($(".nodestate", g), sub);
  }
}

// ---- updating from the state ----

function update(state) {
  if (!built) build(state);
  lastState = state;
  lastUpdate = Date.now();
  updateMap(state);
  for (const r of state.regions) updateRegion(r);
  updateTimeline(state.events);
}

function updateRegion(r) {
  const card = panels[r.name];
  const q = c => $("." + c, card);
  const st = r.status;
  const proc = q("proc");
  setClass(proc, "badge proc " + r.process);
  setText(proc, { running: "running", paused: "paused", down: "killed" }[r.process] || r.process);
  setText(q("skew"), r.skew !== "0s" ? `clock skewed ${r.skew}` : "");
  q("kill").disabled = r.process === "down";
  q("pause").disabled = r.process !== "running";
  q("resume").disabled = r.process !== "paused";
  setClass($(".facts", card), "facts" + (r.stale ? " stale" : ""));
  // CAP row
  const row = document.getElementById(`cap-${r.name}`);
  setText($(".capproc", row), { running: "running", paused: "paused", down: "killed" }[r.process] || r.process);
  const cc = $(".capcausal", row), cl = $(".caplinear", row);
  setClass(cc, "cell capcausal " + (r.causal.serves ? "yes" : "no"));
  setText(cc, (r.causal.serves ? "✔ " : "✘ ") + r.causal.text);
  setClass(cl, "cell caplinear " + (r.linear.serves ? "yes" : "no"));
  setText(cl, (r.linear.serves ? "✔ " : "✘ ") + r.linear.text);
  if (!st) {
    setText(q("vector"), r.status_error || "no status yet");
    return;
  }
  setText(q("vector"), fmtVector(st.vector));
  const pend = Number(st.pendingWrites || 0);
  const waitsOn = (r.lag || []).filter(l => l.writes > 0).map(l => l.origin);
  setText(q("pending"), pend === 0 ? "none" : `${pend} write${pend > 1 ? "s" : ""}${waitsOn.length ? ", missing writes of " + waitsOn.join(", ") : ""}`);
  setText(q("lag"), (r.lag || []).map(l => {
    let s = `${l.origin}: ${l.writes} write${l.writes === 1 ? "" : "s"} behind`;
    if (l.writes > 0) s += ` for ${l.behind_for}`;
    if (l.visibility !== "0s") s += ` (last seen after ${l.visibility})`;
    return s;
  }).join(" · ") || "—");
  const gossip = q("gossip");
  const members = (st.members || []).filter(m => m.region !== r.name);
  const gtext = members.map(m => `${m.region} ${m.state}`).join("|");
  if (gossip.dataset.v !== gtext) {
    gossip.dataset.v = gtext;
    gossip.replaceChildren(...members.map(m => el("span", { class: "tag " + m.state }, `${m.region}: ${m.state}`)));
    if (members.length === 0) gossip.textContent = "—";
  }
  const lin = st.linear || {};
  if (!lin.enabled) {
    setText(q("raft"), "off");
  } else {
    setText(q("raft"), `role ${lin.state || (lin.voter ? "?" : "forwarder")} · term ${lin.term || 0} · leader ${lin.leaderRegion || "none"} · voters reachable ${lin.reachableVoters || 0} of ${(lin.voters || []).length} (quorum ${lin.quorum || 0})`);
  }
  setText(q("linserve"), r.linear.serves ? "serves here" : r.linear.text);
  setClass(q("linserve"), "linserve " + (r.linear.serves ? "" : "refuse"));
  setText(q("causal"), r.causal.text);
}

let lastEventSeq = 0;
function updateTimeline(events) {
  const ol = $("#timeline");
  const atBottom = ol.scrollTop + ol.clientHeight >= ol.scrollHeight - 4;
  for (const e of events) {
    if (e.seq <= lastEventSeq) continue;
    lastEventSeq = e.seq;
    const li = el("li", { class: e.kind, title: e.text });
    li.appendChild(el("span", { class: "t" }, new Date(e.time).toLocaleTimeString()));
    li.appendChild(document.createTextNode(e.text));
    ol.appendChild(li);
    while (ol.children.length > 200) ol.removeChild(ol.firstChild);
  }
  if (atBottom) ol.scrollTop = ol.scrollHeight;
}

// ---- the live stream ----

function connect() {
  const es = new EventSource("api/stream");
  es.addEventListener("state", ev => {
    $("#live-dot").className = "dot on";
    update(JSON.parse(ev.data));
  });
  es.onerror = () => {
    $("#live-dot").className = "dot off";
    setText($("#live-text"), "disconnected: is causeway demo still running?");
  };
}
setInterval(() => {
  if (!lastUpdate) return;
  const age = (Date.now() - lastUpdate) / 1000;
  if ($("#live-dot").className === "dot off") return;
  setText($("#live-text"), age < 1 ? "live · updated just now" : `live · updated ${age.toFixed(0)}s ago`);
}, 250);
connect();
