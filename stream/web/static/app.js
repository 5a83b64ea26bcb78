// interest-tracker dashboard: plain SVG, no library. Data: GET users/{id}/interest,
// GET population, live updates from the server-sent events of GET stream[?user=ID].
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  // Okabe-Ito: distinguishable with every common colour-vision deficiency.
  const OKABE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
  const GREY = "#BBBBBB", SHORT = "#E69F00", LONG = "#0072B2", DRIFT = "#D55E00";
  const BLUES = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
  const TOP = 10, SLICES = 8, HEAT_ROWS = 12, HISTORY = 40, OTHER = "_other";
  const $ = (id) => document.getElementById(id);
  const state = { user: null, snap: null, history: [], source: "", es: null, pop: null };

  function node(tag, attrs, parent, text) {
    const n = document.createElementNS(NS, tag);
    for (const k in attrs) n.setAttribute(k, attrs[k]);
    if (text !== undefined) n.textContent = text;
    if (parent) parent.appendChild(n);
    return n;
  }
  function el(tag, parent, text, attrs) {
    const n = document.createElement(tag);
    if (text !== undefined) n.textContent = text;
    for (const k in attrs || {}) n.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(n);
    return n;
  }
  // Charts are laid out in the container's own pixels, so labels keep their size.
  const widthOf = (id, min) => Math.max(min || 300, $(id).clientWidth || 480);
  function canvas(id, w, h, label) {
    const box = $(id);
    box.textContent = "";
    return node("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img", "aria-label": label }, box);
  }
  function note(id, text) {
    $(id).textContent = "";
    el("p", $(id), text, { class: "note" });
  }
  const name = (c) => (c === OTHER ? "other" : c);
  const pct = (p) => (100 * p).toFixed(p >= 0.095 || p === 0 ? 0 : 1) + "%";
  const cut = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);
  const when = (ts) => (ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) : "–");
  function titled(n, text) { node("title", {}, n, text); return n; }
  function describe(entries) { return entries.map(([c, p]) => `${name(c)} ${pct(p)}`).join(", "); }

  // The k most probable categories, then "other" holding the rest (and _other).
  function topEntries(dist, k) {
    dist = dist || {};
    const cats = Object.keys(dist).filter((c) => c !== OTHER)
      .sort((a, b) => dist[b] - dist[a] || (a < b ? -1 : 1));
    const out = cats.slice(0, k).map((c) => [c, dist[c]]);
    const rest = cats.slice(k).reduce((s, c) => s + dist[c], dist[OTHER] || 0);
    if (rest > 1e-6) out.push([OTHER, rest]);
    return out;
  }

  // -- charts ----------------------------------------------------------------------------------
  function bars(id, entries, label) {
    if (!entries.length) return note(id, "No data yet.");
    const rowH = 24, w = widthOf(id), lw = Math.min(150, w * 0.4), bw = w - lw - 52;
    const svg = canvas(id, w, entries.length * rowH + 6, `${label}: ${describe(entries)}`);
    const max = Math.max(...entries.map((e) => e[1]), 1e-9);
    entries.forEach(([c, p], i) => {
      const y = 3 + i * rowH, len = Math.max(1, (bw * p) / max);
      titled(node("text", { x: lw - 6, y: y + 16, "text-anchor": "end", class: "lbl" }, svg, cut(name(c), 22)), name(c));
      titled(node("rect", { x: lw, y: y + 3, width: len, height: rowH - 7, rx: 2, fill: c === OTHER ? GREY : OKABE[0] }, svg), `${name(c)}: ${pct(p)}`);
      node("text", { x: lw + len + 4, y: y + 16, class: "val" }, svg, pct(p));
    });
  }

  function pairedBars(id, short, long) {
    const s = short || {}, l = long || {};
    const score = (c) => (s[c] || 0) + (l[c] || 0);
    const cats = [...new Set([...Object.keys(s), ...Object.keys(l)])].filter((c) => c !== OTHER)
      .sort((a, b) => score(b) - score(a)).slice(0, 8);
    if (!cats.length) return note(id, "No data yet.");
    const rowH = 30, w = widthOf(id), lw = Math.min(150, w * 0.4), bw = w - lw - 52, top = 22;
    const svg = canvas(id, w, top + cats.length * rowH, "Short-term vs long-term: " +
      cats.map((c) => `${name(c)} ${pct(s[c] || 0)} vs ${pct(l[c] || 0)}`).join(", "));
    [[SHORT, "short-term"], [LONG, "long-term"]].forEach(([col, t], i) => {
      node("rect", { x: lw + i * 120, y: 4, width: 12, height: 12, fill: col }, svg);
      node("text", { x: lw + i * 120 + 17, y: 14 }, svg, t);
    });
    const max = Math.max(...cats.map((c) => Math.max(s[c] || 0, l[c] || 0)), 1e-9);
    cats.forEach((c, i) => {
      const y = top + i * rowH;
      titled(node("text", { x: lw - 6, y: y + 18, "text-anchor": "end" }, svg, cut(name(c), 22)), name(c));
      [[s[c] || 0, SHORT, "short-term"], [l[c] || 0, LONG, "long-term"]].forEach(([p, col, t], j) => {
        const len = Math.max(1, (bw * p) / max), yy = y + 3 + j * 12;
        titled(node("rect", { x: lw, y: yy, width: len, height: 10, fill: col }, svg), `${name(c)} ${t}: ${pct(p)}`);
        node("text", { x: lw + len + 4, y: yy + 9, class: "val" }, svg, pct(p));
      });
    });
  }

  function radar(id, entries) {
    const cats = entries.filter((e) => e[0] !== OTHER).slice(0, TOP);
    if (cats.length < 3) return note(id, `A radar needs 3 or more categories (this user has ${cats.length}); see the bars.`);
    const w = widthOf(id), r = Math.max(60, Math.min(115, w / 2 - 85)), h = 2 * r + 64, cx = w / 2, cy = h / 2, n = cats.length;
    const max = Math.max(...cats.map((e) => e[1]), 1e-9);
    const svg = canvas(id, w, h, `Radar, scaled to the largest (${pct(max)}): ${describe(cats)}`);
    const at = (i, f) => [cx + f * r * Math.sin((2 * Math.PI * i) / n), cy - f * r * Math.cos((2 * Math.PI * i) / n)];
    [0.25, 0.5, 0.75, 1].forEach((f) => node("polygon", {
      points: cats.map((_, i) => at(i, f).join(",")).join(" "), fill: "none", stroke: "#d0d0cc",
    }, svg));
    node("text", { x: 4, y: h - 6, class: "axis" }, svg, `outer ring = ${pct(max)}`);
    cats.forEach(([c], i) => {
      const [x, y] = at(i, 1), [lx, ly] = at(i, 1.13);
      node("line", { x1: cx, y1: cy, x2: x, y2: y, stroke: "#d0d0cc" }, svg);
      const anchor = Math.abs(lx - cx) < 8 ? "middle" : lx > cx ? "start" : "end";
      titled(node("text", { x: lx, y: ly + 4, "text-anchor": anchor }, svg, cut(name(c), 13)), name(c));
    });
    node("polygon", {
      points: cats.map(([, p], i) => at(i, p / max).join(",")).join(" "),
      fill: "#0072B2", "fill-opacity": 0.25, stroke: "#0072B2", "stroke-width": 2,
    }, svg);
    cats.forEach(([c, p], i) => titled(node("circle", { cx: at(i, p / max)[0], cy: at(i, p / max)[1], r: 3.5, fill: "#0072B2" }, svg), `${name(c)}: ${pct(p)}`));
  }

  function donut(id, legendId, entries) {
    const legend = $(legendId);
    legend.textContent = "";
    if (!entries.length) return note(id, "No population data yet.");
    const w = 300, c = 150, R = 130, r = 78;
    const svg = canvas(id, w, w, `Population interest: ${describe(entries)}`);
    svg.setAttribute("class", "donut");
    const total = entries.reduce((s, e) => s + e[1], 0) || 1;
    let a = 0;
    const pt = (rad, ang) => `${(c + rad * Math.sin(ang)).toFixed(2)},${(c - rad * Math.cos(ang)).toFixed(2)}`;
    entries.forEach(([cat, p], i) => {
      const col = cat === OTHER ? GREY : OKABE[i % OKABE.length];
      const b = a + Math.min((2 * Math.PI * p) / total, 2 * Math.PI - 1e-4), big = b - a > Math.PI ? 1 : 0;
      const d = `M${pt(R, a)}A${R},${R} 0 ${big} 1 ${pt(R, b)}L${pt(r, b)}A${r},${r} 0 ${big} 0 ${pt(r, a)}Z`;
      titled(node("path", { d, fill: col, stroke: "#fff", "stroke-width": 1.5, class: "slice" }, svg), `${name(cat)}: ${pct(p)}`);
      const li = el("li", legend);
      el("span", li, undefined, { class: "sw", style: `background:${col}` });
      li.appendChild(document.createTextNode(`${name(cat)} — ${pct(p)}`));
      a = b;
    });
    const top = entries[0];
    node("text", { x: c, y: c - 4, "text-anchor": "middle", "font-weight": 600 }, svg, cut(name(top[0]), 14));
    node("text", { x: c, y: c + 14, "text-anchor": "middle", class: "val" }, svg, `top: ${pct(top[1])}`);
  }

  function shade(p) {
    const x = Math.max(0, Math.min(1, p)) * (BLUES.length - 1), i = Math.min(Math.floor(x), BLUES.length - 2), f = x - i;
    return "rgb(" + BLUES[i].map((v, k) => Math.round(v + f * (BLUES[i + 1][k] - v))).join(",") + ")";
  }

  function heatmap(id, history) {
    const hist = history.slice(-HISTORY);
    if (!hist.length) return note(id, "No snapshots yet.");
    const mean = {};
    hist.forEach((h) => { for (const c in h.distribution) if (c !== OTHER) mean[c] = (mean[c] || 0) + h.distribution[c] / hist.length; });
    const rows = Object.keys(mean).sort((a, b) => mean[b] - mean[a]).slice(0, HEAT_ROWS);
    rows.push(OTHER);
    const lw = 150, cw = Math.max(6, Math.min(56, (widthOf(id, 400) - lw - 8) / hist.length)), ch = 20, top = 16;
    const w = Math.max(320, lw + cw * hist.length + 8), h = top + ch * rows.length + 34;
    const svg = canvas(id, w, h, `Heatmap of ${rows.length - 1} categories over the last ${hist.length} snapshots`);
    rows.forEach((c, j) => {
      const y = top + j * ch;
      titled(node("text", { x: lw - 6, y: y + 14, "text-anchor": "end" }, svg, cut(name(c), 22)), name(c));
      hist.forEach((s, i) => {
        const d = s.distribution || {};
        const p = c === OTHER ? Math.max(0, 1 - rows.slice(0, -1).reduce((t, k) => t + (d[k] || 0), 0)) : d[c] || 0;
        titled(node("rect", { x: lw + i * cw, y, width: cw - 1, height: ch - 1, fill: shade(p) }, svg), `${name(c)}, version ${s.version}: ${pct(p)}`);
      });
    });
    hist.forEach((s, i) => {
      if (!s.drift) return;
      const x = lw + i * cw + cw / 2;
      titled(node("path", { d: `M${x - 5},2L${x + 5},2L${x},${top - 2}Z`, fill: DRIFT, class: "drift-mark" }, svg), `interest shift at version ${s.version}`);
      node("line", { x1: x, y1: top, x2: x, y2: top + ch * rows.length, stroke: DRIFT, "stroke-dasharray": "3 2" }, svg);
    });
    const yb = top + ch * rows.length + 14;
    const every = Math.ceil(hist.length / Math.max(1, Math.floor((cw * hist.length) / 44)));
    hist.forEach((s, i) => {
      if ((hist.length - 1 - i) % every === 0) node("text", { x: lw + i * cw + cw / 2, y: yb, "text-anchor": "middle", class: "axis" }, svg, `v${s.version}`);
    });
    [0, 0.5, 1].forEach((p, i) => node("rect", { x: 4 + i * 30, y: yb + 6, width: 28, height: 10, fill: shade(p), stroke: "#0002" }, svg));
    node("text", { x: 98, y: yb + 15, class: "axis" }, svg, "0% → 50% → 100%");
  }

  // -- views -----------------------------------------------------------------------------------
  function setStatus(text, kind) {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + (kind || "");
  }

  function renderUser() {
    const s = state.snap;
    $("user-id").textContent = state.user;
    $("user-missing").hidden = !!s;
    if (!s) {
      ["user-top", "user-version", "user-entropy", "user-drift", "user-ts"].forEach((k) => ($(k).textContent = "–"));
      ["bar-chart", "radar-chart", "horizons-chart", "heatmap"].forEach((k) => ($(k).textContent = ""));
      $("explain").tBodies[0].textContent = "";
      return;
    }
    const entries = topEntries(s.distribution, TOP);
    const best = entries.find((e) => e[0] !== OTHER);
    $("user-top").textContent = best ? best[0] : "–";
    $("user-top-p").textContent = best ? `(${pct(best[1])})` : "";
    $("user-version").textContent = `${s.version} (${s.n_events})`;
    $("user-entropy").textContent = (s.entropy || 0).toFixed(2);
    $("user-drift").textContent = s.drift ? "▼ detected" : "none";
    $("user-drift").className = s.drift ? "drift" : "stable";
    $("user-ts").textContent = when(s.ts);
    $("user-source").textContent = state.source ? `(${state.source})` : "";
    bars("bar-chart", entries, "Current distribution");
    radar("radar-chart", entries);
    pairedBars("horizons-chart", s.short_term, s.long_term);
    heatmap("heatmap", state.history);
    const body = $("explain").tBodies[0];
    body.textContent = "";
    (s.explain || []).forEach((e) => {
      const tr = el("tr", body);
      [e.item_id, (e.categories || []).join(", "), e.event_type, when(e.ts), (e.moved || 0).toFixed(3)].forEach((v) => el("td", tr, String(v)));
    });
    if (!(s.explain || []).length) el("td", el("tr", body), "No events recorded.", { colspan: 5 });
  }

  function onSnapshot(s) {
    if (!s || s.user_id !== state.user) return;
    if (state.snap && s.version < state.snap.version) return;
    const h = state.history, entry = { version: s.version, ts: s.ts, emitted_at: s.emitted_at, distribution: s.distribution, drift: !!s.drift };
    if (h.length && h[h.length - 1].version === s.version) h[h.length - 1] = entry;
    else h.push(entry);
    while (h.length > HISTORY) h.shift();
    state.snap = s;
    state.source = "live";
    renderUser();
  }

  function renderPopulation(p) {
    state.pop = p;
    if ($("view-population").hidden) return;
    $("kpi-events").textContent = p.events_per_s.toFixed(p.events_per_s < 10 ? 1 : 0);
    $("kpi-snapshots").textContent = p.snapshots_per_s.toFixed(p.snapshots_per_s < 10 ? 1 : 0);
    $("kpi-active").textContent = p.active_users;
    $("kpi-users").textContent = p.table_users;
    $("kpi-dlq").textContent = p.dlq;
    $("kpi-dlq").title = Object.entries(p.dlq_by_reason || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
    $("pop-source").textContent = p.source === "none" ? "" : `(${p.source === "table" ? "partitions " + p.partitions.join(", ") + " of this worker" : "all workers"})`;
    donut("donut", "donut-legend", topEntries(p.distribution, SLICES));
    const body = $("changed").tBodies[0];
    body.textContent = "";
    (p.most_changed || []).forEach((row) => {
      const tr = el("tr", body);
      el("a", el("td", tr), row.user_id, { href: "#/user/" + encodeURIComponent(row.user_id), class: "user-link" });
      el("td", tr, row.moved.toFixed(3));
      el("td", tr, String(row.snapshots));
      el("td", tr, row.top || "–");
    });
    $("changed-empty").hidden = (p.most_changed || []).length > 0;
  }

  // -- data ------------------------------------------------------------------------------------
  function getJSON(path) {
    return fetch(path, { headers: { Accept: "application/json" } }).then((r) => {
      if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
      return r.json();
    });
  }

  function connect(user) {
    if (state.es) state.es.close();
    const es = new EventSource("stream" + (user ? "?user=" + encodeURIComponent(user) : ""));
    state.es = es;
    es.onopen = () => setStatus("live", "ok");
    es.onerror = () => setStatus("reconnecting…", "bad");
    es.addEventListener("population", (e) => renderPopulation(JSON.parse(e.data)));
    es.addEventListener("snapshot", (e) => onSnapshot(JSON.parse(e.data)));
  }

  function show(view) {
    $("view-user").hidden = view !== "user";
    $("view-population").hidden = view !== "population";
  }

  function showUser(uid) {
    show("user");
    state.user = uid;
    state.snap = null;
    state.history = [];
    state.source = "";
    $("search-user").value = uid;
    document.title = `${uid} · interest-tracker`;
    renderUser();
    connect(uid);
    getJSON("users/" + encodeURIComponent(uid) + "/interest?optional=1").then((d) => {
      if (state.user !== uid || !d.found) return;
      if (state.snap && d.snapshot.version < state.snap.version) return;
      const newer = state.history.filter((h) => h.version > d.snapshot.version);
      state.history = d.history.concat(newer).slice(-HISTORY);
      state.snap = d.snapshot;
      state.source = d.source;
      renderUser();
    }).catch((err) => setStatus(err.message, "bad"));
  }

  function showPopulation() {
    show("population");
    state.user = null;
    document.title = "interest-tracker";
    if (state.pop) renderPopulation(state.pop);
    connect(null);
    getJSON("population").then(renderPopulation).catch((err) => setStatus(err.message, "bad"));
  }

  function route() {
    const m = location.hash.match(/^#\/user\/(.+)$/);
    if (m) showUser(decodeURIComponent(m[1]));
    else showPopulation();
  }

  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    const uid = $("search-user").value.trim();
    if (uid) location.hash = "#/user/" + encodeURIComponent(uid);
  });
  window.addEventListener("hashchange", route);
  let resizing = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => (state.user ? renderUser() : state.pop && renderPopulation(state.pop)), 200);
  });
  route();
})();
