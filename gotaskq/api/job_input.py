"""The JSON job request, turned into a validated NewJob by the one table of its fields
(gotaskq.job.JOB_REQUEST_FIELDS, which /openapi.json is derived from too)."""

from __future__ import annotations

from typing import Any

from ..app import App
from ..errors import InvalidInput
from ..job import JOB_FIELDS_BY_NAME, NewJob, job_from_fields, rfc3339_seconds
from .body import contains_out_of_range
from .errors import invalid_json

__all__ = ["JOB_FIELDS", "MAX_BATCH", "job_from_json", "jobs_from_batch", "rfc3339_seconds"]

JOB_FIELDS = frozenset(JOB_FIELDS_BY_NAME)
MAX_BATCH = 1000
MAX_UNKNOWN_REPORTED = 20
MAX_KEY_REPORTED = 64


def job_from_json(app: App, obj: object, where: str = "") -> NewJob:
    """Validate one job object; InvalidInput names each bad field (prefixed by ``where``)."""
    if not isinstance(obj, dict):
        raise InvalidInput("a job must be a JSON object", {where or "body": "must be a JSON object"})
    settings = app.settings
    try:
        return job_from_fields(obj, settings.max_retries, settings.job_timeout)
    except InvalidInput as exc:
        errs = exc.fields
    if "payload" in errs and contains_out_of_range(obj.get("payload")):
        raise invalid_json("payload holds a number outside the range of a double") from None
    fields: dict[str, str] = {}
    unknown = 0
    for name, message in errs.items():
        if name not in JOB_FIELDS:
            unknown += 1
            if unknown > MAX_UNKNOWN_REPORTED:
                continue
            name = name[:MAX_KEY_REPORTED]
        fields[f"{where}.{name}" if where else name] = message
    raise InvalidInput("invalid job: " + ", ".join(sorted(fields)), fields)


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


def _unknown_fields(obj: dict[str, Any], known: frozenset[str]) -> dict[str, str]:
    unknown = [k for k in obj if k not in known][:MAX_UNKNOWN_REPORTED]
    return {k[:MAX_KEY_REPORTED]: "unknown field" for k in unknown}
