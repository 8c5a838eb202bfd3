"""The job value type, the request to create one, and their validation and JSON shapes."""

from __future__ import annotations

import functools
import hashlib
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, TypedDict

import orjson

from .errors import InvalidInput
from .states import JobStatus

QUEUE_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
JOB_ID_RE = re.compile(r"[0-9]{1,20}")
TYPE_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
MAX_PRIORITY = 10
MAX_RETRIES_LIMIT = 100
MAX_IDEMPOTENCY_KEY = 255
MAX_DELAY_MS = 366 * 24 * 3600 * 1000  # a year and a day: later than that is a mistake
MAX_TIMEOUT_S = 24 * 3600.0
MAX_ERROR_CHARS = 2000
MAX_ERROR_HISTORY = 10
MAX_RESULT_BYTES = 64 * 1024

JSONValue = Any  # any value orjson can serialise; kept as an alias so signatures say what they mean


def now_ms() -> int:
    return int(time.time() * 1000)


@functools.lru_cache(maxsize=256)
def _iso_second(secs: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))


_last_iso: tuple[int, str] = (-1, "")


def iso_ms(ms: int | None) -> str | None:
    """Fixed-width RFC 3339 UTC with milliseconds: 2026-11-22T11:45:00.123Z."""
    global _last_iso
    if ms is None:
        return None
    last_ms, last = _last_iso  # a fresh job's created_at and updated_at; every job of a batch
    if ms == last_ms:
        return last
    secs, millis = divmod(ms, 1000)
    text = f"{_iso_second(secs)}.{millis:03d}Z"
    _last_iso = (ms, text)
    return text


def validate_queue_name(name: object) -> str:
    if not isinstance(name, str) or not QUEUE_NAME_RE.fullmatch(name):
        raise InvalidInput(
            "queue name must be 1-64 characters of A-Z a-z 0-9 _ . -",
            {"queue": "invalid queue name"},
        )
    return name


def validate_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not JOB_ID_RE.fullmatch(job_id):
        raise InvalidInput("job id must be a decimal integer", {"id": "invalid job id"})
    return job_id


class JobDict(TypedDict):
    id: str
    queue: str
    type: str
    payload: JSONValue
    priority: int
    status: str
    attempts: int
    max_retries: int
    timeout: float
    run_at: str | None
    idempotency_key: str | None
    last_error: str | None
    errors: list[dict[str, Any]]
    result: JSONValue
    created_at: str | None
    updated_at: str | None
    started_at: str | None
    finished_at: str | None


@dataclass(slots=True)
class Job:
    """One job as stored. Times are epoch milliseconds; ``lease`` is the fencing token."""

    id: str
    queue: str
    type: str
    payload: JSONValue
    priority: int
    status: JobStatus
    attempts: int
    max_retries: int
    timeout: float
    run_at: int | None = None
    idempotency_key: str | None = None
    last_error: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    result: JSONValue = None
    created_at: int = 0
    updated_at: int = 0
    started_at: int | None = None
    finished_at: int | None = None
    lease: int = 0

    def to_dict(self) -> JobDict:
        return {
            "id": self.id,
            "queue": self.queue,
            "type": self.type,
            "payload": self.payload,
            "priority": self.priority,
            "status": self.status._value_,  # .value is a Python-level property
            "attempts": self.attempts,
            "max_retries": self.max_retries,
            "timeout": self.timeout,
            "run_at": iso_ms(self.run_at),
            "idempotency_key": self.idempotency_key,
            "last_error": self.last_error,
            "errors": self.errors,
            "result": self.result,
            "created_at": iso_ms(self.created_at),
            "updated_at": iso_ms(self.updated_at),
            "started_at": iso_ms(self.started_at),
            "finished_at": iso_ms(self.finished_at),
        }


