"""Repeatable schedules: the Schedule value, its validation (one table, also /openapi.json's
ScheduleRequest), and when its next tick is.

A tick is due at ``next_run_ms``. Whoever runs it enqueues the job with the idempotency key
``schedule:<name>:<tick ms>`` and then advances ``next_run_ms`` with a compare-and-set, so any
number of processes make exactly one job per tick; ticks missed while no process ran make one
job (for the oldest), and the schedule resumes at its first tick after now. Cron expressions
follow cron's own rules across DST changes (cronsim), in the schedule's IANA time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from .errors import InvalidInput
from .job import QUEUE_NAME_RE, iso_ms, job_from_fields

MIN_EVERY_S = 0.1
MAX_EVERY_S = 366 * 24 * 3600.0
MAX_CRON_CHARS = 200

# name -> (JSON Schema, what a wrong value is told); "job" is a POST /jobs body
FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "cron": (
        {
            "type": ["string", "null"],
            "format": "cron",
            "maxLength": MAX_CRON_CHARS,
            "description": 'Cron expression (5 fields, or 6 with seconds first), e.g. "*/5 * * * *"',
        },
        "must be a cron expression (5 fields, or 6 with seconds), or null",
    ),
    "every": (
        {
            "type": ["number", "null"],
            "minimum": MIN_EVERY_S,
            "maximum": MAX_EVERY_S,
            "description": "Seconds between ticks (exactly one of cron and every)",
        },
        f"must be seconds from {MIN_EVERY_S} to {MAX_EVERY_S:g}, or null",
    ),
    "timezone": (
        {
            "type": "string",
            "format": "iana-time-zone",
            "default": "UTC",
            "description": "IANA time zone of the cron expression, e.g. Europe/Berlin",
        },
        "must be an IANA time zone name, e.g. Europe/Berlin",
    ),
    "job": (
        {
            "allOf": [
                {"$ref": "#/components/schemas/JobRequest"},
                {"properties": {"run_at": {"type": "null", "description": "not for a repeated job: use delay"}}},
            ]
        },
        "must be a job as POST /jobs takes it (without run_at)",
    ),
    "paused": ({"type": "boolean", "default": False}, "must be true or false"),
}


def request_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["job"],
        "properties": {name: spec for name, (spec, _) in FIELDS.items()},
        "oneOf": [  # exactly one of cron and every
            {
                "required": ["cron"],
                "properties": {"cron": {**FIELDS["cron"][0], "type": "string"}, "every": {"type": "null"}},
            },
            {
                "required": ["every"],
                "properties": {"every": {**FIELDS["every"][0], "type": "number"}, "cron": {"type": "null"}},
            },
        ],
        "description": "A repeatable schedule: exactly one of cron and every",
    }


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    job: dict[str, Any]  # the POST /jobs body, validated
    cron: str | None = None
    every: float | None = None
    timezone: str = "UTC"
    paused: bool = False
    next_run_ms: int | None = None
    last_run_ms: int | None = None
    last_job_id: str | None = None

    def definition(self) -> dict[str, Any]:
        """What PUT set (stored as it is; the run state is kept beside it)."""
        return {
            "name": self.name,
            "cron": self.cron,
            "every": self.every,
            "timezone": self.timezone,
            "job": self.job,
            "paused": self.paused,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.definition(),
            "next_run_at": iso_ms(self.next_run_ms),
            "last_run_at": iso_ms(self.last_run_ms),
            "last_job_id": self.last_job_id,
        }

    def next_after(self, after_ms: int) -> int:
        """The first tick strictly after ``after_ms`` (epoch ms)."""
        if self.every is not None:
            step = max(1, round(self.every * 1000))
            if self.last_run_ms is None:
                return after_ms + step
            ticks = (after_ms - self.last_run_ms) // step + 1  # on the grid of the last tick
            return self.last_run_ms + max(1, ticks) * step
        assert self.cron is not None
        tz = ZoneInfo(self.timezone)
        start = datetime.fromtimestamp(after_ms / 1000, tz).replace(microsecond=0)
        return int(next(iter(CronSim(self.cron, start))).timestamp() * 1000)

    def with_state(self, next_run_ms: int | None, last_run_ms: int | None, last_job_id: str | None) -> Schedule:
        return replace(self, next_run_ms=next_run_ms, last_run_ms=last_run_ms, last_job_id=last_job_id)


def tick_key(name: str, tick_ms: int) -> str:
    """The idempotency key of one tick's job: a tick makes one job, whoever runs it."""
    return f"schedule:{name}:{tick_ms}"


def schedule_from_json(name: str, obj: object, max_retries: int, job_timeout: float) -> Schedule:
    """Validate a PUT /schedules/{name} body; InvalidInput names each bad field."""
    if not isinstance(name, str) or not QUEUE_NAME_RE.fullmatch(name):
        raise InvalidInput("schedule names are like queue names", {"name": "1-64 of A-Z a-z 0-9 _ . -"})
    if not isinstance(obj, dict):
        raise InvalidInput("the body must be a JSON object", {"body": "must be a JSON object"})
    errs = {str(k)[:64]: "unknown field" for k in obj if k not in FIELDS}
    cron, every, tz = obj.get("cron"), obj.get("every"), obj.get("timezone", "UTC")
    if cron is not None and (not isinstance(cron, str) or len(cron) > MAX_CRON_CHARS or not _cron_ok(cron)):
        errs["cron"] = FIELDS["cron"][1]
    if every is not None and (
        isinstance(every, bool) or not isinstance(every, int | float) or not MIN_EVERY_S <= every <= MAX_EVERY_S
    ):
        errs["every"] = FIELDS["every"][1]
    if (cron is None) == (every is None) and "cron" not in errs and "every" not in errs:
        errs["cron"] = errs["every"] = "give exactly one of cron and every"
    if not isinstance(tz, str) or not _zone_ok(tz):
        errs["timezone"] = FIELDS["timezone"][1]
    paused = obj.get("paused", False)
    if not isinstance(paused, bool):
        errs["paused"] = FIELDS["paused"][1]
    job = obj.get("job")
    if not isinstance(job, dict):
        errs["job"] = FIELDS["job"][1]
    else:
        if job.get("run_at") is not None:
            errs["job.run_at"] = "a repeated job cannot have a fixed run_at (use delay)"
        try:
            job_from_fields(job, max_retries, job_timeout)
        except InvalidInput as exc:
            errs.update({f"job.{k}": v for k, v in exc.fields.items()})
    if errs:
        raise InvalidInput("invalid schedule: " + ", ".join(sorted(errs)), errs)
    return Schedule(
        name=name,
        job=dict(job),  # type: ignore[arg-type]
        cron=cron,
        every=None if every is None else float(every),
        timezone=tz,
        paused=paused,
    )


def _cron_ok(expr: str) -> bool:
    try:
        CronSim(expr, datetime(2026, 1, 1))
    except (CronSimError, ValueError):
        return False
    return True


def _zone_ok(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
