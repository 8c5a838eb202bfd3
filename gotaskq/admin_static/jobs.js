// Job lists: a queue's jobs by state, the retries, the dead letters; search filters, selection
// and bulk actions (POST /admin/bulk), cursor paging both ways.
import {
  PAGE_SIZE, actionButton, api, app, clip, confirmDialog, dlqHash, empty, enc, h, jobHash, link, mutate,
  num, pager, queueHash, show, table, time, withQuery,
} from "./dom.js";
import { historyCard } from "./chart.js";

export const STATES = ["pending", "scheduled", "retries", "running", "done", "dead"];
const FILTERS = ["type", "error", "id"];
// What a state's rows may be asked to do, in bulk and (the first ones) one by one.
const BULK = { pending: ["cancel"], scheduled: ["run_now", "cancel"], retries: ["run_now", "cancel"], dead: ["replay", "delete"] };
const VERBS = {
  replay: ["Replay", "", "go back to PENDING with their attempts reset"],
  delete: ["Delete", "danger", "are removed for good, with their history"],
  cancel: ["Cancel", "danger", "will not run (CANCELLED)"],
  run_now: ["Run now", "", "become PENDING now instead of at their run time"],
};
const TIME_FIELD = { scheduled: ["run_at", "Runs"], retries: ["run_at", "Retries"], running: ["started_at", "Started"], done: ["finished_at", "Finished"], dead: ["finished_at", "Died"] };

export const apiState = (state) => (state === "retries" ? "scheduled" : state);

export function filterOf(route) {
  const f = {};
  for (const k of FILTERS) if (route[k]) f[k] = route[k];
  return f;
}

function filterForm(route, baseHash) {
  const inputs = {
    type: h("input", { name: "type", id: "filter-type", placeholder: "Job type (exact)", maxlength: 128, value: route.type || "" }),
    error: h("input", { name: "error", id: "filter-error", placeholder: "Text in the last error", maxlength: 200, value: route.error || "" }),
    id: h("input", { name: "id", id: "filter-id", placeholder: "Id contains", inputmode: "numeric", maxlength: 20, value: route.id || "" }),
  };
  const active = FILTERS.some((k) => route[k]);
  return h(
    "form",
    {
      class: "filters",
      id: "filters",
      role: "search",
      autocomplete: "off",
      onsubmit: (ev) => {
        ev.preventDefault();
        const q = {};
        for (const k of FILTERS) q[k] = inputs[k].value.trim();
        app.pager = { key: "", stack: [] };
        location.hash = withQuery(baseHash, q);
      },
    },
    FILTERS.map((k) => h("label", { class: "filter" }, h("span", { class: "sr-only" }, k), inputs[k])),
    h("button", { type: "submit", id: "filter-apply" }, "Filter"),
    active ? link(baseHash, "Clear", { class: "button-link secondary", id: "filter-clear" }) : null
  );
}

function rowActions(job, state) {
  if (app.config.readonly) return null;
  if (state === "dead") {
    return [
      actionButton("Replay", { class: "small replay" }, {
        title: "Replay job " + job.id, text: "The job goes back to PENDING with its attempts reset.", ok: "Replay",
        method: "POST", path: "/dlq/" + job.id + "/replay", outcome: (j) => "Job " + job.id + " replayed: now " + j.status + ".",
      }),
      actionButton("Delete", { class: "small danger delete" }, {
        title: "Delete dead job " + job.id, text: "The job and its history are removed for good.", ok: "Delete",
        method: "DELETE", path: "/dlq/" + job.id, outcome: () => "Dead job " + job.id + " deleted.",
      }),
    ];
  }
  if (state === "scheduled" || state === "retries") {
    return actionButton("Run now", { class: "small run-now" }, {
      title: "Run job " + job.id + " now", text: "The job becomes PENDING now instead of at its run time.", ok: "Run now",
      method: "POST", path: "/jobs/" + job.id + "/run-now", outcome: (j) => "Job " + job.id + " runs now: " + j.status + ".",
    });
  }
  return null;
}

