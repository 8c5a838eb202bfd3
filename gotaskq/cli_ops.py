"""The operator verbs over HTTP (queues, jobs, dlq, schedules, workers, health) and how each
answer looks on a terminal; ``--json`` prints the server's JSON as it is."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .cli_http import CliError, Remote
from .cli_output import Output, count, cut, seconds
from .config import parse_duration

UNSET_ARG: object = object()  # an option not given (None means "clear the limit")


# -- renderers -------------------------------------------------------------------------------
def _limit(info: dict[str, Any]) -> tuple[str, str]:
    rate = info.get("rate_limit")
    conc = info.get("concurrency")
    return ("-" if conc is None else str(conc)), ("-" if not rate else f"{rate['max']}/{seconds(rate['per'])}")


def show_queues(out: Output, body: dict[str, Any]) -> None:
    rows = []
    for q in body["queues"]:
        concurrency, rate = _limit(q)
        state = ("paused" if q.get("paused") else "active") + (" external" if q.get("external") else "")
        numbers = [str(q.get(k, 0)) for k in ("pending", "scheduled", "running", "dead")]
        rows.append([q["name"], state, *numbers, concurrency, rate])
    headers = ["QUEUE", "STATE", "PENDING", "SCHEDULED", "RUNNING", "DEAD", "CONCURRENCY", "RATE LIMIT"]
    out.table(headers, rows, right=(2, 3, 4, 5, 6))


def show_queue(out: Output, q: dict[str, Any]) -> None:
    concurrency, rate = _limit(q)
    out.fields(
        [
            ("queue", q["name"]),
            ("state", "paused" if q.get("paused") else "active"),
            ("served by", "external workers (HTTP claim)" if q.get("external") else "gotaskq workers"),
            ("pending", str(q.get("pending", 0))),
            ("scheduled", str(q.get("scheduled", 0))),
            ("running", str(q.get("running", 0))),
            ("dead", str(q.get("dead", 0))),
            ("concurrency", concurrency),
            ("rate limit", rate),
        ]
    )


def show_job(out: Output, job: dict[str, Any]) -> None:
    def at(key: str) -> str:
        return f"{out.when(job.get(key))} ({job[key]})" if job.get(key) else "-"

    progress = job.get("progress")
    pairs = [
        ("id", job["id"]),
        ("status", job["status"]),
        ("type", job["type"]),
        ("queue", job["queue"]),
        ("priority", str(job.get("priority", 0))),
        ("attempts", f"{job.get('attempts', 0)} of {job.get('max_retries', 0) + 1}"),
        ("created", at("created_at")),
        ("run at", at("run_at")),
        ("started", at("started_at")),
        ("finished", at("finished_at")),
        ("updated", at("updated_at")),
        ("idempotency key", job.get("idempotency_key") or "-"),
        ("payload", cut(job.get("payload"), 200)),
    ]
    if progress:
        pairs.append(("progress", cut(progress, 200)))
    if job.get("result") is not None:
        pairs.append(("result", cut(job.get("result"), 200)))
    if job.get("last_error"):
        pairs.append(("last error", cut(job["last_error"], 200)))
    out.fields(pairs)


def show_jobs(out: Output, body: dict[str, Any]) -> None:
    rows = [
        [
            j["id"],
            j["queue"],
            j["type"],
            j["status"],
            str(j.get("attempts", 0)),
            out.when(j.get("finished_at") or j.get("updated_at")),
            cut(j.get("last_error"), 60),
        ]
        for j in body["jobs"]
    ]
    out.table(["ID", "QUEUE", "TYPE", "STATUS", "ATTEMPTS", "SINCE", "LAST ERROR"], rows, right=(4,))
    if body.get("next_cursor"):
        out.print(out.style(f"more: --cursor {body['next_cursor']}", "dim"))


def show_schedules(out: Output, body: dict[str, Any]) -> None:
    rows = []
    for s in body["schedules"]:
        when = f"cron {s['cron']}" if s.get("cron") else f"every {seconds(s.get('every') or 0)}"
        job = s.get("job") or {}
        state = "paused" if s.get("paused") else "active"
        rows.append(
            [
                s["name"],
                state,
                when,
                s.get("timezone") or "UTC",
                job.get("type", "-"),
                job.get("queue") or "default",
                out.when(s.get("next_run_at")),
                out.when(s.get("last_run_at")),
            ]
        )
    out.table(["SCHEDULE", "STATE", "WHEN", "TIMEZONE", "TYPE", "QUEUE", "NEXT RUN", "LAST RUN"], rows)


def show_schedule(out: Output, s: dict[str, Any]) -> None:
    show_schedules(out, {"schedules": [s]})


def show_workers(out: Output, body: dict[str, Any]) -> None:
    rows = []
    for w in body["workers"]:
        running = w.get("running")
        n_running = len(running) if isinstance(running, list) else len(w.get("jobs") or [])
        rows.append(
            [
                str(w.get("id", "?")),
                ",".join(w.get("queues") or ["*"]),
                f"{w.get('busy', 0)}/{w.get('concurrency', '?')}",
                str(n_running),
                cut(",".join(w.get("types") or []), 40),
                out.when(w.get("started_at")),
                out.when(w.get("last_seen_at")),
            ]
        )
    out.table(["WORKER", "QUEUES", "BUSY", "RUNNING", "TYPES", "STARTED", "SEEN"], rows, right=(2, 3))


def _message(text: str) -> Any:
    def render(out: Output, _: Any) -> None:
        out.print(text)

    return render


# -- commands --------------------------------------------------------------------------------
def cmd_queues(args: argparse.Namespace, remote: Remote, out: Output) -> int:
    action, name = _queue_action(args)
    if action == "ls":
        out.emit(remote.request("GET", "/queue", "admin").json(), show_queues)
    elif action == "get":
        out.emit(remote.request("GET", f"/queue/{name}", "admin").json(), show_queue)
    elif action in ("create", "set"):
        body = _queue_settings(args)
        if action == "set" and not body:
            raise CliError("queues set: give --concurrency, --rate-limit, --paused/--resumed or --external", 2)
        resp = remote.request("POST" if action == "create" else "PATCH", f"/queue/{name}", "admin", json=body or None)
        out.emit(resp.json(), show_queue)
    elif action in ("pause", "resume"):
        out.emit(remote.request("POST", f"/queue/{name}/{action}", "admin").json(), show_queue)
    elif action == "purge":
        purged = remote.request("POST", f"/queue/{name}/purge", "admin").json()
        out.emit(purged, _message(f"purged {count(purged['purged'], 'waiting job')} from {name}"))
    else:
        remote.request("DELETE", f"/queue/{name}", "admin")
        out.emit({"deleted": name}, _message(f"deleted queue {name} and its jobs"))
    return 0


def _queue_action(args: argparse.Namespace) -> tuple[str, str]:
    if getattr(args, "queues_cmd", None):
        return args.queues_cmd, getattr(args, "name", "")
    for flag, action in (("create", "create"), ("pause", "pause"), ("resume", "resume"), ("set", "set")):
        if getattr(args, flag, None):
            return action, getattr(args, flag)
    if args.purge:
        return "purge", args.purge
    if args.delete:
        return "rm", args.delete
    return "ls", ""


def _queue_settings(args: argparse.Namespace) -> dict[str, object]:
    body: dict[str, object] = {}
    if getattr(args, "concurrency", UNSET_ARG) is not UNSET_ARG:
        body["concurrency"] = args.concurrency
    if getattr(args, "rate_limit", UNSET_ARG) is not UNSET_ARG:
        body["rate_limit"] = args.rate_limit
    if getattr(args, "paused", None) is not None:
        body["paused"] = args.paused
    if getattr(args, "external", None) is not None:
        body["external"] = args.external
    return body


def cmd_jobs(args: argparse.Namespace, remote: Remote, out: Output) -> int:
    if args.jobs_cmd == "get":
        out.emit(remote.request("GET", f"/jobs/{args.id}", "jobs").json(), show_job)
    else:
        job = remote.request("DELETE", f"/jobs/{args.id}", "jobs").json()
        out.emit(job, _message(f"cancelled job {job['id']} ({job['type']} on {job['queue']})"))
    return 0


def cmd_dlq(args: argparse.Namespace, remote: Remote, out: Output) -> int:
    if args.dlq_cmd == "ls":
        params = {k: v for k, v in (("queue", args.queue), ("limit", args.limit), ("cursor", args.cursor)) if v}
        out.emit(remote.request("GET", "/dlq", "admin", params=params).json(), show_jobs)
        return 0
    if args.dlq_cmd == "replay":
        if args.all:
            n = remote.request("POST", "/dlq/replay", "admin", params={"queue": args.all}).json()
            out.emit(n, _message(f"replayed {count(n['replayed'], 'dead job')} of {args.all}"))
        else:
            job = remote.request("POST", f"/dlq/{_needs_id(args)}/replay", "admin").json()
            out.emit(job, _message(f"replayed job {job['id']}: {job['status']} on {job['queue']}"))
        return 0
    if args.all:
        n = remote.request("DELETE", "/dlq", "admin", params={"queue": args.all}).json()
        out.emit(n, _message(f"deleted {count(n['deleted'], 'dead job')} of {args.all}"))
    else:
        job_id = _needs_id(args)
        remote.request("DELETE", f"/dlq/{job_id}", "admin")
        out.emit({"deleted": job_id}, _message(f"deleted dead job {job_id}"))
    return 0


def _needs_id(args: argparse.Namespace) -> str:
    if not args.id:
        raise CliError("give a job id, or --all QUEUE", 2)
    return str(args.id)


def cmd_schedules(args: argparse.Namespace, remote: Remote, out: Output) -> int:
    if args.schedules_cmd == "ls":
        out.emit(remote.request("GET", "/schedules", "admin").json(), show_schedules)
        return 0
    if args.schedules_cmd == "rm":
        remote.request("DELETE", f"/schedules/{args.name}", "admin")
        out.emit({"deleted": args.name}, _message(f"deleted schedule {args.name}"))
        return 0
    job: dict[str, object] = {"type": args.type, "payload": parse_payload(args.payload)}
    if args.queue:
        job["queue"] = args.queue
    body: dict[str, object] = {"cron": args.cron, "every": args.every, "job": job, "paused": args.paused}
    if args.timezone:
        body["timezone"] = args.timezone
    out.emit(remote.request("PUT", f"/schedules/{args.name}", "admin", json=body).json(), show_schedule)
    return 0


def parse_payload(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError as exc:
        raise CliError(f"--payload is not JSON: {exc}", 2) from None


def cmd_workers(args: argparse.Namespace, remote: Remote, out: Output) -> int:
    out.emit(remote.request("GET", "/workers", "admin").json(), show_workers)
    return 0


def cmd_health(args: argparse.Namespace, remote: Remote, out: Output) -> int:
    path = "/readyz" if args.ready else "/healthz"
    remote.timeout = 3.0
    try:
        body = remote.request("GET", path, "none").json()
    except CliError as exc:
        what = "not ready" if args.ready else "unhealthy"
        raise CliError(f"{what}: {exc}", 1, exc.body) from None
    what = "ready: the job store answers" if args.ready else "alive"
    out.emit(body, _message(f"{what} ({remote.url}{path})"))
    return 0


# -- argument types --------------------------------------------------------------------------
def limit_arg(text: str) -> dict[str, float] | None:
    """``--rate-limit 10/60`` (10 starts per 60 s; ``10/1m`` too) or ``none``."""
    if text.lower() == "none":
        return None
    most, _, per = text.partition("/")
    try:
        return {"max": int(most), "per": parse_duration(per or "1")}
    except ValueError:
        raise argparse.ArgumentTypeError("give MAX/SECONDS, e.g. 10/60 or 100/1m, or none") from None


def concurrency_arg(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("give a number, or none") from None


def duration_arg(text: str) -> float:
    """Seconds, as the environment's durations: 30, 30s, 250ms, 5m, 1h."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
