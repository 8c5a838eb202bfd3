"""Workers in any language: the engine's own transitions over HTTP, fenced like in-process ones.

claim (a lease and its token, long-polled on the same wake-ups in-process workers use),
heartbeat, complete, fail. A token that is not the job's current lease is 409 lease_lost and
changes nothing; attempts are counted at claim, as for every worker.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..backends.base import Completion
from ..backoff import retry_delay
from ..errors import GotaskqError, InvalidInput, JobNotFound, StaleLease
from ..job import MAX_TRACEBACK_CHARS, Job, bounded_result, iso_ms, validate_job_id
from ..states import JobStatus
from . import params
from .auth import Area
from .body import read_json
from .responses import JSONResponse
from .routing import route
from .state import gotaskq_app

MAX_CLAIM = 100
MAX_WAIT_S = 30.0
MAX_LEASE_S = 24 * 3600.0
MAX_ERROR_TEXT = 10_000
EXTERNAL = "external"


def _body(obj: object, fields: dict[str, str]) -> dict[str, Any]:
    """An object with only the named fields (name -> 'required' or 'optional')."""
    if not isinstance(obj, dict):
        raise InvalidInput("the body must be a JSON object", {"body": "must be a JSON object"})
    errs = {str(k)[:64]: "unknown field" for k in obj if k not in fields}
    errs.update({k: "is required" for k, need in fields.items() if need == "required" and k not in obj})
    if errs:
        raise InvalidInput("invalid body: " + ", ".join(sorted(errs)), errs)
    return obj


def _number(obj: dict[str, Any], name: str, lo: float, hi: float, default: float, integer: bool = False) -> float:
    value = obj.get(name, default)
    if value is None:
        return default
    ok = not isinstance(value, bool) and isinstance(value, int | float) and lo <= value <= hi
    if ok and integer and not float(value).is_integer():
        ok = False
    if not ok:
        kind = "an integer" if integer else "a number"
        raise InvalidInput(f"invalid {name}", {name: f"must be {kind} from {lo:g} to {hi:g}"})
    return float(value)


def _token(obj: dict[str, Any]) -> int:
    token = obj.get("lease_token")
    if not isinstance(token, str) or not token.isdigit() or len(token) > 20:
        raise InvalidInput("invalid lease_token", {"lease_token": "must be the lease_token the claim gave"})
    return int(token)


def _with_lease(job: Job, token: int, expires_ms: int) -> dict[str, Any]:
    return {**job.to_dict(), "lease_token": str(token), "lease_expires_at": iso_ms(expires_ms)}


async def claim(request: Request) -> Response:
    app = gotaskq_app(request)
    queue = params.path_queue(request)
    raw = await read_json(request, app.settings.max_body_bytes) if _has_body(request) else {}
    obj = _body(raw, {"max": "optional", "lease": "optional", "wait": "optional", "worker": "optional"})
    most = int(_number(obj, "max", 1, MAX_CLAIM, 1, integer=True))
    lease_s = _number(obj, "lease", 0.05, MAX_LEASE_S, app.settings.visibility_timeout)
    wait_s = _number(obj, "wait", 0, MAX_WAIT_S, 0)
    if "worker" in obj and not isinstance(obj["worker"], str | None):
        raise InvalidInput("invalid worker", {"worker": "must be a string"})
    lease_ms = round(lease_s * 1000)
    deadline = time.monotonic() + wait_s
    while True:
        batch = await app.backend.claim(queue, most, lease_ms, external=True)
        if batch.jobs or time.monotonic() >= deadline:
            break
        # The same notice in-process workers wait for; a short cap in case one is missed.
        await app.backend.wait_for_work(min(1.0, max(0.0, deadline - time.monotonic())))
    expires = batch.now_ms + lease_ms
    if batch.jobs:
        app.metrics.external_claims.labels(queue).inc(len(batch.jobs))
    return JSONResponse({"jobs": [_with_lease(c.job, c.token, expires) for c in batch.jobs]})


def _has_body(request: Request) -> bool:
    return request.headers.get("content-length") not in (None, "0") or "transfer-encoding" in request.headers


async def _job(request: Request) -> Job:
    app = gotaskq_app(request)
    job = await app.backend.get_job(validate_job_id(request.path_params["id"]))
    if job is None:
        raise JobNotFound(f"job {request.path_params['id']} not found")
    return job


async def heartbeat(request: Request) -> Response:
    app = gotaskq_app(request)
    fields = {"lease_token": "required", "lease": "optional"}
    obj = _body(await read_json(request, app.settings.max_body_bytes), fields)
    token = _token(obj)
    job = await _job(request)
    default_s = (job.lease_ms or app.settings.visibility_timeout * 1000) / 1000
    lease_ms = round(_number(obj, "lease", 0.05, MAX_LEASE_S, default_s) * 1000)
    (held,) = await app.backend.extend_leases(job.queue, [(job.id, token)], lease_ms)
    if not held:
        raise StaleLease(f"lease on job {job.id} is no longer held")
    return JSONResponse({"lease_expires_at": iso_ms(int(time.time() * 1000) + lease_ms)})


async def complete(request: Request) -> Response:
    app = gotaskq_app(request)
    obj = _body(
        await read_json(request, app.settings.max_body_bytes), {"lease_token": "required", "result": "optional"}
    )
    token = _token(obj)
    job = await _job(request)
    result = bounded_result(obj.get("result"))
    (done,) = await app.backend.complete(job.queue, [Completion.of(job, token, result)])
    if not done:
        raise StaleLease(f"lease on job {job.id} is no longer held")
    app.metrics.processed.labels(job.queue, "done").inc()
    try:
        return JSONResponse((await _job(request)).to_dict())
    except GotaskqError:
        # Applied: the answer must say so even if the re-read fails (else a retry gets 409).
        now = int(time.time() * 1000)
        finished = replace(job, status=JobStatus.DONE, result=orjson.loads(result), finished_at=now, updated_at=now)
        return JSONResponse(finished.to_dict())


async def fail(request: Request) -> Response:
    app = gotaskq_app(request)
    fields = {"lease_token": "required", "error": "required", "traceback": "optional", "retry": "optional"}
    obj = _body(await read_json(request, app.settings.max_body_bytes), fields)
    token = _token(obj)
    error, trace, retry = obj.get("error"), obj.get("traceback"), obj.get("retry", True)
    errs = {}
    if not isinstance(error, str) or not error:
        errs["error"] = "must be a non-empty string"
    if trace is not None and not isinstance(trace, str):
        errs["traceback"] = "must be a string"
    if not isinstance(retry, bool):
        errs["retry"] = "must be true or false"
    if errs:
        raise InvalidInput("invalid body: " + ", ".join(sorted(errs)), errs)
    job = await _job(request)
    s = app.settings
    delay_ms = int(retry_delay(job.attempts, s.base_delay, s.max_delay) * 1000)
    out = await app.backend.fail(
        job,
        token,
        str(error)[:MAX_ERROR_TEXT],
        delay_ms,
        None if trace is None else trace[-MAX_TRACEBACK_CHARS:],
        retry,
    )
    app.metrics.processed.labels(job.queue, "dead" if out.status.value == "DEAD" else "failed").inc()
    return JSONResponse((await _job(request)).to_dict())


routes = [
    route("/queue/{name}/claim", Area.WORKER, {"POST": claim}),
    route("/jobs/{id}/heartbeat", Area.WORKER, {"POST": heartbeat}),
    route("/jobs/{id}/complete", Area.WORKER, {"POST": complete}),
    route("/jobs/{id}/fail", Area.WORKER, {"POST": fail}),
]
