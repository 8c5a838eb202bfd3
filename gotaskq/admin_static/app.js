// gotaskq admin UI: plain JavaScript over the JSON API, no build step.
//
// Every value that came from a job is put into the page as text (textContent, createElement,
// text nodes): this file never assigns HTML strings, and the CSP's Trusted Types clause makes
// Chromium refuse them anyway. The admin token lives in sessionStorage and travels only in
// an Authorization header; fetch runs with credentials "omit", so no cookie is ever involved.
(() => {
  "use strict";

  const TOKEN_KEY = "gotaskq.adminToken";
  const REFRESH_KEY = "gotaskq.autoRefresh";
  const REFRESH_MS = 3000;
  const PAGE_SIZE = 50;
  const STATS_MINUTES = 15;
  const RATE_MINUTES = 5;
  const STATS_MAX_AGE_MS = 10000;
  const STATS_PARALLEL = 6;
  const STATES = ["pending", "scheduled", "running", "dead"];
  const JOB_ID_RE = /^[0-9]{1,20}$/;
  const SVG_NS = "http://www.w3.org/2000/svg";

  const app = {
    config: { auth_required: false, readonly: false },
    seq: 0, // bumps on every render; late answers of an older render are dropped
    timer: null,
    mutating: false,
    pager: { key: "", stack: [] }, // cursors of the pages before the current one
    stats: new Map(), // queue name -> {at, minutes}
  };

  // -- DOM helpers: text only ---------------------------------------------------------------
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = String(value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child)); // a string becomes a text node
    }
    return el;
  }

  // Links only ever point inside the app: the hash is built from validated ids and names.
  function link(hash, text, props) {
    if (!hash.startsWith("#/")) throw new Error("internal links only");
    return h("a", { ...props, href: hash }, text);
  }

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const jobHash = (id) => "#/job/" + enc(id);
  const queueHash = (name, state) => "#/queue/" + enc(name) + (state ? "?state=" + enc(state) : "");
  const dlqHash = (name) => (name ? "#/dlq/" + enc(name) : "#/dlq");

  function pretty(value) {
    if (value === undefined) return "";
    try {
      return JSON.stringify(value, null, 2);
    } catch (e) {
      return String(value);
    }
  }

  function when(iso) {
    if (!iso) return "—";
    return iso.replace("T", " ");
  }

  function ago(iso) {
    if (!iso) return "";
    const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (!Number.isFinite(s)) return "";
    const abs = Math.abs(s);
    const text = abs < 60 ? abs + "s" : abs < 3600 ? Math.round(abs / 60) + "m" : abs < 86400 ? Math.round(abs / 3600) + "h" : Math.round(abs / 86400) + "d";
    return s >= 0 ? text + " ago" : "in " + text;
  }

  function time(iso) {
    return h("span", { class: "time", title: ago(iso) || null }, when(iso));
  }

  function clip(text, n) {
    if (text === null || text === undefined) return "";
    const s = String(text);
    return s.length > n ? s.slice(0, n - 1) + "…" : s;
  }

  function statusBadge(status) {
    const s = String(status || "").toLowerCase();
    return h("span", { class: "badge status-" + (/^[a-z]+$/.test(s) ? s : "unknown") }, String(status || "?"));
  }

  // -- the JSON API ------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, query) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(query || {})) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
    }
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    let resp;
    try {
      resp = await fetch(url, { method, headers, credentials: "omit", cache: "no-store", redirect: "error" });
    } catch (e) {
      throw new ApiError(0, "network", "the server cannot be reached");
    }
    if (resp.status === 204) return null;
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (!resp.ok) {
      const err = (body && body.error) || {};
      throw new ApiError(resp.status, err.code || "http_" + resp.status, err.message || resp.statusText || "request failed");
    }
    return body;
  }

  async function loadStats(name) {
    const cached = app.stats.get(name);
    if (cached && Date.now() - cached.at < STATS_MAX_AGE_MS) return cached.minutes;
    const body = await api("GET", "/queue/" + enc(name) + "/stats", { minutes: STATS_MINUTES });
    app.stats.set(name, { at: Date.now(), minutes: body.minutes });
    return body.minutes;
  }

  async function parallel(items, limit, fn) {
    let next = 0;
    const run = async () => {
      while (next < items.length) {
        const item = items[next++];
        await fn(item);
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  }

  // -- page frame: flash, confirmation, rendering ------------------------------------------
  let flashTimer = null;
  function flash(text, kind) {
    const box = $("flash");
    $("flash-text").textContent = text;
    box.className = "flash flash-" + (kind || "ok");
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => { box.hidden = true; }, 15000);
  }

  function confirmDialog(title, text, okLabel) {
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

  // One mutation: ask, send (POST/DELETE only), report the outcome, re-render.
  async function mutate({ title, text, ok, method, path, query, outcome, after }) {
    if (app.config.readonly) return;
    if (!(await confirmDialog(title, text, ok))) return;
    app.mutating = true;
    try {
      const body = await api(method, path, query);
      flash(outcome(body), "ok");
      if (after) after(body);
    } catch (e) {
      if (e.status === 401) return signIn("The token was refused: sign in again.");
      flash(title + " failed: " + e.message + " (" + (e.status || "network") + " " + e.code + ")", "error");
    } finally {
      app.mutating = false;
    }
    render(true);
  }

  function actionButton(label, props, spec) {
    return h("button", { type: "button", ...props, onclick: () => mutate(spec) }, label);
  }

  function show(seq, node, refresh) {
    if (seq !== app.seq) return false;
    const main = $("main");
    main.replaceChildren(node);
    document.body.dataset.rendered = "1";
    if (!refresh) document.body.dataset.renderedAt = performance.now().toFixed(1);
    return true;
  }

  function section(title, ...children) {
    return h("section", { class: "card" }, h("h2", {}, title), ...children);
  }

  // At phone width the CSS turns each row into a card; the cells carry their column's label.
  function table(head, rows, props) {
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

  function empty(text, span) {
    return h("tr", { class: "empty" }, h("td", { colspan: span }, text));
  }

  // -- routes ------------------------------------------------------------------------------
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
    const cursor = query.get("cursor") || "";
    if (parts.length === 0) return { view: "overview" };
    if (parts[0] === "queue" && parts.length === 2) {
      const state = STATES.includes(query.get("state")) ? query.get("state") : "pending";
      return { view: "queue", name: parts[1], state, cursor };
    }
    if (parts[0] === "job" && parts.length === 2) return { view: "job", id: parts[1] };
    if (parts[0] === "dlq" && parts.length <= 2) return { view: "dlq", queue: parts[1] || "", cursor };
    return { view: "notfound" };
  }

  function withCursor(hash, cursor) {
    if (!cursor) return hash;
    return hash + (hash.includes("?") ? "&" : "?") + "cursor=" + enc(cursor);
  }

  // Cursor paging: "Older" follows next_cursor; "Newer" pops the cursors we came through.
  function pager(key, baseHash, cursor, nextCursor) {
    if (app.pager.key !== key) app.pager = { key, stack: [] };
    const stack = app.pager.stack;
    const bar = h("nav", { class: "pager", "aria-label": "Pages" });
    if (cursor) {
      bar.append(h("button", { type: "button", onclick: () => { app.pager.stack = []; location.hash = baseHash; } }, "Newest"));
      bar.append(
        h("button", {
          type: "button",
          class: "pager-prev",
          onclick: () => { const prev = stack.pop(); location.hash = withCursor(baseHash, prev || ""); },
        }, "‹ Newer")
      );
    }
    if (nextCursor) {
      bar.append(
        h("button", {
          type: "button",
          class: "pager-next",
          onclick: () => { stack.push(cursor); location.hash = withCursor(baseHash, nextCursor); },
        }, "Older ›")
      );
    }
    return bar;
  }

  function rateCells(minutes) {
    const recent = minutes.slice(-RATE_MINUTES);
    const sum = (f) => recent.reduce((n, m) => n + m[f], 0);
    const processed = (sum("done") + sum("failed")) / RATE_MINUTES;
    const failed = sum("failed") / RATE_MINUTES;
    const fmt = (x) => (x >= 10 ? x.toFixed(0) : x.toFixed(1));
    return { processed: fmt(processed), failed: fmt(failed), spark: sparkline(minutes) };
  }

  function fillRates(c, minutes) {
    const r = rateCells(minutes);
    c.processed.textContent = r.processed;
    c.failed.textContent = r.failed;
    c.spark.replaceChildren(r.spark);
  }

  function sparkline(minutes) {
    const w = 4;
    const height = 20;
    const max = Math.max(1, ...minutes.map((m) => m.done + m.failed));
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + minutes.length * w + " " + height);
    svg.setAttribute("class", "spark");
    svg.setAttribute("role", "img");
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = minutes.map((m) => m.minute.slice(11, 16) + " done " + m.done + ", failed " + m.failed).join("\n");
    svg.append(title);
    minutes.forEach((m, i) => {
      let y = height;
      for (const [field, cls] of [["done", "spark-done"], ["failed", "spark-failed"]]) {
        const bar = Math.round((m[field] / max) * height);
        if (bar === 0) continue;
        y -= bar;
        const r = document.createElementNS(SVG_NS, "rect");
        for (const [k, v] of Object.entries({ x: i * w, y, width: w - 1, height: bar, class: cls })) r.setAttribute(k, String(v));
        svg.append(r);
      }
    });
    return svg;
  }

  // Overview: every queue with its counts, paused flag and recent rates.
  async function viewOverview(seq, refresh) {
    const { queues } = await api("GET", "/queue");
    queues.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const totals = { pending: 0, scheduled: 0, running: 0, dead: 0 };
    for (const q of queues) for (const k of Object.keys(totals)) totals[k] += q[k];
    const cells = new Map();
    const rows = queues.map((q) => {
      const c = { processed: h("td", { class: "num" }, "…"), failed: h("td", { class: "num" }, "…"), spark: h("td", { class: "spark-cell" }) };
      cells.set(q.name, c);
      const cached = app.stats.get(q.name);
      if (cached) fillRates(c, cached.minutes); // no flicker on refresh: show the last values
      return h(
        "tr",
        { dataset: { queue: q.name } },
        h("th", { scope: "row" }, link(queueHash(q.name), q.name), q.paused ? h("span", { class: "badge badge-paused" }, "paused") : null),
        h("td", { class: "num" }, link(queueHash(q.name, "pending"), String(q.pending))),
        h("td", { class: "num" }, link(queueHash(q.name, "scheduled"), String(q.scheduled))),
        h("td", { class: "num" }, link(queueHash(q.name, "running"), String(q.running))),
        h("td", { class: "num" }, link(dlqHash(q.name), String(q.dead), { class: q.dead ? "dead-count" : null })),
        c.processed,
        c.failed,
        c.spark
      );
    });
    const summary = h(
      "div",
      { class: "tiles" },
      [["queues", queues.length], ...Object.entries(totals)].map(([label, n]) => h("div", { class: "tile tile-" + label }, h("span", { class: "tile-n" }, String(n)), h("span", { class: "tile-label" }, label)))
    );
    const node = h(
      "div",
      {},
      h("h1", {}, "Queues"),
      summary,
      table(
        [["Queue"], ["Pending", "num"], ["Scheduled", "num"], ["Running", "num"], ["Dead", "num"], ["Processed/min", "num"], ["Failed/min", "num"], ["Last " + STATS_MINUTES + " min", "spark-cell"]],
        rows.length ? rows : [empty("No queues yet.", 8)],
        { class: "queues", id: "queues" }
      ),
      h("p", { class: "muted small" }, "Rates are averaged over the last " + RATE_MINUTES + " minutes, across every worker process.")
    );
    if (!show(seq, node, refresh)) return;
    await parallel(queues, STATS_PARALLEL, async (q) => {
      if (seq !== app.seq) return;
      let minutes;
      try {
        minutes = await loadStats(q.name);
      } catch (e) {
        if (e.status === 401) throw e;
        return; // a queue deleted meanwhile: leave its rates empty
      }
      fillRates(cells.get(q.name), minutes);
    });
    if (seq !== app.seq) return;
    document.body.dataset.statsRendered = "1";
    if (!refresh) document.body.dataset.statsRenderedAt = performance.now().toFixed(1);
  }

  function jobRow(job, extra) {
    return h(
      "tr",
      { dataset: { job: job.id } },
      h("th", { scope: "row" }, link(jobHash(job.id), job.id, { class: "mono" })),
      extra.queue ? h("td", {}, link(queueHash(job.queue), job.queue)) : null,
      h("td", { class: "mono" }, job.type),
      h("td", { class: "num" }, String(job.priority)),
      h("td", { class: "num" }, job.attempts + " / " + job.max_retries),
      h("td", {}, time(extra.timeField ? job[extra.timeField] : job.created_at)),
      h("td", { class: "error-cell full" }, clip(job.last_error, 140)),
      extra.actions ? h("td", { class: "actions-cell full" }, extra.actions(job)) : null
    );
  }

  // Queue page: its jobs by state, a page at a time, newest first; pause / resume.
  async function viewQueue(seq, refresh, route) {
    const name = route.name;
    const [info, page] = await Promise.all([
      api("GET", "/queue/" + enc(name)),
      api("GET", "/queue/" + enc(name) + "/jobs", { state: route.state, limit: PAGE_SIZE, cursor: route.cursor }),
    ]);
    const actions = h("div", { class: "actions" });
    if (!app.config.readonly) {
      actions.append(
        info.paused
          ? actionButton("Resume", { id: "resume-queue" }, {
              title: "Resume queue " + name, text: "Workers will claim jobs from " + name + " again.", ok: "Resume",
              method: "POST", path: "/queue/" + enc(name) + "/resume", outcome: () => "Queue " + name + " resumed.",
            })
          : actionButton("Pause", { id: "pause-queue", class: "warn" }, {
              title: "Pause queue " + name, text: "Workers stop claiming jobs from " + name + " (running jobs finish).", ok: "Pause",
              method: "POST", path: "/queue/" + enc(name) + "/pause", outcome: () => "Queue " + name + " paused.",
            })
      );
    }
    actions.append(link(dlqHash(name), "Dead letters (" + info.dead + ")", { class: "button-link" }));
    const tabs = h(
      "nav",
      { class: "tabs", "aria-label": "States" },
      STATES.map((s) => link(queueHash(name, s), s + " (" + info[s] + ")", { class: s === route.state ? "tab active" : "tab", "aria-current": s === route.state ? "page" : null }))
    );
    const timeField = { scheduled: "run_at", running: "started_at", dead: "finished_at" }[route.state];
    const timeLabel = { scheduled: "Runs at", running: "Started", dead: "Died" }[route.state] || "Created";
    const rows = page.jobs.map((j) => jobRow(j, { timeField }));
    const node = h(
      "div",
      {},
      h("h1", {}, "Queue ", h("span", { class: "mono" }, name), info.paused ? h("span", { class: "badge badge-paused", id: "paused-badge" }, "paused") : h("span", { class: "badge badge-active" }, "active")),
      actions,
      tabs,
      table(
        [["Job"], ["Type"], ["Priority", "num"], ["Attempts", "num"], [timeLabel], ["Last error"]],
        rows.length ? rows : [empty("No " + route.state + " jobs.", 6)],
        { class: "jobs", id: "jobs" }
      ),
      pager("queue:" + name + ":" + route.state, queueHash(name, route.state), route.cursor, page.next_cursor)
    );
    show(seq, node, refresh);
  }

  // Job page: everything about one job; cancel, or replay / delete when dead.
  async function viewJob(seq, refresh, route) {
    if (!JOB_ID_RE.test(route.id)) {
      show(seq, h("div", {}, h("h1", {}, "Job"), h("p", { class: "error" }, "A job id is a decimal number.")), refresh);
      return;
    }
    let job;
    try {
      job = await api("GET", "/jobs/" + route.id);
    } catch (e) {
      if (e.status === 401) {
        // /jobs wants API_TOKEN when one is set; the admin token still reads dead jobs.
        try {
          job = await api("GET", "/dlq/" + route.id);
        } catch (e2) {
          if (e2.status !== 404) throw e2;
          throw new ApiError(403, "api_token_required", "only dead jobs can be shown here: reading other jobs (GET /jobs/{id}) needs API_TOKEN, which the admin token does not replace");
        }
      } else if (e.status === 404) {
        show(seq, h("div", {}, h("h1", {}, "Job ", h("span", { class: "mono" }, route.id)), h("p", { class: "error", id: "job-missing" }, "No job with this id (finished jobs expire after COMPLETE_JOB_TTL).")), refresh);
        return;
      } else {
        throw e;
      }
    }
    const id = job.id;
    const actions = h("div", { class: "actions" });
    if (!app.config.readonly) {
      if (job.status === "PENDING" || job.status === "SCHEDULED") {
        actions.append(actionButton("Cancel job", { id: "cancel-job", class: "danger" }, {
          title: "Cancel job " + id, text: "The job will not run. This cannot be undone.", ok: "Cancel job",
          method: "DELETE", path: "/jobs/" + id, outcome: (j) => "Job " + id + " cancelled: now " + j.status + ".",
        }));
      }
      if (job.status === "DEAD") {
        actions.append(
          actionButton("Replay", { id: "replay-job" }, {
            title: "Replay job " + id, text: "The job goes back to PENDING with its attempts reset.", ok: "Replay",
            method: "POST", path: "/dlq/" + id + "/replay", outcome: (j) => "Job " + id + " replayed: now " + j.status + ".",
          }),
          actionButton("Delete", { id: "delete-job", class: "danger" }, {
            title: "Delete dead job " + id, text: "The job and its history are removed for good.", ok: "Delete",
            method: "DELETE", path: "/dlq/" + id, outcome: () => "Dead job " + id + " deleted.",
            after: () => { location.hash = dlqHash(job.queue); },
          })
        );
      }
    }
    const facts = [
      ["Status", statusBadge(job.status)],
      ["Queue", link(queueHash(job.queue), job.queue)],
      ["Type", h("span", { class: "mono" }, job.type)],
      ["Attempts / max_retries", job.attempts + " / " + job.max_retries],
      ["Priority", String(job.priority)],
      ["Timeout", job.timeout + " s"],
      ["Idempotency key", job.idempotency_key === null ? "—" : h("span", { class: "mono" }, job.idempotency_key)],
      ["Created", time(job.created_at)],
      ["Updated", time(job.updated_at)],
      ["Run at", time(job.run_at)],
      ["Started", time(job.started_at)],
      ["Finished", time(job.finished_at)],
    ];
    const errors = (job.errors || []).slice().reverse();
    const node = h(
      "div",
      {},
      h("h1", {}, "Job ", h("span", { class: "mono", id: "job-id" }, id)),
      actions,
      section("Details", h("dl", { class: "facts", id: "job-facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { field: k } }, v)]))),
      section("Payload", h("pre", { class: "json", id: "job-payload" }, pretty(job.payload))),
      section("Result", h("pre", { class: "json", id: "job-result" }, job.result === null ? "null" : pretty(job.result))),
      section("Last error", h("pre", { class: "error-text", id: "job-last-error" }, job.last_error === null ? "—" : job.last_error)),
      section(
        "Error history",
        table(
          [["Attempt", "num"], ["At"], ["Error"]],
          errors.length
            ? errors.map((e) => h("tr", {}, h("td", { class: "num" }, String(e.attempt)), h("td", {}, time(e.at)), h("td", { class: "full" }, h("pre", { class: "error-text" }, String(e.error)))))
            : [empty("No errors.", 3)],
          { id: "job-errors" }
        )
      )
    );
    document.body.dataset.jobStatus = job.status;
    show(seq, node, refresh);
  }

  // DLQ: dead jobs across queues or of one queue, with replay / delete, replay all / purge.
  async function viewDlq(seq, refresh, route) {
    const queueName = route.queue;
    const [{ queues }, page] = await Promise.all([
      api("GET", "/queue"),
      api("GET", "/dlq", { queue: queueName, limit: PAGE_SIZE, cursor: route.cursor }),
    ]);
    const names = queues.map((q) => q.name).sort();
    const select = h(
      "select",
      { id: "dlq-queue", onchange: (ev) => { location.hash = dlqHash(ev.target.value); } },
      h("option", { value: "" }, "All queues"),
      names.map((n) => {
        const q = queues.find((x) => x.name === n);
        return h("option", { value: n, selected: n === queueName }, n + " (" + q.dead + ")");
      })
    );
    const bulk = h("div", { class: "actions" }, h("label", { for: "dlq-queue" }, "Queue "), select);
    const info = queues.find((q) => q.name === queueName);
    if (queueName && !app.config.readonly) {
      const path = "/dlq";
      const n = info ? info.dead : 0;
      bulk.append(
        actionButton("Replay all", { id: "replay-all", disabled: n === 0 }, {
          title: "Replay every dead job of " + queueName, text: n + " dead job(s) go back to PENDING.", ok: "Replay all",
          method: "POST", path: "/dlq/replay", query: { queue: queueName }, outcome: (b) => "Replayed " + b.replayed + " dead job(s) of " + queueName + ".",
        }),
        actionButton("Purge", { id: "purge", class: "danger", disabled: n === 0 }, {
          title: "Purge the dead letters of " + queueName, text: n + " dead job(s) are deleted for good.", ok: "Purge",
          method: "DELETE", path, query: { queue: queueName }, outcome: (b) => "Deleted " + b.deleted + " dead job(s) of " + queueName + ".",
        })
      );
    }
    const rowActions = app.config.readonly
      ? null
      : (job) => [
          actionButton("Replay", { class: "small replay" }, {
            title: "Replay job " + job.id, text: "The job goes back to PENDING with its attempts reset.", ok: "Replay",
            method: "POST", path: "/dlq/" + job.id + "/replay", outcome: (j) => "Job " + job.id + " replayed: now " + j.status + ".",
          }),
          actionButton("Delete", { class: "small danger delete" }, {
            title: "Delete dead job " + job.id, text: "The job and its history are removed for good.", ok: "Delete",
            method: "DELETE", path: "/dlq/" + job.id, outcome: () => "Dead job " + job.id + " deleted.",
          }),
        ];
    const rows = page.jobs.map((j) => jobRow(j, { queue: true, timeField: "finished_at", actions: rowActions }));
    const head = [["Job"], ["Queue"], ["Type"], ["Priority", "num"], ["Attempts", "num"], ["Died"], ["Last error"]];
    if (rowActions) head.push([""]);
    const node = h(
      "div",
      {},
      h("h1", {}, "Dead letters", queueName ? [" of ", h("span", { class: "mono" }, queueName)] : null),
      bulk,
      table(head, rows.length ? rows : [empty("No dead jobs.", head.length)], { class: "jobs", id: "dlq-jobs" }),
      pager("dlq:" + queueName, dlqHash(queueName), route.cursor, page.next_cursor)
    );
    show(seq, node, refresh);
  }

  function viewNotFound(seq, refresh) {
    show(seq, h("div", {}, h("h1", {}, "Not found"), h("p", {}, link("#/", "Back to the overview"))), refresh);
  }

  const VIEWS = { overview: viewOverview, queue: viewQueue, job: viewJob, dlq: viewDlq, notfound: viewNotFound };

  async function render(refresh) {
    if (app.config.auth_required && !sessionStorage.getItem(TOKEN_KEY)) return signIn("");
    const route = parseRoute();
    const seq = ++app.seq;
    if (!refresh) {
      document.body.dataset.rendered = "0";
      document.body.dataset.view = route.view;
      delete document.body.dataset.statsRendered;
      delete document.body.dataset.statsRenderedAt;
      delete document.body.dataset.jobStatus;
    }
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.classList.toggle("active", a.dataset.nav === route.view);
    }
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

  // -- boot ----------------------------------------------------------------------------------
  function tick() {
    const box = $("auto-refresh");
    if (!box.checked || document.hidden || app.mutating || $("confirm").open) return;
    if (document.body.dataset.view === "signin" || document.body.dataset.rendered !== "1") return;
    render(true);
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
    app.timer = setInterval(tick, REFRESH_MS);
  }

  async function boot() {
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
})();
