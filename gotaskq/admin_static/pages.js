// The other pages: overview, one job, workers, schedules.
import {
  ApiError, JOB_ID_RE, actionButton, api, app, dlqHash, empty, enc, h, jobHash, link, num, parallel, pretty,
  queueHash, section, show, span, statusBadge, table, time,
} from "./dom.js";
import { historyCard, loadStats, series, sparkline } from "./chart.js";

const STATS_MINUTES = 15;
const RATE_MINUTES = 5;

// The rates and sparkline of one queue from its last hour (the request the 1 h chart makes too).
function rates(c, rows) {
  const minutes = series([rows], STATS_MINUTES);
  const recent = minutes.slice(-RATE_MINUTES);
  const sum = (f) => recent.reduce((n, m) => n + m[f], 0);
  const fmt = (x) => (x >= 10 ? num(Math.round(x)) : x.toFixed(1));
  c.processed.textContent = fmt((sum("done") + sum("failed")) / RATE_MINUTES);
  c.failed.textContent = fmt(sum("failed") / RATE_MINUTES);
  c.spark.replaceChildren(sparkline(minutes));
}

// Overview: totals, the history of every queue together, each queue with counts and rates.
export async function viewOverview(seq, refresh) {
  const { queues } = await api("GET", "/queue");
  queues.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const totals = { pending: 0, scheduled: 0, running: 0, dead: 0 };
  for (const q of queues) for (const k of Object.keys(totals)) totals[k] += q[k];
  const cells = new Map();
  const rows = queues.map((q) => {
    const c = { processed: h("td", { class: "num" }, "…"), failed: h("td", { class: "num" }, "…"), spark: h("td", { class: "spark-cell" }) };
    cells.set(q.name, c);
    const cached = app.stats.get(q.name + ":60");
    if (cached) rates(c, cached.minutes); // no flicker on refresh: show the last values
    return h(
      "tr",
      { dataset: { queue: q.name } },
      h("th", { scope: "row" }, link(queueHash(q.name), q.name), q.paused ? h("span", { class: "badge badge-paused" }, "paused") : null),
      h("td", { class: "num" }, link(queueHash(q.name, "pending"), num(q.pending))),
      h("td", { class: "num" }, link(queueHash(q.name, "scheduled"), num(q.scheduled))),
      h("td", { class: "num" }, link(queueHash(q.name, "running"), num(q.running))),
      h("td", { class: "num" }, link(dlqHash(q.name), num(q.dead), { class: q.dead ? "dead-count" : null })),
      c.processed,
      c.failed,
      c.spark
    );
  });
  const tiles = h(
    "div",
    { class: "tiles" },
    [["queues", queues.length, "#/"], ["pending", totals.pending], ["scheduled", totals.scheduled], ["running", totals.running, "#/workers"], ["dead", totals.dead, "#/dlq"]].map(([label, n, hash]) => {
      const body = [h("span", { class: "tile-n" }, num(n)), h("span", { class: "tile-label" }, label)];
      return hash ? link(hash, body, { class: "tile tile-" + label }) : h("div", { class: "tile tile-" + label }, body);
    })
  );
  const history = historyCard(seq, queues.map((q) => q.name), "History, every queue");
  const node = h(
    "div",
    {},
    h("h1", {}, "Queues"),
    tiles,
    history.card,
    table(
      [["Queue"], ["Pending", "num"], ["Scheduled", "num"], ["Running", "num"], ["Dead", "num"], ["Processed/min", "num"], ["Failed/min", "num"], ["Last " + STATS_MINUTES + " min", "spark-cell"]],
      rows.length ? rows : [empty("No queues yet.", 8)],
      { class: "queues", id: "queues" }
    ),
    h("p", { class: "muted small" }, "Rates are averaged over the last " + RATE_MINUTES + " minutes, across every worker process.")
  );
  if (!show(seq, node, refresh)) return;
  await Promise.all([
    history.fill(),
    parallel(queues, 6, async (q) => {
      if (seq !== app.seq) return;
      try {
        rates(cells.get(q.name), await loadStats(q.name, 60));
      } catch (e) {
        if (e.status === 401) throw e; // a queue deleted meanwhile: leave its rates empty
      }
    }),
  ]);
  if (seq !== app.seq) return;
  document.body.dataset.statsRendered = "1";
  if (!refresh) document.body.dataset.statsRenderedAt = performance.now().toFixed(1);
}

async function readJob(id) {
  try {
    return await api("GET", "/jobs/" + id);
  } catch (e) {
    if (e.status !== 401) throw e;
    // /jobs wants API_TOKEN when one is set; the admin token still reads dead jobs.
    try {
      return await api("GET", "/dlq/" + id);
    } catch (e2) {
      if (e2.status !== 404) throw e2;
      throw new ApiError(403, "api_token_required", "only dead jobs can be shown here: reading other jobs (GET /jobs/{id}) needs API_TOKEN");
    }
  }
}

