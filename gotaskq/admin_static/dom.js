// gotaskq admin: shared state, DOM helpers (text only), formatting, the JSON API, the page frame.
//
// Every value that came from a job is put into the page as text (textContent, createElement,
// text nodes): no file of the UI assigns HTML strings, and the CSP's Trusted Types clause makes
// Chromium refuse them anyway. The admin token lives in sessionStorage and travels only in
// an Authorization header; fetch runs with credentials "omit", so no cookie is ever involved.

export const TOKEN_KEY = "gotaskq.adminToken";
export const PAGE_SIZE = 50;
export const JOB_ID_RE = /^[0-9]{1,20}$/;
const SVG_NS = "http://www.w3.org/2000/svg";

export const app = {
  config: { auth_required: false, readonly: false },
  seq: 0, // bumps on every render; late answers of an older render are dropped
  mutating: false,
  pager: { key: "", stack: [] }, // cursors of the pages before the current one
  stats: new Map(), // "queue:minutes" -> {at, minutes}
  selected: new Set(), // job ids ticked in the table shown
  render: null, // set by app.js: render(refresh)
  liveHeld: null, // set by app.js: () => true while a live refresh must not replace the page
  signIn: null, // set by app.js
};

// -- DOM ---------------------------------------------------------------------------------------
function build(el, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "checked" || key === "value") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child)); // a string becomes a text node
  }
  return el;
}

export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

// Links only ever point inside the app: the hash is built from validated ids and names.
export function link(hash, text, props) {
  if (!hash.startsWith("#/")) throw new Error("internal links only");
  return h("a", { ...props, href: hash }, text);
}

export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;
export const jobHash = (id) => "#/job/" + enc(id);

export function withQuery(hash, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const text = q.toString();
  return text ? hash + "?" + text : hash;
}

export const queueHash = (name, query) => withQuery("#/queue/" + enc(name), typeof query === "string" ? { state: query } : query);
export const dlqHash = (name, query) => withQuery(name ? "#/dlq/" + enc(name) : "#/dlq", query);

// -- formatting ----------------------------------------------------------------------------------
const NUMBER = new Intl.NumberFormat("en-US");
export const num = (n) => (typeof n === "number" ? NUMBER.format(n) : String(n ?? ""));

export function pretty(value) {
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2);
  } catch (e) {
    return String(value);
  }
}

export function span(ms) {
  if (Math.abs(ms) < 1000) return Math.round(Math.abs(ms)) + " ms";
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min" + (s < 600 && s % 60 ? " " + (s % 60) + " s" : "");
  if (s < 86400) return Math.floor(s / 3600) + " h" + (Math.floor(s / 60) % 60 ? " " + (Math.floor(s / 60) % 60) + " min" : "");
  return Math.floor(s / 86400) + " d" + (Math.floor(s / 3600) % 24 ? " " + (Math.floor(s / 3600) % 24) + " h" : "");
}

export function ago(iso) {
  const t = Date.parse(iso);
  if (!iso || !Number.isFinite(t)) return "";
  const d = Date.now() - t;
  if (Math.abs(d) < 1500) return "just now";
  return d >= 0 ? span(d) + " ago" : "in " + span(d);
}

export function exact(iso) {
  const t = new Date(iso);
  return Number.isFinite(t.getTime()) ? t.toLocaleString("en-GB", { hour12: false }) + " (" + iso + ")" : String(iso);
}

// A time shown relative ("3 min ago"), the exact time on hover.
export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { class: "time", datetime: iso, title: exact(iso) }, ago(iso));
}

export function clip(text, n) {
  if (text === null || text === undefined) return "";
  const str = String(text);
  return str.length > n ? str.slice(0, n - 1) + "…" : str;
}

export function statusBadge(status) {
  const lower = String(status || "").toLowerCase();
  return h("span", { class: "badge status-" + (/^[a-z]+$/.test(lower) ? lower : "unknown") }, String(status || "?"));
}

// -- the JSON API ------------------------------------------------------------------------
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, query, body) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  if (resp.status === 204) return null;
  let out = null;
  try {
    out = await resp.json();
  } catch (e) {
    out = null;
  }
  if (!resp.ok) {
    const err = (out && out.error) || {};
    const fields = err.fields ? " (" + Object.entries(err.fields).map(([k, v]) => k + ": " + v).join("; ") + ")" : "";
    throw new ApiError(resp.status, err.code || "http_" + resp.status, (err.message || resp.statusText || "request failed") + fields);
  }
  return out;
}

