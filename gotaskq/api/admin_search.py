"""Search within a queue's jobs of one state (or every queue's): filters by type, error text,
id and retries, applied while scanning pages of the backend's listing, with a bound on how
many jobs one request examines and a cursor to continue from.

One table (FIELDS) is both what the server checks and what /openapi.json says about the
filters, as query parameters and as the ``filter`` object of POST /admin/bulk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from ..app import App
from ..errors import InvalidInput, QueueNotFound
from ..job import JOB_ID_RE, Job
from ..states import JobStatus
from .params import MAX_LIMIT

SCAN_BUDGET = 2000  # jobs one listing request may examine; past it, the answer is partial
CHUNK = 200  # jobs read at once while filtering
MAX_ERROR_TEXT = 200
TYPE_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
_RESTART = 2**62  # a cursor score above every job's: "from the top of this queue"

# name -> (JSON Schema, what a wrong value is told)
FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "type": (
        {"type": "string", "pattern": f"^{TYPE_RE.pattern}$", "description": "Only jobs of this type (exact)"},
        "must be a job type: 1-128 characters of A-Z a-z 0-9 _ . : -",
    ),
    "error": (
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ERROR_TEXT,
            "description": "Only jobs whose last error contains this text (case does not matter)",
        },
        f"must be 1 to {MAX_ERROR_TEXT} characters",
    ),
    "id": (
        {"type": "string", "pattern": "^[0-9]{1,20}$", "description": "Only jobs whose id contains these digits"},
        "must be 1 to 20 digits",
    ),
    "retried": (
        {"type": "boolean", "description": "true: only jobs that already failed an attempt (attempts > 0)"},
        "must be true or false",
    ),
}
QUERY_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True, slots=True)
class Filter:
    type: str | None = None
    error: str | None = None
    id: str | None = None
    retried: bool | None = None

    @property
    def empty(self) -> bool:
        return self.type is None and self.error is None and self.id is None and self.retried is None

    def matches(self, job: Job) -> bool:
        if self.type is not None and job.type != self.type:
            return False
        if self.id is not None and self.id not in job.id:
            return False
        if self.retried is not None and (job.attempts > 0) != self.retried:
            return False
        if self.error is not None:
            return job.last_error is not None and self.error.casefold() in job.last_error.casefold()
        return True


def _check(name: str, value: object, errs: dict[str, str], where: str) -> object:
    ok = False
    if name == "retried":
        ok = isinstance(value, bool)
    elif isinstance(value, str):
        if name == "type":
            ok = TYPE_RE.fullmatch(value) is not None
        elif name == "id":
            ok = JOB_ID_RE.fullmatch(value) is not None
        else:
            ok = 1 <= len(value) <= MAX_ERROR_TEXT
    if not ok:
        errs[where + name] = FIELDS[name][1]
    return value


def filter_from_values(values: Mapping[str, object], where: str = "") -> Filter:
    """A Filter from already-parsed values (query strings or JSON); InvalidInput names each bad one."""
    errs: dict[str, str] = {}
    checked = {name: _check(name, v, errs, where) for name, v in values.items() if name in FIELDS}
    if errs:
        raise InvalidInput("invalid filter: " + ", ".join(sorted(errs)), errs)
    return Filter(**checked)  # type: ignore[arg-type]


def filter_from_query(request: Request) -> Filter:
    """``?type=&error=&id=&retried=``; an empty value is no filter."""
    values: dict[str, object] = {}
    for name in FIELDS:
        raw = request.query_params.get(name)
        if raw:
            values[name] = QUERY_BOOLEANS.get(raw, raw) if name == "retried" else raw
    return filter_from_values(values)


def query_parameters() -> list[dict[str, Any]]:
    """The filters as /openapi.json query parameters (empty: no filter)."""
    out = []
    for name, (spec, _) in FIELDS.items():
        schema = {"type": "string", "enum": list(QUERY_BOOLEANS)} if name == "retried" else dict(spec)
        schema.pop("description", None)
        out.append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "allowEmptyValue": True,
                "schema": schema,
                "description": spec["description"] + "; empty: no filter",
            }
        )
    return out


@dataclass(frozen=True, slots=True)
class ScanPage:
    jobs: list[Job]
    next_cursor: str | None
    scanned: int

    def to_dict(self) -> dict[str, object]:
        return {"jobs": [j.to_dict() for j in self.jobs], "next_cursor": self.next_cursor, "scanned": self.scanned}


async def _queues(app: App, queue: str | None, status: JobStatus) -> list[str]:
    if queue is not None:
        await app.queue_info(queue)  # 404 for a queue that does not exist
        return [queue]
    infos = await app.list_queues()
    counted = status.value.lower() if status.value.lower() in ("pending", "scheduled", "running", "dead") else None
    # Queues with none in that state are skipped (their counts come in one read).
    return sorted(i.name for i in infos if counted is None or getattr(i, counted))


def _cursor_queue(cursor: str | None) -> str | None:
    return cursor.rsplit(":", 2)[0] if cursor else None


async def scan(
    app: App,
    queue: str | None,
    status: JobStatus,
    where: Filter,
    limit: int,
    cursor: str | None,
    budget: int | None = None,
) -> ScanPage:
    """Up to ``limit`` jobs matching ``where``, newest first (queue by queue, in name order when
    ``queue`` is None), examining at most about ``budget`` jobs; next_cursor continues after
    the last job examined, so a partial page is followed by the rest."""
    budget = SCAN_BUDGET if budget is None else budget
    queues = await _queues(app, queue, status)
    start = _cursor_queue(cursor)
    found: list[Job] = []
    scanned = 0
    for i, name in enumerate(queues):
        if queue is None and start is not None and name < start:
            continue
        at = cursor if name == start else None
        while True:
            want = limit - len(found)
            # Unfiltered, a page is the page; filtered, chunks of CHUNK within what the budget has left.
            size = want if where.empty else min(MAX_LIMIT, budget - scanned, max(want, CHUNK))
            try:
                page = await app.list_jobs(name, status, max(1, size), at)
            except QueueNotFound:
                if queue is not None:
                    raise
                break  # deleted meanwhile
            hits = [j for j in page.jobs if where.matches(j)]
            if len(hits) > want:
                # Stop right after the last hit we keep: list that prefix again for its cursor.
                page = await app.list_jobs(name, status, page.jobs.index(hits[want - 1]) + 1, at)
                hits = [j for j in page.jobs if where.matches(j)][:want]
            found += hits
            scanned += len(page.jobs)
            at = page.next_cursor
            if at is None:
                break
            if len(found) >= limit or scanned >= budget:
                return ScanPage(found, at, scanned)
        if len(found) >= limit or scanned >= budget:
            later = queues[i + 1 :]
            return ScanPage(found, f"{later[0]}:{_RESTART}:0" if later else None, scanned)
    return ScanPage(found, None, scanned)
