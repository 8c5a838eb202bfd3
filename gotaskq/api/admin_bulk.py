"""POST /admin/bulk: one action (replay, delete, cancel, run now) on many jobs, chosen by id or
by a filter, bounded to MAX_BULK jobs a request; answers what happened to each.

FIELDS is both the check and the BulkRequest schema of /openapi.json.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..app import App
from ..errors import GotaskqError, InvalidInput
from ..job import JOB_ID_RE
from ..states import JobStatus
from . import admin_search, params
from .body import read_json
from .errors import STATUS
from .responses import JSONResponse
from .state import gotaskq_app

MAX_BULK = 1000
MAX_BULK_SCAN = 20_000  # jobs a filtered bulk request examines at most
PARALLEL = 20  # actions in flight at once


def _replay(app: App, job_id: str) -> Awaitable[object]:
    return app.dlq_replay(job_id)


def _delete(app: App, job_id: str) -> Awaitable[object]:
    return app.dlq_delete(job_id)


def _cancel(app: App, job_id: str) -> Awaitable[object]:
    return app.cancel(job_id)


def _run_now(app: App, job_id: str) -> Awaitable[object]:
    return app.run_now(job_id)


ACTIONS: dict[str, tuple[Callable[[App, str], Awaitable[object]], str]] = {
    "replay": (_replay, "a DEAD job back to PENDING, attempts reset"),
    "delete": (_delete, "a DEAD job removed"),
    "cancel": (_cancel, "a PENDING or SCHEDULED job CANCELLED"),
    "run_now": (_run_now, "a SCHEDULED job PENDING now"),
}
STATES = ("pending", "scheduled", "running", "dead", "done")


def filter_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["state"],
        "properties": {
            "queue": {"$ref": "#/components/schemas/QueueName", "description": "Absent: every queue"},
            "state": {"type": "string", "enum": list(STATES)},
            **{name: spec for name, (spec, _) in admin_search.FIELDS.items()},
        },
    }


FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "action": (
        {
            "type": "string",
            "enum": list(ACTIONS),
            "description": "; ".join(f"{k}: {text}" for k, (_, text) in ACTIONS.items()),
        },
        f"must be one of {', '.join(ACTIONS)}",
    ),
    "ids": (
        {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BULK,
            "items": {"type": "string", "pattern": f"^{JOB_ID_RE.pattern}$"},
            "description": "The jobs, by id",
        },
        f"must be a list of 1 to {MAX_BULK} job ids",
    ),
    "filter": (
        {"$ref": "#/components/schemas/BulkFilter", "description": f"The jobs matching it (the first {MAX_BULK})"},
        'must be {"state", "queue"?, "type"?, "error"?, "id"?, "retried"?}',
    ),
}


def request_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["action"],
        "properties": {name: spec for name, (spec, _) in FIELDS.items()},
        "oneOf": [{"required": ["ids"]}, {"required": ["filter"]}],
        "description": "One action on jobs given by ids or by a filter (exactly one of them)",
    }


def result_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["action", "matched", "done", "failed", "more"],
        "properties": {
            "action": {"type": "string"},
            "matched": {"type": "integer", "minimum": 0, "description": "Jobs the ids or the filter named"},
            "done": {"type": "integer", "minimum": 0, "description": "Jobs the action was applied to"},
            "failed": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "error", "message"],
                    "properties": {
                        "id": {"type": "string"},
                        "error": {"type": "string", "description": "Its error code, e.g. invalid_state"},
                        "message": {"type": "string"},
                    },
                },
            },
            "more": {"type": "boolean", "description": "A filter matched more than one request takes: send it again"},
        },
    }


@dataclass(frozen=True, slots=True)
class BulkRequest:
    action: str
    ids: list[str] | None
    queue: str | None
    state: JobStatus | None
    where: admin_search.Filter


def _filter(obj: object, errs: dict[str, str]) -> tuple[str | None, JobStatus | None, admin_search.Filter]:
    none = admin_search.Filter()
    if not isinstance(obj, dict):
        errs["filter"] = FIELDS["filter"][1]
        return None, None, none
    for k in obj:
        if k not in ("queue", "state", *admin_search.FIELDS):
            errs["filter." + str(k)[:64]] = "unknown field"
    queue = None
    if "queue" in obj:
        try:
            queue = params.queue_name(obj["queue"])
        except InvalidInput:
            errs["filter.queue"] = params.QUEUE_NAME_RULE
    state = obj.get("state")
    status = JobStatus[state.upper()] if isinstance(state, str) and state in STATES else None
    if status is None:
        errs["filter.state"] = f"must be one of {', '.join(STATES)}"
    try:
        where = admin_search.filter_from_values(obj, "filter.")
    except InvalidInput as exc:
        errs.update(exc.fields)
        where = none
    return queue, status, where


def bulk_from_json(obj: object) -> BulkRequest:
    """Validate a POST /admin/bulk body; InvalidInput names each bad field."""
    if not isinstance(obj, dict):
        raise InvalidInput("the body must be a JSON object", {"body": "must be a JSON object"})
    errs = {str(k)[:64]: "unknown field" for k in obj if k not in FIELDS}
    action = obj.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        errs["action"] = FIELDS["action"][1]
    if ("ids" in obj) == ("filter" in obj):
        errs["ids"] = errs["filter"] = "give exactly one of ids and filter"
    ids = None
    if "ids" in obj:
        raw = obj["ids"]
        if (
            not isinstance(raw, list)
            or not 1 <= len(raw) <= MAX_BULK
            or not all(isinstance(i, str) and JOB_ID_RE.fullmatch(i) for i in raw)
        ):
            errs["ids"] = FIELDS["ids"][1]
        else:
            ids = list(dict.fromkeys(raw))  # each job once
    queue, status, where = (None, None, admin_search.Filter())
    if "filter" in obj:
        queue, status, where = _filter(obj["filter"], errs)
    if errs:
        raise InvalidInput("invalid bulk request: " + ", ".join(sorted(errs)), errs)
    return BulkRequest(str(action), ids, queue, status, where)


def _code(exc: GotaskqError) -> str:
    for cls, (_, code) in STATUS.items():
        if isinstance(exc, cls):
            return code
    return "internal"


async def apply(app: App, req: BulkRequest) -> dict[str, object]:
    """Find the jobs, then apply the action to each (PARALLEL at a time); a job that cannot take
    it (wrong state, gone meanwhile) is reported in ``failed`` and the others go on."""
    more = False
    if req.ids is not None:
        ids = req.ids
    else:
        assert req.state is not None
        page = await admin_search.scan(app, req.queue, req.state, req.where, MAX_BULK, None, MAX_BULK_SCAN)
        ids = [j.id for j in page.jobs]
        more = page.next_cursor is not None
    fn = ACTIONS[req.action][0]
    failed: list[dict[str, str]] = []
    gate = asyncio.Semaphore(PARALLEL)

    async def one(job_id: str) -> None:
        async with gate:
            try:
                await fn(app, job_id)
            except GotaskqError as exc:
                if _code(exc) == "backend_unavailable":
                    raise
                failed.append({"id": job_id, "error": _code(exc), "message": str(exc)})

    await asyncio.gather(*(one(i) for i in ids))
    order = {job_id: i for i, job_id in enumerate(ids)}
    failed.sort(key=lambda f: order[f["id"]])
    return {"action": req.action, "matched": len(ids), "done": len(ids) - len(failed), "failed": failed, "more": more}


async def bulk(request: Request) -> Response:
    """``POST /admin/bulk``: see the module docstring."""
    app = gotaskq_app(request)
    req = bulk_from_json(await read_json(request, app.settings.max_body_bytes))
    return JSONResponse(await apply(app, req))