// -- page frame: flash, confirmation, rendering ------------------------------------------
let flashTimer = null;
export function flash(text, kind) {
  const box = $("flash");
  $("flash-text").textContent = text;
  box.className = "flash flash-" + (kind || "ok");
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { box.hidden = true; }, 15000);
}

export function confirmDialog(title, text, okLabel) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = okLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("confirm-yes").removeEventListener("click", yes);
      $("confirm-no").removeEventListener("click", no);
      dialog.removeEventListener("cancel", no);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const yes = () => done(true);
    const no = () => done(false);
    $("confirm-yes").addEventListener("click", yes);
    $("confirm-no").addEventListener("click", no);
    dialog.addEventListener("cancel", no);
    dialog.showModal();
    $("confirm-no").focus();
  });
}

// One mutation: ask (unless told not to), send, report the outcome, re-render.
export async function mutate({ title, text, ok, method, path, query, body, outcome, after, ask = true }) {
  if (app.config.readonly) return;
  if (ask && !(await confirmDialog(title, text, ok))) return;
  app.mutating = true;
  try {
    const answer = await api(method, path, query, body);
    const [message, kind] = [].concat(outcome(answer));
    flash(message, kind || "ok");
    if (after) after(answer);
  } catch (e) {
    if (e.status === 401) return app.signIn("The token was refused: sign in again.");
    flash(title + " failed: " + e.message + " (" + (e.status || "network") + " " + e.code + ")", "error");
  } finally {
    app.mutating = false;
  }
  app.render(true);
}

export function actionButton(label, props, spec) {
  return h("button", { type: "button", ...props, onclick: () => mutate(spec) }, label);
}

// A live refresh (render(LIVE), from the poll) that answers after the user began to select,
// type, tick rows or confirm is dropped: the poll checked before it asked, not when it answers.
export const LIVE = "live";

export function show(seq, node, refresh) {
  if (seq !== app.seq) return false;
  if (refresh === LIVE && app.liveHeld && app.liveHeld()) return false;
  $("main").replaceChildren(node);
  document.body.dataset.rendered = "1";
  if (!refresh) document.body.dataset.renderedAt = performance.now().toFixed(1);
  return true;
}

export function section(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...children);
}

// At phone width the CSS turns each row into a card; the cells carry their column's label.
export function table(head, rows, props) {
  for (const row of rows) {
    if (row.classList.contains("empty")) continue;
    Array.from(row.children).forEach((cell, i) => {
      if (cell.tagName === "TD" && head[i] && head[i][0]) cell.dataset.label = head[i][0];
    });
  }
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { ...props, class: ((props && props.class) || "") + " stack" },
      h("thead", {}, h("tr", {}, head.map(([label, cls]) => h("th", { class: cls || null, scope: "col" }, label)))),
      h("tbody", {}, rows)
    )
  );
}

export function empty(text, span) {
  return h("tr", { class: "empty" }, h("td", { colspan: span }, text));
}

// Cursor paging: "Older" follows next_cursor; "Newer" pops the cursors we came through (kept
// in sessionStorage, so "Newer" still works after a reload).
const PAGER_KEY = "gotaskq.pager";
export function pager(key, baseHash, cursor, nextCursor) {
  if (app.pager.key !== key) {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(PAGER_KEY) || "null");
    } catch (e) {
      saved = null;
    }
    app.pager = saved && saved.key === key && Array.isArray(saved.stack) ? saved : { key, stack: [] };
  }
  if (!cursor) app.pager.stack = [];
  const stack = app.pager.stack;
  const go = (c) => {
    sessionStorage.setItem(PAGER_KEY, JSON.stringify(app.pager));
    location.hash = c ? baseHash + (baseHash.includes("?") ? "&" : "?") + "cursor=" + enc(c) : baseHash;
  };
  const bar = h("nav", { class: "pager", "aria-label": "Pages" });
  if (cursor) {
    bar.append(h("button", { type: "button", class: "secondary", onclick: () => { app.pager.stack = []; go(""); } }, "Newest"));
    bar.append(h("button", { type: "button", class: "pager-prev secondary", onclick: () => go(stack.pop() || "") }, "‹ Newer"));
  }
  if (nextCursor) {
    bar.append(h("button", { type: "button", class: "pager-next secondary", onclick: () => { stack.push(cursor); go(nextCursor); } }, "Older ›"));
  }
  return bar;
}

export async function parallel(items, limit, fn) {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const item = items[next++];
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}
