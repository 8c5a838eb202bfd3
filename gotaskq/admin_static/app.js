// gotaskq admin UI: plain JavaScript over the JSON API, no build step. This module routes,
// renders, polls and signs in; the pages are in jobs.js and pages.js, helpers in dom.js.
//
// Every value that came from a job is put into the page as text (textContent, createElement,
// text nodes): no file assigns HTML strings, and the CSP's Trusted Types clause makes
// Chromium refuse them anyway. The admin token lives in sessionStorage and travels only in
// an Authorization header (dom.js: fetch with credentials "omit"), never in a cookie.
import { $, JOB_ID_RE, LIVE, TOKEN_KEY, api, app, flash, h, jobHash, link, show } from "./dom.js";
import { STATES, viewDlq, viewQueue, viewRetries } from "./jobs.js";
import { viewJob, viewOverview, viewSchedules, viewWorkers } from "./pages.js";

const REFRESH_KEY = "gotaskq.autoRefresh";
const REFRESH_MS = 3000;
const FILTERS = ["type", "error", "id"];

function viewNotFound(seq, refresh) {
  show(seq, h("div", {}, h("h1", {}, "Not found"), h("p", {}, link("#/", "Back to the overview"))), refresh);
}

const VIEWS = {
  overview: viewOverview, queue: viewQueue, job: viewJob, dlq: viewDlq, retries: viewRetries,
  workers: viewWorkers, schedules: viewSchedules, notfound: viewNotFound,
};
const NAV = { queue: "overview", job: null };

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  let parts;
  try {
    parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch (e) {
    return { view: "notfound" };
  }
  const route = { cursor: query.get("cursor") || "" };
  for (const k of FILTERS) route[k] = (query.get(k) || "").trim();
  if (parts.length === 0) return { ...route, view: "overview" };
  const [head, arg] = parts;
  if (head === "queue" && parts.length === 2) {
    const state = STATES.includes(query.get("state")) ? query.get("state") : "pending";
    return { ...route, view: "queue", name: arg, state };
  }
  if (head === "job" && parts.length === 2) return { view: "job", id: arg };
  if (head === "dlq" && parts.length <= 2) return { ...route, view: "dlq", queue: arg || "" };
  if (["retries", "workers", "schedules"].includes(head) && parts.length === 1) return { ...route, view: head };
  return { view: "notfound" };
}

async function render(refresh) {
  if (app.config.auth_required && !sessionStorage.getItem(TOKEN_KEY)) return signIn("");
  const route = parseRoute();
  const seq = ++app.seq;
  if (!refresh) {
    app.selected.clear();
    document.body.dataset.rendered = "0";
    document.body.dataset.view = route.view;
    for (const k of ["statsRendered", "statsRenderedAt", "jobStatus", "chartRange"]) delete document.body.dataset[k];
  }
  const nav = route.view in NAV ? NAV[route.view] : route.view;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === nav);
  try {
    await VIEWS[route.view](seq, refresh, route);
  } catch (e) {
    if (seq !== app.seq) return;
    if (e.status === 401 && (app.config.auth_required || sessionStorage.getItem(TOKEN_KEY))) {
      return signIn("The token was refused: sign in again.");
    }
    if (refresh) return flash("Refresh failed: " + e.message, "error");
    const what = e.code === "queue_not_found" ? "No such queue." : e.message;
    show(seq, h("div", {}, h("h1", {}, "Cannot load this page"), h("p", { class: "error", id: "load-error" }, what + " (" + (e.status || "network") + " " + e.code + ")")), refresh);
  }
}

// -- token prompt --------------------------------------------------------------------------
function signIn(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("sign-out").hidden = true;
  app.seq++;
  document.body.dataset.view = "signin";
  document.body.dataset.rendered = "1";
  const input = h("input", { id: "token-input", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const note = h("p", { class: "error", id: "token-error", role: "alert" }, message || "");
  const form = h(
    "form",
    { class: "card signin", id: "token-form" },
    h("h1", {}, "Sign in"),
    h("p", {}, "This server has an admin token (ADMIN_TOKEN). It is kept in this tab only (sessionStorage) and sent as a Bearer header."),
    h("label", { for: "token-input" }, "Admin token"),
    input,
    note,
    h("button", { type: "submit" }, "Sign in")
  );
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      await api("GET", "/queue");
    } catch (e) {
      sessionStorage.removeItem(TOKEN_KEY);
      note.textContent = e.status === 401 ? "That token was refused." : "Cannot check the token: " + e.message;
      return;
    }
    $("sign-out").hidden = false;
    render(false);
  });
  $("main").replaceChildren(form);
  input.focus();
}

// -- live updates ----------------------------------------------------------------------------
// Why the poll holds off: a re-render would drop what the user is selecting or typing.
function holdReason() {
  const sel = window.getSelection();
  if (sel && !sel.isCollapsed && $("main").contains(sel.anchorNode)) return "text selected";
  if (app.selected.size > 0 || ($("bulk-all") && $("bulk-all").checked)) return "rows selected";
  const el = document.activeElement;
  if (el && $("main").contains(el) && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName) && el.type !== "checkbox") return "editing";
  if (document.querySelector("main details[open].settings-card")) return "editing";
  return "";
}

// Asked again when a live refresh answers (dom.js show): a hold may have begun since it asked.
function liveHeld() {
  return Boolean(holdReason()) || app.mutating || $("confirm").open;
}

function tick() {
  const box = $("auto-refresh");
  const reason = box.checked ? holdReason() : "";
  $("live-state").textContent = reason ? "paused: " + reason : "";
  document.body.dataset.liveHeld = reason ? "1" : "0";
  if (!box.checked || reason || document.hidden || app.mutating || $("confirm").open) return;
  if (document.body.dataset.view === "signin" || document.body.dataset.rendered !== "1") return;
  render(LIVE);
}

function wireFrame() {
  $("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = $("search-id").value.trim();
    if (!JOB_ID_RE.test(id)) {
      flash("A job id is a decimal number, e.g. 1857341234567890123.", "error");
      return;
    }
    $("search-id").value = "";
    location.hash = jobHash(id);
  });
  const box = $("auto-refresh");
  box.checked = localStorage.getItem(REFRESH_KEY) !== "off";
  box.addEventListener("change", () => localStorage.setItem(REFRESH_KEY, box.checked ? "on" : "off"));
  $("sign-out").addEventListener("click", () => signIn("Signed out."));
  $("flash-close").addEventListener("click", () => { $("flash").hidden = true; });
  window.addEventListener("hashchange", () => { window.scrollTo(0, 0); render(false); });
  setInterval(tick, REFRESH_MS);
}

async function boot() {
  app.render = render;
  app.liveHeld = liveHeld;
  app.signIn = signIn;
  wireFrame();
  try {
    app.config = await api("GET", "/admin/config.json");
  } catch (e) {
    $("main").replaceChildren(h("p", { class: "error" }, "Cannot load the admin configuration: " + e.message));
    return;
  }
  document.body.classList.toggle("readonly", app.config.readonly);
  $("readonly-badge").hidden = !app.config.readonly;
  $("sign-out").hidden = !(app.config.auth_required && sessionStorage.getItem(TOKEN_KEY));
  render(false);
}

boot();
