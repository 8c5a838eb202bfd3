// History charts: per-minute done / failed / dead counts drawn as stacked SVG bars by this file.
// Our own few lines instead of a chart library: no dependency, nothing from a CDN, and SVG
// built with createElementNS passes the CSP (no inline style, no HTML strings).
import { $, api, app, enc, h, num, parallel, s } from "./dom.js";

const RANGE_KEY = "gotaskq.historyRange";
export const RANGES = { "1h": { minutes: 60, bucket: 1, label: "1 h" }, "24h": { minutes: 1440, bucket: 10, label: "24 h" } };
const SERIES = [["done", "done"], ["failed", "failed (will retry)"], ["dead", "dead"]];
const MAX_AGE_MS = { 60: 10000, 1440: 60000 };
const HEIGHT = 190;
const PAD = { left: 52, right: 8, top: 10, bottom: 22 };

export function currentRange() {
  const r = localStorage.getItem(RANGE_KEY);
  return RANGES[r] ? r : "1h";
}

export async function loadStats(name, minutes) {
  const key = name + ":" + minutes;
  const cached = app.stats.get(key);
  if (cached && Date.now() - cached.at < (MAX_AGE_MS[minutes] || 10000)) return cached.minutes;
  const body = await api("GET", "/queue/" + enc(name) + "/stats", { minutes });
  app.stats.set(key, { at: Date.now(), minutes: body.minutes });
  return body.minutes;
}

// Every minute of the range, oldest first, zero where the API left a minute out.
export function series(rowsList, minutes) {
  const byMinute = new Map();
  for (const rows of rowsList) {
    for (const r of rows || []) {
      const t = Math.floor(Date.parse(r.minute) / 60000);
      const m = byMinute.get(t) || { done: 0, failed: 0, dead: 0 };
      for (const [k] of SERIES) m[k] += r[k] || 0;
      byMinute.set(t, m);
    }
  }
  const end = Math.floor(Date.now() / 60000);
  const out = [];
  for (let t = end - minutes + 1; t <= end; t++) out.push({ t, ...(byMinute.get(t) || { done: 0, failed: 0, dead: 0 }) });
  return out;
}

const hhmm = (t) => new Date(t * 60000).toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });

function niceMax(v) {
  if (v <= 5) return 5;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function chart(points, bucket, width) {
  const buckets = [];
  for (let i = 0; i < points.length; i += bucket) {
    const group = points.slice(i, i + bucket);
    const b = { t: group[0].t, done: 0, failed: 0, dead: 0 };
    for (const p of group) for (const [k] of SERIES) b[k] += p[k];
    buckets.push(b);
  }
  const W = Math.max(280, Math.round(width));
  const plotW = W - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const perMin = (b, k) => b[k] / bucket;
  const top = niceMax(Math.max(0, ...buckets.map((b) => perMin(b, "done") + perMin(b, "failed") + perMin(b, "dead"))));
  const y = (v) => PAD.top + plotH - (v / top) * plotH;
  const bw = plotW / buckets.length;
  const svg = s("svg", { class: "chart", width: W, height: HEIGHT, viewBox: "0 0 " + W + " " + HEIGHT, role: "img", "aria-label": "Jobs finished per minute" });
  for (const v of [0, top / 2, top]) {
    svg.append(
      s("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }),
      s("text", { class: "axis", x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, num(Math.round(v * 10) / 10))
    );
  }
  buckets.forEach((b, i) => {
    const x = PAD.left + i * bw;
    const g = s("g", { class: "bar" });
    let base = 0;
    for (const [k] of SERIES) {
      const v = perMin(b, k);
      if (v <= 0) continue;
      g.append(s("rect", { class: "bar-" + k, x: x + 0.5, width: Math.max(1, bw - 1), y: y(base + v), height: y(base) - y(base + v) }));
      base += v;
    }
    // The whole column carries the tooltip, so hovering anywhere above a bar shows its numbers.
    const when = bucket === 1 ? hhmm(b.t) : hhmm(b.t) + "–" + hhmm(b.t + bucket);
    g.append(
      s("rect", { class: "hit", x, width: bw, y: PAD.top, height: plotH }),
      s("title", {}, when + ": done " + num(b.done) + ", failed " + num(b.failed) + ", dead " + num(b.dead))
    );
    svg.append(g);
  });
  const ticks = 4;
  for (let i = 0; i <= ticks; i++) {
    const idx = Math.min(buckets.length - 1, Math.round((i * (buckets.length - 1)) / ticks));
    const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
    svg.append(s("text", { class: "axis", x: PAD.left + idx * bw + (i === ticks ? bw : 0), y: HEIGHT - 6, "text-anchor": anchor }, hhmm(buckets[idx].t)));
  }
  return svg;
}

// A card with the chart of ``names`` (summed), a 1 h / 24 h switch and the totals.
export function historyCard(seq, names, title) {
  const range = currentRange();
  const spec = RANGES[range];
  const body = h("div", { class: "chart-body", id: "history-chart" }, h("p", { class: "muted small" }, "Loading…"));
  const switcher = h(
    "div",
    { class: "range", role: "group", "aria-label": "Range" },
    Object.entries(RANGES).map(([key, r]) =>
      h("button", {
        type: "button",
        class: key === range ? "range-btn active" : "range-btn",
        "aria-pressed": key === range ? "true" : "false",
        dataset: { range: key },
        onclick: () => { localStorage.setItem(RANGE_KEY, key); app.render(true); },
      }, r.label)
    )
  );
  const card = h("section", { class: "card history", id: "history" }, h("div", { class: "card-head" }, h("h2", {}, title), switcher), body);
  const fill = async () => {
    const rows = [];
    await parallel(names, 6, async (n) => {
      try {
        rows.push(await loadStats(n, spec.minutes));
      } catch (e) {
        if (e.status === 401) throw e; // a queue deleted meanwhile is left out
      }
    });
    if (seq !== app.seq) return;
    const points = series(rows, spec.minutes);
    const totals = { done: 0, failed: 0, dead: 0 };
    for (const p of points) for (const k of Object.keys(totals)) totals[k] += p[k];
    const width = Math.min(1160, ($("main").clientWidth || 800) - 36);
    body.replaceChildren(
      chart(points, spec.bucket, width),
      h(
        "p",
        { class: "legend small" },
        SERIES.map(([k, label]) => h("span", { class: "legend-item", dataset: { series: k } }, h("span", { class: "swatch swatch-" + k }), label + " ", h("strong", {}, num(totals[k])))),
        h("span", { class: "muted" }, " in the last " + spec.label + (spec.bucket > 1 ? " (bars: average per minute over " + spec.bucket + " min)" : " (per minute)"))
      )
    );
    document.body.dataset.chartRange = range;
  };
  return { card, fill };
}

// ``minutes``: points of series() (every minute, oldest first).
export function sparkline(minutes) {
  const w = 4;
  const height = 20;
  const max = Math.max(1, ...minutes.map((m) => m.done + m.failed));
  const svg = s("svg", { viewBox: "0 0 " + minutes.length * w + " " + height, class: "spark", role: "img" });
  svg.append(s("title", {}, minutes.map((m) => hhmm(m.t) + " done " + num(m.done) + ", failed " + num(m.failed)).join("\n")));
  minutes.forEach((m, i) => {
    let yy = height;
    for (const [field, cls] of [["done", "spark-done"], ["failed", "spark-failed"]]) {
      const bar = Math.round((m[field] / max) * height);
      if (bar === 0) continue;
      yy -= bar;
      svg.append(s("rect", { x: i * w, y: yy, width: w - 1, height: bar, class: cls }));
    }
  });
  return svg;
}