// The bar above a selectable table: how many are ticked, "all matching", one button per action.
function bulkBar(state, scope, onChange) {
  const verbs = BULK[state] || [];
  const count = h("span", { class: "bulk-count", id: "bulk-count" });
  const allBox = h("input", { type: "checkbox", id: "bulk-all" });
  const bar = h(
    "div",
    { class: "bulk", id: "bulk", hidden: true },
    count,
    h("label", { class: "toggle" }, allBox, " every job matching this view (up to 1,000 a request)"),
    verbs.map((v) => h("button", { type: "button", class: "small bulk-" + v + " " + VERBS[v][1], onclick: () => runBulk(v) }, VERBS[v][0])),
    h("button", { type: "button", class: "small secondary", id: "bulk-clear", onclick: () => { app.selected.clear(); onChange(); } }, "Clear selection")
  );
  allBox.addEventListener("change", () => update());
  const update = () => {
    bar.hidden = app.selected.size === 0 && !allBox.checked;
    count.textContent = allBox.checked ? "Every matching job" : num(app.selected.size) + " selected";
  };
  async function runBulk(verb) {
    const [label, , effect] = VERBS[verb];
    const all = allBox.checked;
    const body = all ? { action: verb, filter: scope } : { action: verb, ids: [...app.selected] };
    const what = all ? "every job matching this view (" + describe(scope) + "), up to 1,000," : num(app.selected.size) + " selected job(s)";
    if (!(await confirmDialog(label + " jobs", label + " " + what + ": they " + effect + ".", label))) return;
    await mutate({
      ask: false, title: label, method: "POST", path: "/admin/bulk", body,
      outcome: (r) => {
        const codes = {};
        for (const f of r.failed) codes[f.error] = (codes[f.error] || 0) + 1;
        const failed = r.failed.length ? "; " + num(r.failed.length) + " failed (" + Object.entries(codes).map(([c, n]) => c + ": " + num(n)).join(", ") + ")" : "";
        return [label + ": " + num(r.done) + " of " + num(r.matched) + " done" + failed + (r.more ? "; more match, run it again" : "") + ".", r.failed.length ? "error" : "ok"];
      },
      after: () => { app.selected.clear(); },
    });
  }
  return { bar, update };
}

function describe(scope) {
  return Object.entries(scope).map(([k, v]) => k + " " + v).join(", ");
}

// One page of jobs as a table, with selection when the state has bulk actions.
export function jobTable(page, state, opts) {
  const selectable = !app.config.readonly && Boolean(BULK[state]);
  const [field, label] = TIME_FIELD[state] || ["created_at", "Created"];
  const boxes = [];
  const { bar, update } = selectable ? bulkBar(state, opts.scope, () => sync()) : { bar: null, update: () => {} };
  const sync = () => {
    for (const b of boxes) b.checked = app.selected.has(b.value);
    if (pageBox) pageBox.checked = boxes.length > 0 && boxes.every((b) => b.checked);
    update();
  };
  const pageBox = selectable
    ? h("input", {
        type: "checkbox", id: "select-page", "aria-label": "Select this page",
        onchange: (ev) => { for (const b of boxes) ev.target.checked ? app.selected.add(b.value) : app.selected.delete(b.value); sync(); },
      })
    : null;
  const rows = page.jobs.map((job) => {
    let box = null;
    if (selectable) {
      box = h("input", { type: "checkbox", class: "select-job", value: job.id, "aria-label": "Select job " + job.id, checked: app.selected.has(job.id) });
      box.addEventListener("change", () => { box.checked ? app.selected.add(job.id) : app.selected.delete(job.id); sync(); });
      boxes.push(box);
    }
    const actions = rowActions(job, state);
    return h(
      "tr",
      { dataset: { job: job.id }, class: app.selected.has(job.id) ? "selected" : null },
      selectable ? h("td", { class: "select-cell" }, box) : null,
      h("th", { scope: "row", class: "id-cell" }, link(jobHash(job.id), job.id, { class: "mono" })),
      opts.showQueue ? h("td", { class: "nowrap" }, link(queueHash(job.queue), job.queue)) : null,
      h("td", { class: "mono nowrap" }, job.type),
      h("td", { class: "num" }, num(job.priority)),
      h("td", { class: "num" }, num(job.attempts) + " / " + num(job.max_retries)),
      h("td", { class: "nowrap" }, time(job[field])),
      h("td", { class: "error-cell full", title: job.last_error && job.last_error.length > 160 ? job.last_error : null }, clip(job.last_error, 160)),
      actions ? h("td", { class: "actions-cell full" }, actions) : h("td", { class: "actions-cell full" })
    );
  });
  const head = [
    ...(selectable ? [["", "select-cell"]] : []),
    ["Job"], ...(opts.showQueue ? [["Queue"]] : []), ["Type"], ["Priority", "num"], ["Attempts", "num"], [label], ["Last error"], [""],
  ];
  const tbl = table(head, rows.length ? rows : [empty(opts.emptyText, head.length)], { class: "jobs", id: opts.id });
  if (pageBox) tbl.querySelector("thead th").replaceChildren(pageBox);
  sync();
  return h("div", {}, bar, tbl);
}

