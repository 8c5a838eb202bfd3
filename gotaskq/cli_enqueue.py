"""``gotaskq enqueue``: one job (POST /jobs), or an NDJSON file of them sent in batches
(POST /jobs/batch) with a summary of what was created, already there, and refused by line."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .cli_http import CliError, Remote
from .cli_ops import parse_payload, show_job
from .cli_output import Output, Progress, cut

# Options that are fields of the POST /jobs body; with --file they fill a line that lacks them.
JOB_OPTIONS = ("queue", "priority", "delay", "run_at", "max_retries", "timeout")
_FIELD_INDEX = re.compile(r"^jobs\[(\d+)\]\.?(.*)$")
# A job created more than this before its batch was sent was there already (an idempotent replay).
REPLAY_MARGIN_MS = 250
# Refusals that hold for every later job of the same queue: stop sending that queue's jobs.
QUEUE_WIDE = frozenset({"queue_not_found", "queue_full"})
# Answers that refuse some job of the batch (and store none of it); anything else stops the run.
MAX_SHOWN = 20  # refused lines listed on a terminal
REFUSALS = (400, 404, 409, 413, 422, 429)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in JOB_OPTIONS if getattr(args, name, None) is not None}


def cmd_enqueue(args: argparse.Namespace, remote: Remote, out: Output) -> int:
    if args.file is not None:
        if args.type or args.payload is not None or args.idempotency_key:
            raise CliError("with --file every line is a whole job: give its type, payload and key there", 2)
        return enqueue_file(args, remote, out)
    if not args.type:
        raise CliError("give a job TYPE, or --file jobs.ndjson", 2)
    body: dict[str, Any] = {"type": args.type, "payload": parse_payload(args.payload), **_options(args)}
    if args.idempotency_key:
        body["idempotency_key"] = args.idempotency_key
    resp = remote.request("POST", "/jobs", "jobs", json=body)
    job = resp.json()

    def render(o: Output, j: dict[str, Any]) -> None:
        if resp.status_code == 200:
            o.print(f"job {j['id']} already existed (idempotency key {j['idempotency_key']!r}): nothing enqueued")
        else:
            o.print(f"created job {j['id']}")
        show_job(o, j)

    out.emit(job, render)
    return 0


# -- a file of jobs --------------------------------------------------------------------------
@dataclass
class Line:
    number: int
    job: dict[str, Any]

    @property
    def queue(self) -> str:
        q = self.job.get("queue")
        return q if isinstance(q, str) else "default"


@dataclass
class Summary:
    created: int = 0
    existed: int = 0
    refused: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)  # {line, id, created}
    not_sent_from: int | None = None  # a fatal error stopped the run before this line
    stopped_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "created": self.created,
            "existed": self.existed,
            "refused": sorted(self.refused, key=lambda r: int(r["line"])),
            "jobs": self.jobs,
        }
        if self.not_sent_from is not None:
            out["not_sent_from_line"] = self.not_sent_from
            out["stopped_by"] = self.stopped_by
        return out


def enqueue_file(args: argparse.Namespace, remote: Remote, out: Output) -> int:
    from .api.job_input import MAX_BATCH

    size = min(args.batch_size or MAX_BATCH, MAX_BATCH)
    summary = Summary()
    lines = _read_lines(args.file, _options(args), summary)
    sender = _Sender(remote, summary, Progress(len(lines) or None))
    sender.first_unconfirmed = lines[0].number if lines else 0
    try:
        for chunk in _chunks(lines, size, args.max_body_bytes):
            sender.send(chunk)
    except _Stop as stop:
        summary.not_sent_from = stop.line
        summary.stopped_by = str(stop)
    except KeyboardInterrupt:
        summary.not_sent_from = sender.first_unconfirmed
        summary.stopped_by = "interrupted; the batch in flight may be stored: send again from this line"
    finally:
        sender.progress.close()
    out.emit(summary.to_dict(), _show_summary)
    if summary.not_sent_from is not None:
        print(f"gotaskq: stopped at line {summary.not_sent_from}: {summary.stopped_by}", file=sys.stderr)
    return 1 if summary.refused or summary.not_sent_from is not None else 0


def _show_summary(out: Output, s: dict[str, Any]) -> None:
    refused = s["refused"]
    parts = [
        out.style(f"{s['created']} created", "green"),
        f"{s['existed']} already existed (idempotency key)",
        out.style(f"{len(refused)} refused", "red" if refused else ""),
    ]
    out.print(", ".join(parts))
    for r in refused[:MAX_SHOWN]:
        out.print(f"  line {r['line']}: {r['reason']}")
    if len(refused) > MAX_SHOWN:
        out.print(out.style(f"  … and {len(refused) - MAX_SHOWN} more (--json lists every one)", "dim"))
    if "not_sent_from_line" in s:
        out.print(out.style(f"not sent: line {s['not_sent_from_line']} and after ({s['stopped_by']})", "red"))


def _read_lines(path: str, defaults: dict[str, Any], summary: Summary) -> list[Line]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--file {path}: {exc}", 2) from None
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            job = json.loads(raw)
        except ValueError as exc:
            summary.refused.append({"line": number, "code": "invalid_json", "reason": f"not JSON: {exc}"})
            continue
        if not isinstance(job, dict):
            summary.refused.append({"line": number, "code": "invalid_json", "reason": "not a JSON object"})
            continue
        timed = "delay" in job or "run_at" in job  # a line's own time wins over --delay/--run-at
        fill = {k: v for k, v in defaults.items() if not (timed and k in ("delay", "run_at"))}
        lines.append(Line(number, {**fill, **job}))
    return lines


def _chunks(lines: list[Line], size: int, max_bytes: int) -> list[list[Line]]:
    """Batches of at most ``size`` jobs whose body stays under ``max_bytes`` (MAX_BODY_BYTES)."""
    chunks: list[list[Line]] = []
    current: list[Line] = []
    used = 16  # {"jobs":[]}
    for line in lines:
        n = len(json.dumps(line.job, separators=(",", ":")).encode()) + 1
        if current and (len(current) >= size or used + n > max_bytes):
            chunks.append(current)
            current, used = [], 16
        current.append(line)
        used += n
    if current:
        chunks.append(current)
    return chunks


class _Stop(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _Sender:
    """Sends batches; a refused batch stored nothing (all or nothing), so the CLI drops the
    lines the refusal names, or halves the batch until it finds them, and sends the rest."""

    def __init__(self, remote: Remote, summary: Summary, progress: Progress) -> None:
        self.remote = remote
        self.summary = summary
        self.progress = progress
        self.done = len(summary.refused)
        self.seen: set[str] = set()
        self.skew_ms = 0.0  # the server's clock minus ours, learned from batches with new jobs
        self.closed_queues: dict[str, dict[str, Any]] = {}
        self.first_unconfirmed = 0  # the lowest line of the batch in flight and those after it

    def send(self, chunk: list[Line]) -> None:
        todo = [chunk]
        while todo:
            batch = self._open(todo.pop())
            if not batch:
                continue
            self.first_unconfirmed = min(x.number for b in [batch, *todo] for x in b)
            sent_ms = time.time() * 1000
            try:
                body = {"jobs": [x.job for x in batch]}
                resp = self.remote.request("POST", "/jobs/batch", "jobs", ok=REFUSALS, json=body)
            except CliError as exc:  # unreachable, a token refused, a 5xx: nothing of this batch was stored
                raise _Stop(str(exc), self.first_unconfirmed) from None
            self.first_unconfirmed = batch[-1].number + 1  # unless the answer sends some again
            if resp.status_code == 201:
                self._accepted(batch, resp.json()["jobs"], sent_ms)
                continue
            err = _error(resp)
            named = self._named(batch, err) if resp.status_code == 422 else set()
            if named:
                todo.append([x for i, x in enumerate(batch) if i not in named])
            elif len(batch) == 1:
                self._refuse(batch[0], err)
            else:
                half = len(batch) // 2
                todo += [batch[half:], batch[:half]]  # the first half is sent first

    def _open(self, batch: list[Line]) -> list[Line]:
        keep = []
        for line in batch:
            closed = self.closed_queues.get(line.queue)
            if closed is not None:
                self._refuse(line, closed)
            else:
                keep.append(line)
        return keep

    def _named(self, batch: list[Line], err: dict[str, Any]) -> set[int]:
        """Refuse the lines a 422 names (``jobs[i].field``); a field of no line names none."""
        by_index: dict[int, list[str]] = {}
        for name, why in (err.get("fields") or {}).items():
            m = _FIELD_INDEX.match(name)
            if m is None or int(m.group(1)) >= len(batch):
                return set()
            by_index.setdefault(int(m.group(1)), []).append(f"{m.group(2) or 'job'}: {why}")
        for i, reasons in by_index.items():
            self._refuse(batch[i], {"code": err.get("code", ""), "message": "; ".join(sorted(reasons))})
        return set(by_index)

    def _refuse(self, line: Line, err: dict[str, Any]) -> None:
        code = str(err.get("code", ""))
        self.summary.refused.append({"line": line.number, "code": code, "reason": f"{code}: {err.get('message', '')}"})
        if code in QUEUE_WIDE:
            self.closed_queues.setdefault(line.queue, err)
        self._advance(1)

    def _accepted(self, batch: list[Line], jobs: list[dict[str, Any]], sent_ms: float) -> None:
        fresh = [_ms(j["created_at"]) for x, j in zip(batch, jobs, strict=True) if not x.job.get("idempotency_key")]
        if fresh:  # a job without a key is always new: its time is the batch's, on the server's clock
            batch_ms = max(fresh)
            self.skew_ms = batch_ms - sent_ms
        else:
            batch_ms = sent_ms + self.skew_ms
        for line, job in zip(batch, jobs, strict=True):
            created = job.get("created")
            if not isinstance(created, bool):  # the server does not say: tell by the time and the id
                created = job["id"] not in self.seen and _ms(job["created_at"]) >= batch_ms - REPLAY_MARGIN_MS
            self.seen.add(job["id"])
            if created:
                self.summary.created += 1
            else:
                self.summary.existed += 1
            self.summary.jobs.append({"line": line.number, "id": job["id"], "created": created})
        self._advance(len(batch))

    def _advance(self, n: int) -> None:
        self.done += n
        self.progress.update(self.done)


def _error(resp: Any) -> dict[str, Any]:
    try:
        err = resp.json()["error"]
    except (ValueError, KeyError, TypeError):
        return {"code": f"http_{resp.status_code}", "message": cut(resp.text, 200)}
    return err if isinstance(err, dict) else {"code": f"http_{resp.status_code}", "message": cut(err, 200)}


def _ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000
