"""The JSON job request: its fields and types, turned into a validated NewJob."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ..app import App
from ..errors import InvalidInput
from ..job import NewJob
from .body import contains_out_of_range
from .errors import invalid_json

JOB_FIELDS = frozenset(
    {"type", "payload", "queue", "priority", "delay", "run_at", "max_retries", "timeout", "idempotency_key"}
)
NULL_MEANS_DEFAULT = frozenset({"run_at", "max_retries", "timeout", "idempotency_key"})
MAX_BATCH = 1000
MAX_UNKNOWN_REPORTED = 20
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def job_from_json(app: App, obj: object, where: str = "") -> NewJob:
    """Validate one job object; InvalidInput names each bad field (prefixed by ``where``)."""
    if not isinstance(obj, dict):
        raise InvalidInput("a job must be a JSON object", {where or "body": "must be a JSON object"})
    errs = {} if JOB_FIELDS.issuperset(obj) else _unknown_fields(obj, JOB_FIELDS)
    kw: dict[str, Any] = {
        k: v for k, v in obj.items() if k in JOB_FIELDS and not (v is None and k in NULL_MEANS_DEFAULT)
    }
    if "type" not in kw:
        errs["type"] = "is required"
    if isinstance(kw.get("run_at"), str):
        try:
            kw["run_at"] = rfc3339_seconds(kw["run_at"])
        except ValueError:
            errs["run_at"] = "must be an RFC 3339 time with an offset, or epoch seconds"
    for name in errs:
        kw.pop(name, None)
    kw.setdefault("type", "placeholder")
    try:
        spec = app.new_job(**kw)
    except InvalidInput as exc:
        if "payload" in exc.fields and contains_out_of_range(obj.get("payload")):
            raise invalid_json("payload holds a number outside the range of a double") from None
        errs = {**exc.fields, **errs}
    if errs:
        fields = {_key(where, k): v for k, v in errs.items()}
        raise InvalidInput("invalid job: " + ", ".join(sorted(fields)), fields)
    return spec


def jobs_from_batch(app: App, body: object) -> list[NewJob]:
    """``{"jobs": [...]}`` with 1..MAX_BATCH jobs, validated all or nothing."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", {"body": "must be a JSON object"})
    errs = _unknown_fields(body, frozenset({"jobs"}))
    jobs = body.get("jobs")
    if not isinstance(jobs, list) or not 1 <= len(jobs) <= MAX_BATCH:
        errs["jobs"] = f"must be a list of 1 to {MAX_BATCH} jobs"
        raise InvalidInput("invalid batch", errs)
    specs = []
    for i, item in enumerate(jobs):
        try:
            specs.append(job_from_json(app, item, f"jobs[{i}]"))
        except InvalidInput as exc:
            errs.update(exc.fields)
    if errs:
        raise InvalidInput(f"invalid batch: {len(errs)} invalid fields", errs)
    return specs


def rfc3339_seconds(text: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp; ValueError when it is not one."""
    if not _RFC3339.fullmatch(text):
        raise ValueError(text)
    try:
        return datetime.fromisoformat(text.upper()).timestamp()
    except OverflowError:
        raise ValueError(text) from None


def _unknown_fields(obj: dict[str, Any], known: frozenset[str]) -> dict[str, str]:
    unknown = [k for k in obj if k not in known][:MAX_UNKNOWN_REPORTED]
    return {k[:64]: "unknown field" for k in unknown}


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