function jobActions(job) {
  const id = job.id;
  const box = h("div", { class: "actions" });
  if (app.config.readonly) return box;
  if (job.status === "SCHEDULED") {
    box.append(actionButton("Run now", { id: "run-now" }, {
      title: "Run job " + id + " now", text: "The job becomes PENDING now instead of at its run time.", ok: "Run now",
      method: "POST", path: "/jobs/" + id + "/run-now", outcome: (j) => "Job " + id + " runs now: " + j.status + ".",
    }));
  }
  if (job.status === "PENDING" || job.status === "SCHEDULED") {
    box.append(actionButton("Cancel job", { id: "cancel-job", class: "danger" }, {
      title: "Cancel job " + id, text: "The job will not run. This cannot be undone.", ok: "Cancel job",
      method: "DELETE", path: "/jobs/" + id, outcome: (j) => "Job " + id + " cancelled: now " + j.status + ".",
    }));
  }
  if (job.status === "DEAD") {
    box.append(
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
  return box;
}

function progressBar(p) {
  if (!p) return null;
  const pct = Math.max(0, Math.min(100, Number(p.percent) || 0));
  return section(
    "Progress",
    h("div", { class: "progress-row" }, h("progress", { id: "job-progress", max: 100, value: pct }, pct + "%"), h("strong", {}, (Math.round(pct * 10) / 10) + " %")),
    h("p", { class: "muted small" }, p.message ? p.message + " · " : "", "reported ", time(p.at))
  );
}

// Each failed attempt, newest first, its traceback folded away until asked for (and kept
// unfolded across the live refreshes). The page on screen is read first: its toggle events
// come as later tasks, so a refresh landing just after a click would not see them yet.
const unfolded = new Set();
function attempts(job) {
  const errors = job.errors;
  if (!errors || !errors.length) return null;
  for (const d of document.querySelectorAll("#job-errors details.attempt")) unfolded[d.open ? "add" : "delete"](d.dataset.key);
  const items = errors.slice().reverse().map((e) =>
    h(
      "details",
      {
        class: "attempt",
        open: unfolded.has(job.id + ":" + e.attempt),
        dataset: { attempt: String(e.attempt), key: job.id + ":" + e.attempt },
        ontoggle: (ev) => unfolded[ev.target.open ? "add" : "delete"](job.id + ":" + e.attempt),
      },
      h("summary", {}, h("span", { class: "attempt-n" }, "Attempt " + num(e.attempt)), " ", time(e.at), " ", h("span", { class: "error-inline" }, String(e.error))),
      e.traceback ? h("pre", { class: "error-text traceback" }, e.traceback) : h("p", { class: "muted small" }, "No traceback recorded.")
    )
  );
  return section("Attempts that failed (" + num(errors.length) + ")", h("div", { id: "job-errors" }, items));
}

// Job page: everything about one job, nothing shown for fields without a value.
export async function viewJob(seq, refresh, route) {
  const missing = (text) => show(seq, h("div", {}, h("h1", {}, "Job ", h("span", { class: "mono" }, route.id)), h("p", { class: "error", id: "job-missing" }, text)), refresh);
  if (!JOB_ID_RE.test(route.id)) return missing("A job id is a decimal number.");
  let job;
  try {
    job = await readJob(route.id);
  } catch (e) {
    if (e.status === 404) return missing("No job with this id (finished jobs expire after COMPLETE_JOB_TTL).");
    throw e;
  }
  const facts = [
    ["Status", statusBadge(job.status)],
    ["Queue", link(queueHash(job.queue), job.queue)],
    ["Type", h("span", { class: "mono" }, job.type)],
    ["Attempts / max_retries", num(job.attempts) + " / " + num(job.max_retries)],
    ["Priority", num(job.priority)],
    ["Timeout", num(job.timeout) + " s"],
    ["Idempotency key", job.idempotency_key === null ? null : h("span", { class: "mono" }, job.idempotency_key)],
    ["Created", job.created_at && time(job.created_at)],
    ["Run at", job.run_at && job.status === "SCHEDULED" ? time(job.run_at) : null],
    ["Started", job.started_at && time(job.started_at)],
    ["Finished", job.finished_at && time(job.finished_at)],
    ["Took", job.started_at && job.finished_at ? span(Date.parse(job.finished_at) - Date.parse(job.started_at)) : null],
    ["Updated", job.updated_at && time(job.updated_at)],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  const node = h(
    "div",
    {},
    h("h1", {}, "Job ", h("span", { class: "mono", id: "job-id" }, job.id), statusBadge(job.status)),
    jobActions(job),
    section("Details", h("dl", { class: "facts", id: "job-facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { field: k } }, v)]))),
    progressBar(job.progress),
    job.payload !== null ? section("Payload", h("pre", { class: "json", id: "job-payload" }, pretty(job.payload))) : null,
    job.result !== null || job.status === "DONE" ? section("Result", h("pre", { class: "json", id: "job-result" }, pretty(job.result))) : null,
    job.last_error !== null ? section("Last error", h("pre", { class: "error-text", id: "job-last-error" }, job.last_error)) : null,
    attempts(job)
  );
  // Marked only when shown: a dropped older answer must not announce a status the page lacks.
  if (show(seq, node, refresh)) document.body.dataset.jobStatus = job.status;
}

// Workers: every live process, what it serves, how busy, and the jobs it runs now.
export async function viewWorkers(seq, refresh) {
  const { workers } = await api("GET", "/workers");
  const cards = workers.map((w) => {
    const running = w.running || (w.jobs || []).map((id) => ({ id }));
    const rows = running.map((r) =>
      h(
        "tr",
        { dataset: { job: r.id } },
        h("th", { scope: "row" }, link(jobHash(r.id), r.id, { class: "mono" })),
        h("td", {}, r.queue ? link(queueHash(r.queue), r.queue) : "—"),
        h("td", { class: "mono" }, r.type || "—"),
        h("td", { class: "num nowrap" }, r.started_at ? h("span", { title: r.started_at }, span(Date.now() - Date.parse(r.started_at))) : "—"),
        h("td", { class: "nowrap" }, r.lease_expires_at ? time(r.lease_expires_at) : "—")
      )
    );
    const busy = w.concurrency ? Math.min(100, (100 * w.busy) / w.concurrency) : 0;
    return h(
      "section",
      { class: "card worker", dataset: { worker: w.id } },
      h("h2", {}, h("span", { class: "mono" }, w.host + ":" + w.pid), " ", h("span", { class: "muted small mono" }, w.id)),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Queues"), h("dd", {}, (w.queues || []).map((q, i) => [i ? ", " : "", q === "*" ? "all" : link(queueHash(q), q)])),
        h("dt", {}, "Busy"), h("dd", { class: "busy" }, h("progress", { max: 100, value: busy }), " " + num(w.busy) + " / " + num(w.concurrency)),
        w.types && w.types.length ? [h("dt", {}, "Job types"), h("dd", { class: "mono small" }, w.types.join(", "))] : null,
        h("dt", {}, "Started"), h("dd", {}, time(w.started_at)),
        h("dt", {}, "Last seen"), h("dd", {}, time(w.last_seen_at))
      ),
      table([["Job"], ["Queue"], ["Type"], ["Running for", "num"], ["Lease until"]], rows.length ? rows : [empty("Idle.", 5)], { class: "running" })
    );
  });
  const node = h(
    "div",
    { id: "workers" },
    h("h1", {}, "Workers ", h("span", { class: "badge" }, num(workers.length))),
    h("p", { class: "muted small" }, "Every live worker process (it refreshes its record every lease/3; a killed one drops out after three leases)."),
    cards.length ? cards : h("p", { class: "card muted" }, "No worker process is running.")
  );
  show(seq, node, refresh);
}

// Schedules: when each runs next, and pause / resume / delete. Pausing re-PUTs the definition.
export async function viewSchedules(seq, refresh) {
  const { schedules } = await api("GET", "/schedules");
  const rows = schedules.map((sc) => {
    const path = "/schedules/" + enc(sc.name);
    const { name, next_run_at, last_run_at, last_job_id, ...definition } = sc;
    const actions = app.config.readonly
      ? null
      : [
          actionButton(sc.paused ? "Resume" : "Pause", { class: "small " + (sc.paused ? "resume" : "warn pause") }, {
            title: (sc.paused ? "Resume" : "Pause") + " schedule " + name, ok: sc.paused ? "Resume" : "Pause",
            text: sc.paused ? "It makes jobs again from its next tick." : "It makes no job until resumed.",
            method: "PUT", path, body: { ...definition, paused: !sc.paused },
            outcome: () => "Schedule " + name + (sc.paused ? " resumed." : " paused."),
          }),
          actionButton("Delete", { class: "small danger delete" }, {
            title: "Delete schedule " + name, text: "No more jobs from it; jobs it made stay.", ok: "Delete",
            method: "DELETE", path, outcome: () => "Schedule " + name + " deleted.",
          }),
        ];
    const job = sc.job || {};
    return h(
      "tr",
      { dataset: { schedule: name } },
      h("th", { scope: "row", class: "mono" }, name, sc.paused ? h("span", { class: "badge badge-paused" }, "paused") : null),
      h("td", { class: "mono nowrap" }, sc.cron ? sc.cron + (sc.timezone && sc.timezone !== "UTC" ? " (" + sc.timezone + ")" : "") : "every " + span(sc.every * 1000)),
      h("td", {}, h("span", { class: "mono" }, job.type || "?"), " → ", link(queueHash(job.queue || "default"), job.queue || "default")),
      h("td", { class: "nowrap" }, sc.paused ? h("span", { class: "muted" }, "paused") : time(next_run_at)),
      h("td", { class: "nowrap" }, time(last_run_at), last_job_id ? [" · ", link(jobHash(last_job_id), "job", { class: "small" })] : null),
      h("td", { class: "actions-cell full" }, actions)
    );
  });
  const node = h(
    "div",
    {},
    h("h1", {}, "Schedules"),
    table([["Schedule"], ["When"], ["Job"], ["Next run"], ["Last run"], [""]], rows.length ? rows : [empty("No schedules. Create one with PUT /schedules/{name} or gotaskq schedules set.", 6)], { class: "schedules", id: "schedules" })
  );
  show(seq, node, refresh);
}