function scanNote(page, route) {
  if (page.scanned === undefined || !FILTERS.some((k) => route[k])) return null;
  const more = page.next_cursor ? " More may match further on: “Older ›” searches on." : "";
  return h("p", { class: "muted small", id: "scan-note" }, num(page.jobs.length) + " match(es) among " + num(page.scanned) + " job(s) searched." + more);
}

// Queue page: chart, actions, settings, and its jobs by state with filters and bulk actions.
export async function viewQueue(seq, refresh, route) {
  const name = route.name;
  const state = route.state;
  const filter = filterOf(route);
  const query = { state: apiState(state), limit: PAGE_SIZE, cursor: route.cursor, ...filter };
  if (state === "retries") query.retried = "true";
  const [info, page] = await Promise.all([api("GET", "/queue/" + enc(name)), api("GET", "/queue/" + enc(name) + "/jobs", query)]);
  const baseHash = queueHash(name, { state, ...filter });
  const scope = { queue: name, state: apiState(state), ...filter };
  if (state === "retries") scope.retried = true;
  const tabs = h(
    "nav",
    { class: "tabs", "aria-label": "States" },
    STATES.map((st) => {
      const n = { pending: info.pending, scheduled: info.scheduled, running: info.running, dead: info.dead }[st];
      return link(queueHash(name, st), st + (n === undefined ? "" : " (" + num(n) + ")"), { class: st === state ? "tab active" : "tab", "aria-current": st === state ? "page" : null, dataset: { state: st } });
    })
  );
  const history = historyCard(seq, [name], "History of " + name);
  const node = h(
    "div",
    {},
    h("h1", {}, "Queue ", h("span", { class: "mono" }, name), info.paused ? h("span", { class: "badge badge-paused", id: "paused-badge" }, "paused") : h("span", { class: "badge badge-active" }, "active"), info.external ? h("span", { class: "badge" }, "external") : null),
    queueActions(name, info),
    history.card,
    tabs,
    filterForm(route, queueHash(name, state)),
    scanNote(page, route),
    jobTable(page, state, { id: "jobs", scope, emptyText: "No " + (state === "retries" ? "retrying" : state) + " jobs" + (Object.keys(filter).length ? " match." : ".") }),
    pager("queue:" + baseHash, baseHash, route.cursor, page.next_cursor)
  );
  if (show(seq, node, refresh)) await history.fill();
}

function queueActions(name, info) {
  const box = h("div", { class: "actions" });
  const path = "/queue/" + enc(name);
  if (!app.config.readonly) {
    box.append(
      info.paused
        ? actionButton("Resume", { id: "resume-queue" }, {
            title: "Resume queue " + name, text: "Workers will claim jobs from " + name + " again.", ok: "Resume",
            method: "POST", path: path + "/resume", outcome: () => "Queue " + name + " resumed.",
          })
        : actionButton("Pause", { id: "pause-queue", class: "warn" }, {
            title: "Pause queue " + name, text: "Workers stop claiming jobs from " + name + " (running jobs finish).", ok: "Pause",
            method: "POST", path: path + "/pause", outcome: () => "Queue " + name + " paused.",
          }),
      actionButton("Purge", { id: "purge-queue", class: "danger", disabled: info.pending + info.scheduled === 0 }, {
        title: "Purge queue " + name, text: num(info.pending + info.scheduled) + " pending and scheduled job(s) are removed for good.", ok: "Purge",
        method: "POST", path: path + "/purge", outcome: (b) => "Purged " + num(b.purged) + " job(s) of " + name + ".",
      }),
      actionButton("Delete queue", { id: "delete-queue", class: "danger" }, {
        title: "Delete queue " + name, text: "The queue and every job of it (dead letters too) are removed for good.", ok: "Delete queue",
        method: "DELETE", path, outcome: () => "Queue " + name + " deleted.", after: () => { location.hash = "#/"; },
      })
    );
  }
  box.append(link(dlqHash(name), "Dead letters (" + num(info.dead) + ")", { class: "button-link secondary" }));
  return h("div", {}, box, settingsForm(name, info));
}

