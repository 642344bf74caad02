// Tollgate usage dashboard: fetches the analytics API of this admin server
// and draws the figures as plain DOM and inline SVG. No build step, no CDN.
"use strict";

const $ = (sel) => document.querySelector(sel);
const tokenKey = "tollgate-admin-token";

// The token may come in the URL fragment (#token=…), which is never sent to
// the server or written to its logs; it is then kept for this tab only.
function initToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(tokenKey, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("#token").value = sessionStorage.getItem(tokenKey) || "";
  // Filters may come in the query string, so a view can be linked.
  const q = new URLSearchParams(location.search);
  for (const f of ["period", "tenant", "app"]) {
    if (q.get(f)) $("#" + f).value = q.get(f);
  }
}

function params(extra) {
  const p = new URLSearchParams({ period: $("#period").value });
  for (const f of ["tenant", "app"]) {
    const v = $("#" + f).value.trim();
    if (v) p.set(f, v);
  }
  for (const [k, v] of Object.entries(extra)) p.set(k, v);
  return p;
}

async function api(path, extra) {
  const res = await fetch("../v1/analytics/" + path + "?" + params(extra), {
    headers: { Authorization: "Bearer " + $("#token").value },
  });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const msg = body && body.error ? body.error.message : res.status + " " + res.statusText;
    throw new Error(msg);
  }
  return body;
}

const fmtInt = (n) => n.toLocaleString("en-US");
const fmtMs = (n) => (Math.round(n * 10) / 10).toString();
const fmtPct = (r) => (Math.round(r * 1000) / 10).toString() + "%";

function set(key, text) {
  const el = document.querySelector('[data-k="' + key + '"]');
  el.textContent = text;
}

function cell(tr, text, cls) {
  const td = document.createElement(tr.parentElement && tr.parentElement.tagName === "THEAD" ? "th" : "td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function meter(tr, frac, err) {
  const td = cell(tr, "", "bar");
  const bar = document.createElement("div");
  bar.className = err ? "meter err" : "meter";
  bar.style.width = Math.max(0, Math.min(1, frac)) * 100 + "%";
  td.appendChild(bar);
}

function table(el, head, rows) {
  el.replaceChildren();
  const thead = el.createTHead();
  const htr = document.createElement("tr");
  thead.appendChild(htr);
  head.forEach((h) => cell(htr, h[0], h[1]));
  const tbody = el.createTBody();
  for (const r of rows) {
    const tr = document.createElement("tr");
    tbody.appendChild(tr);
    r(tr);
  }
}

function topTable(id, groups) {
  const top = groups.filter((g) => g.group !== "").slice(0, 10);
  const maxCost = Math.max(1, ...top.map((g) => g.cost_pico_usd));
  table($(id), [["name"], ["cost (USD)", "num"], ["requests", "num"], [""]], top.map((g) => (tr) => {
    tr.dataset.group = g.group;
    cell(tr, g.group);
    cell(tr, g.cost_usd, "num").dataset.k = "cost";
    cell(tr, fmtInt(g.requests), "num");
    meter(tr, g.cost_pico_usd / maxCost);
  }));
}

function providers(groups) {
  table($("#providers"), [["provider"], ["requests", "num"], ["error rate", "num"], [""], ["p50 ms", "num"], ["p95 ms", "num"], ["TTFB p50 ms", "num"]],
    groups.map((g) => (tr) => {
      tr.dataset.group = g.group;
      cell(tr, g.group || "(refused before routing)");
      cell(tr, fmtInt(g.requests), "num");
      cell(tr, fmtPct(g.error_rate), "num").dataset.k = "error-rate";
      meter(tr, g.error_rate, true);
      cell(tr, fmtMs(g.latency_ms.p50), "num").dataset.k = "p50";
      cell(tr, fmtMs(g.latency_ms.p95), "num").dataset.k = "p95";
      cell(tr, fmtMs(g.ttfb_ms.p50), "num");
    }));
}

// costChart draws one bar per bucket as inline SVG.
function costChart(series, bucket) {
  const ns = "http://www.w3.org/2000/svg";
  const W = 800, H = 220, pad = 40;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "cost per " + bucket);
  const max = Math.max(1, ...series.map((s) => s.cost_pico_usd));
  const n = Math.max(series.length, 1);
  const bw = (W - 2 * pad) / n;
  series.forEach((s, i) => {
    const h = (s.cost_pico_usd / max) * (H - 2 * pad);
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", pad + i * bw + bw * 0.1);
    r.setAttribute("y", H - pad - h);
    r.setAttribute("width", bw * 0.8);
    r.setAttribute("height", Math.max(h, 0.5));
    r.dataset.bucket = s.bucket;
    r.dataset.cost = s.cost_usd;
    const title = document.createElementNS(ns, "title");
    title.textContent = s.bucket + ": $" + s.cost_usd;
    r.appendChild(title);
    svg.appendChild(r);
  });
  const label = (x, y, text, anchor) => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", x);
    t.setAttribute("y", y);
    t.setAttribute("class", "axis");
    t.setAttribute("text-anchor", anchor);
    t.textContent = text;
    svg.appendChild(t);
  };
  label(pad - 4, pad, "$" + series.reduce((m, s) => (s.cost_pico_usd === max ? s.cost_usd : m), "0"), "end");
  if (series.length) {
    label(pad, H - pad + 16, series[0].bucket.replace("T", " ").replace(":00:00Z", "h"), "start");
    label(W - pad, H - pad + 16, series[series.length - 1].bucket.replace("T", " ").replace(":00:00Z", "h"), "end");
  }
  $("#cost-chart").replaceChildren(svg);
}

async function load() {
  const status = $("#status");
  status.className = "";
  status.textContent = "Loading…";
  sessionStorage.setItem(tokenKey, $("#token").value);
  const bucket = ["24h", "7d"].includes($("#period").value) ? "hour" : "day";
  try {
    const [total, byModel, byApp, byKey, byProvider, series] = await Promise.all([
      api("summary", {}),
      api("summary", { group_by: "model" }),
      api("summary", { group_by: "app" }),
      api("summary", { group_by: "key" }),
      api("summary", { group_by: "provider" }),
      api("timeseries", { bucket }),
    ]);
    const t = total.groups[0];
    if (t) {
      set("requests", fmtInt(t.requests));
      set("cost", t.cost_usd);
      set("error-rate", fmtPct(t.error_rate));
      set("latency", [t.latency_ms.avg, t.latency_ms.p50, t.latency_ms.p95].map(fmtMs).join(" / "));
      set("ttfb", [t.ttfb_ms.p50, t.ttfb_ms.p95].map(fmtMs).join(" / "));
      set("cache-hit", t.cache_hit_rate === null ? "n/a" : fmtPct(t.cache_hit_rate));
    } else {
      ["requests", "cost", "error-rate", "latency", "ttfb", "cache-hit"].forEach((k) => set(k, "–"));
    }
    topTable("#top-model", byModel.groups);
    topTable("#top-app", byApp.groups);
    topTable("#top-key", byKey.groups);
    providers(byProvider.groups);
    costChart(series.groups, bucket);
    status.textContent = "From " + total.from + " to " + total.to + (total.tenant ? ", tenant " + total.tenant : "") + (total.app ? ", app " + total.app : "");
    document.body.dataset.loaded = "true";
  } catch (e) {
    status.className = "error";
    status.textContent = e.message;
    document.body.dataset.loaded = "error";
  }
}

$("#filters").addEventListener("submit", (ev) => {
  ev.preventDefault();
  load();
});
initToken();
load();