@dataclass(frozen=True)
class NewJob:
    """A request to enqueue a job; build it with ``NewJob.build`` so it is validated.

    Frozen, without slots: ``build`` fills the instance dict in one call, a third of what a
    frozen dataclass ``__init__`` costs (one object.__setattr__ a field: 1 us of every job).
    """

    type: str
    payload: JSONValue
    payload_json: bytes
    queue: str
    priority: int
    delay_ms: int
    run_at_ms: int | None
    max_retries: int
    timeout: float
    idempotency_key: str | None

    @classmethod
    def build(
        cls,
        type: str,
        payload: JSONValue = None,
        *,
        queue: str = "default",
        priority: int = 0,
        delay: float = 0,
        run_at: float | None = None,
        max_retries: int = 3,
        timeout: float = 300.0,
        idempotency_key: str | None = None,
    ) -> NewJob:
        """Validate every field; raise ``InvalidInput`` naming each bad one.

        ``delay`` is in seconds from now; ``run_at`` is epoch seconds (not with ``delay``).
        """
        errs: dict[str, str] = {}
        if not isinstance(type, str) or not TYPE_RE.fullmatch(type):
            errs["type"] = "must be 1-128 characters of A-Z a-z 0-9 _ . : -"
        if not isinstance(queue, str) or not QUEUE_NAME_RE.fullmatch(queue):
            errs["queue"] = "must be 1-64 characters of A-Z a-z 0-9 _ . -"
        if not _is_int(priority) or not 0 <= priority <= MAX_PRIORITY:
            errs["priority"] = f"must be an integer from 0 to {MAX_PRIORITY}"
        delay_ms = 0
        if not _is_number(delay) or delay < 0 or delay * 1000 > MAX_DELAY_MS:
            errs["delay"] = "must be a number of seconds from 0 to 31622400"
        else:
            delay_ms = math.ceil(delay * 1000)
        run_at_ms: int | None = None
        if run_at is not None:
            if delay:
                errs["run_at"] = "give either run_at or delay, not both"
            elif not _is_number(run_at) or not 0 <= run_at * 1000 <= now_ms() + MAX_DELAY_MS:
                errs["run_at"] = "must be a time within the next 366 days"
            else:
                run_at_ms = int(run_at * 1000)
        if not _is_int(max_retries) or not 0 <= max_retries <= MAX_RETRIES_LIMIT:
            errs["max_retries"] = f"must be an integer from 0 to {MAX_RETRIES_LIMIT}"
        if not _is_number(timeout) or not 0.001 <= timeout <= MAX_TIMEOUT_S:
            errs["timeout"] = "must be a number of seconds from 0.001 to 86400"
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY
        ):
            errs["idempotency_key"] = "must be a string of 1 to 255 characters"
        payload_json = b"null"
        try:
            payload_json = orjson.dumps(payload)
        except (TypeError, orjson.JSONEncodeError):
            errs["payload"] = "must be a JSON value"
        if errs:
            raise InvalidInput("invalid job: " + ", ".join(sorted(errs)), errs)
        job = object.__new__(cls)
        job.__dict__.update(
            type=type,
            payload=payload,
            payload_json=payload_json,
            queue=queue,
            priority=int(priority),
            delay_ms=delay_ms,
            run_at_ms=run_at_ms,
            max_retries=int(max_retries),
            timeout=float(timeout),
            idempotency_key=idempotency_key,
        )
        return job

    def fingerprint(self) -> str:
        """What makes two requests 'the same job' for idempotency (the key itself excluded)."""
        body = (
            orjson.dumps(
                [self.type, self.queue, self.priority, self.delay_ms, self.run_at_ms, self.max_retries, self.timeout],
            )
            + self.payload_json
        )
        return hashlib.blake2b(body, digest_size=12).hexdigest()


def _is_int(v: object) -> bool:
    return type(v) is int or (isinstance(v, int) and not isinstance(v, bool))


def _is_number(v: object) -> bool:
    if _is_int(v):
        return abs(v) < 2**63  # type: ignore[arg-type]  # also keeps math.isfinite off huge ints
    return isinstance(v, float) and math.isfinite(v)


def error_entry(attempt: int, message: str, at_ms: int) -> dict[str, Any]:
    return {"attempt": attempt, "error": message[:MAX_ERROR_CHARS], "at": iso_ms(at_ms)}


def bounded_result(value: JSONValue) -> bytes:
    """Serialise a handler's return value, replacing it by a marker when too big or not JSON."""
    try:
        raw = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps({"unserializable": repr(value)[:200]})
    if len(raw) > MAX_RESULT_BYTES:
        return orjson.dumps({"truncated": True, "bytes": len(raw)})
    return raw