// Concurrency and rate limit: PATCH /queue/{name}; an empty field means no limit.
function settingsForm(name, info) {
  const rl = info.rate_limit || {};
  const conc = h("input", { id: "set-concurrency", type: "number", min: 1, step: 1, placeholder: "no limit", value: info.concurrency ?? "" });
  const max = h("input", { id: "set-rate-max", type: "number", min: 1, step: 1, placeholder: "no limit", value: rl.max ?? "" });
  const per = h("input", { id: "set-rate-per", type: "number", min: 0.001, step: "any", placeholder: "seconds", value: rl.per ?? "" });
  const summary = "Limits: " + (info.concurrency ? num(info.concurrency) + " at once" : "no concurrency limit") + ", " + (info.rate_limit ? num(rl.max) + " per " + num(rl.per) + " s" : "no rate limit");
  const form = h(
    "form",
    {
      class: "settings", id: "queue-settings", autocomplete: "off",
      onsubmit: (ev) => {
        ev.preventDefault();
        const int = (el) => (el.value.trim() === "" ? null : Number(el.value));
        const body = { concurrency: int(conc), rate_limit: int(max) === null ? null : { max: int(max), per: int(per) ?? 1 } };
        mutate({ ask: false, title: "Save settings of " + name, method: "PATCH", path: "/queue/" + enc(name), body, outcome: () => "Settings of " + name + " saved." });
      },
    },
    h("label", {}, "Concurrency ", conc),
    h("label", {}, "Rate limit: at most ", max),
    h("label", {}, " starts per ", per, " s"),
    app.config.readonly ? null : h("button", { type: "submit", id: "save-settings" }, "Save")
  );
  if (app.config.readonly) for (const el of [conc, max, per]) el.disabled = true;
  return h("details", { class: "card settings-card", id: "settings-card" }, h("summary", {}, summary), form);
}

// DLQ and retries: dead jobs (or SCHEDULED retries) across queues or of one, searchable.
export async function viewDlq(seq, refresh, route) {
  const queueName = route.queue;
  const filter = filterOf(route);
  const [{ queues }, page] = await Promise.all([
    api("GET", "/queue"),
    api("GET", "/admin/jobs", { queue: queueName, state: "dead", limit: PAGE_SIZE, cursor: route.cursor, ...filter }),
  ]);
  queues.sort((a, b) => (a.name < b.name ? -1 : 1));
  const select = h(
    "select",
    { id: "dlq-queue", onchange: (ev) => { location.hash = dlqHash(ev.target.value, filter); } },
    h("option", { value: "" }, "All queues (" + num(queues.reduce((n, q) => n + q.dead, 0)) + ")"),
    queues.map((q) => h("option", { value: q.name, selected: q.name === queueName }, q.name + " (" + num(q.dead) + ")"))
  );
  const bar = h("div", { class: "actions" }, h("label", { for: "dlq-queue" }, "Queue "), select);
  const info = queues.find((q) => q.name === queueName);
  if (queueName && !app.config.readonly) {
    const n = info ? info.dead : 0;
    bar.append(
      actionButton("Replay all", { id: "replay-all", disabled: n === 0 }, {
        title: "Replay every dead job of " + queueName, text: num(n) + " dead job(s) go back to PENDING.", ok: "Replay all",
        method: "POST", path: "/dlq/replay", query: { queue: queueName }, outcome: (b) => "Replayed " + num(b.replayed) + " dead job(s) of " + queueName + ".",
      }),
      actionButton("Purge", { id: "purge", class: "danger", disabled: n === 0 }, {
        title: "Purge the dead letters of " + queueName, text: num(n) + " dead job(s) are deleted for good.", ok: "Purge",
        method: "DELETE", path: "/dlq", query: { queue: queueName }, outcome: (b) => "Deleted " + num(b.deleted) + " dead job(s) of " + queueName + ".",
      })
    );
  }
  const baseHash = dlqHash(queueName, filter);
  const scope = { state: "dead", ...filter };
  if (queueName) scope.queue = queueName;
  const node = h(
    "div",
    {},
    h("h1", {}, "Dead letters", queueName ? [" of ", h("span", { class: "mono" }, queueName)] : null),
    bar,
    filterForm(route, dlqHash(queueName)),
    scanNote(page, route),
    jobTable(page, "dead", { id: "dlq-jobs", scope, showQueue: true, emptyText: Object.keys(filter).length ? "No dead job matches." : "No dead jobs." }),
    pager("dlq:" + baseHash, baseHash, route.cursor, page.next_cursor)
  );
  show(seq, node, refresh);
}

export async function viewRetries(seq, refresh, route) {
  const filter = filterOf(route);
  const page = await api("GET", "/admin/jobs", { state: "scheduled", retried: "true", limit: PAGE_SIZE, cursor: route.cursor, ...filter });
  const baseHash = withQuery("#/retries", filter);
  const node = h(
    "div",
    {},
    h("h1", {}, "Retries"),
    h("p", { class: "muted small" }, "Jobs waiting for another attempt after a failure (SCHEDULED with attempts > 0), every queue; the last error is why."),
    filterForm(route, "#/retries"),
    scanNote(page, route),
    jobTable(page, "retries", { id: "retry-jobs", scope: { state: "scheduled", retried: true, ...filter }, showQueue: true, emptyText: "No job is waiting for a retry." }),
    pager("retries:" + baseHash, baseHash, route.cursor, page.next_cursor)
  );
  show(seq, node, refresh);
}
