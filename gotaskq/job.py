"""The job value type, the request to create one, and their validation and JSON shapes."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import operator
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, TypedDict

import orjson

from .errors import InvalidInput
from .states import JobStatus

QUEUE_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
JOB_ID_RE = re.compile(r"[0-9]{1,20}")
TYPE_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
MAX_PRIORITY = 10
MAX_RETRIES_LIMIT = 100
MAX_IDEMPOTENCY_KEY = 255
MAX_DELAY_S = 366 * 24 * 3600  # a year and a day: later than that is a mistake
MAX_DELAY_MS = MAX_DELAY_S * 1000
MIN_TIMEOUT_S = 0.001
MAX_TIMEOUT_S = 24 * 3600.0
MAX_ERROR_CHARS = 2000
MAX_ERROR_HISTORY = 10
MAX_TRACEBACK_CHARS = 4000
MAX_RESULT_BYTES = 64 * 1024
MAX_REMEMBERED_NAMES = 4096  # per pattern field (type, queue): valid values remembered

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
    progress: dict[str, Any] | None


class ProgressReporter(Protocol):
    """Where a running job's progress goes: one per worker, shared by every job it runs (a
    callable made per job was ~3 % of a no-op job's instructions)."""

    loop: asyncio.AbstractEventLoop  # the worker's loop, for reports from a sync handler's thread

    async def report(self, job: Job, percent: float, message: str | None) -> dict[str, Any] | None:
        """Store a report on the job's current lease (``job.lease``); the entry, or None when the
        lease is gone."""
        ...


MAX_PROGRESS_MESSAGE = 500


def progress_entry(percent: object, message: object, at_ms: int) -> dict[str, Any]:
    """A validated progress report: percent 0..100, an optional message (bounded)."""
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 <= percent <= 100:
        raise InvalidInput("progress percent must be a number from 0 to 100", {"percent": "must be 0..100"})
    if message is not None and not isinstance(message, str):
        raise InvalidInput("progress message must be text", {"message": "must be a string or None"})
    return {
        "percent": percent,
        "message": None if message is None else message[:MAX_PROGRESS_MESSAGE],
        "at": iso_ms(at_ms),
    }


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
    # {"percent", "message", "at"}: the last progress the handler reported (JSON "progress")
    progress_info: dict[str, Any] | None = None
    lease_ms: int | None = None  # an external worker's lease length: its heartbeats' default
    # Set by the worker for the handler it runs: where progress reports go.
    reporter: ProgressReporter | None = field(default=None, repr=False, compare=False)

    async def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress from a running async handler: ``await job.progress(40, "step 2 of 5")``."""
        if self.reporter is None:
            raise RuntimeError("progress can be reported only by a handler the worker is running")
        entry = await self.reporter.report(self, percent, message)
        if entry is not None:
            self.progress_info = entry

    def progress_sync(self, percent: float, message: str | None = None) -> None:
        """Report progress from a sync handler (it runs in one of the worker's threads)."""
        if self.reporter is None:
            raise RuntimeError("progress can be reported only by a handler the worker is running")
        fut = asyncio.run_coroutine_threadsafe(self.reporter.report(self, percent, message), self.reporter.loop)
        entry = fut.result(timeout=30)
        if entry is not None:
            self.progress_info = entry

    def copy(self) -> Job:
        """A shallow copy, as ``dataclasses.replace(job)`` makes: 0.55 us against its 3.0 (it
        looks the fields up on every call). The in-memory backend hands out one per job read."""
        return type(self)(*_job_values(self))

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
            "progress": self.progress_info,
        }


_job_values = operator.attrgetter(*(f.name for f in fields(Job)))  # every field, in __init__'s order


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
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        run_at: float | str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> NewJob:
        """Validate every field against JOB_REQUEST_FIELDS; raise ``InvalidInput`` naming each bad one.

        ``delay`` is in seconds from now; ``run_at`` is epoch seconds or RFC 3339 (not with a
        non-zero ``delay``). None means the default, as null does in JSON.
        """
        return job_from_fields(
            {
                "type": type,
                "payload": payload,
                "queue": queue,
                "priority": priority,
                "delay": delay,
                "run_at": run_at,
                "max_retries": max_retries,
                "timeout": timeout,
                "idempotency_key": idempotency_key,
            }
        )

    def fingerprint(self) -> str:
        """What makes two requests 'the same job' for idempotency (the key itself excluded)."""
        body = (
            orjson.dumps(
                [self.type, self.queue, self.priority, self.delay_ms, self.run_at_ms, self.max_retries, self.timeout],
            )
            + self.payload_json
        )
        return hashlib.blake2b(body, digest_size=12).hexdigest()


# -- what a job request may contain: one table, for the validation and for /openapi.json ------------


class Refusal:
    """What a field check returns for a value it refuses: the 422 message naming the rule."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"Refusal({self.message!r})"


Check = Callable[[Any], Any]  # the value as the job keeps it, or a Refusal


@dataclass(frozen=True, slots=True)
class JobField:
    """One field of a job request. ``check`` (derived from the rest) is what the server runs;
    gotaskq.api.openapi derives the JobRequest schema from the same attributes.

    ``kind``: string, integer (integral numbers: 7.0 is 7), number, time (RFC 3339 or epoch
    seconds, at most ``maximum`` seconds after now), or any (a JSON value). Every optional
    field takes null for "not given": its default applies. The checked value is kept in the
    NewJob attribute ``attr``: seconds of a time, or of a number with ``attr`` ``*_ms``, as
    integer milliseconds (a delay rounded up, a time down).
    """

    name: str
    kind: str
    description: str
    message: str
    required: bool = False
    default: JSONValue = None  # the JSON default, when it is not a setting
    default_setting: str | None = None  # the environment setting that gives the default
    minimum: float | None = None
    maximum: float | None = None
    pattern: re.Pattern[str] | None = None
    min_length: int | None = None
    max_length: int | None = None
    attr: str = ""  # the NewJob attribute; the name when empty
    check: Check = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attr", self.attr or self.name)
        object.__setattr__(self, "check", _make_check(self))


def _make_check(f: JobField) -> Check:
    bad = Refusal(f.message)
    lo = -math.inf if f.minimum is None else f.minimum
    hi = math.inf if f.maximum is None else f.maximum
    if f.kind == "string" and f.pattern is not None:
        fullmatch = f.pattern.fullmatch
        seen: set[str] = set()  # the names that matched: a set lookup is a tenth of a regex match

        def check_pattern(v: Any) -> Any:
            if type(v) is str and v in seen:
                return v
            if isinstance(v, str) and fullmatch(v):
                if len(seen) < MAX_REMEMBERED_NAMES and type(v) is str:
                    seen.add(v)
                return v
            return bad

        return check_pattern
    if f.kind == "string":
        shortest, longest = f.min_length or 0, f.max_length or math.inf

        def check_string(v: Any) -> Any:
            return v if isinstance(v, str) and shortest <= len(v) <= longest else bad

        return check_string
    if f.kind == "integer":

        def check_integer(v: Any) -> Any:
            # JSON has one number type: 7.0 is the integer 7 (as JSON Schema says); 7.5 is not.
            if type(v) is int:
                return v if lo <= v <= hi else bad
            if isinstance(v, int) and not isinstance(v, bool):
                return int(v) if lo <= v <= hi else bad
            if isinstance(v, float) and v.is_integer() and lo <= v <= hi:
                return int(v)
            return bad

        return check_integer
    if f.kind == "number" and f.attr.endswith("_ms"):

        def check_ms(v: Any) -> Any:
            if (type(v) is float or type(v) is int) and lo <= v <= hi:
                return math.ceil(v * 1000)
            if isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi:
                return math.ceil(float(v) * 1000)
            return bad

        return check_ms
    if f.kind == "number":

        def check_number(v: Any) -> Any:
            # NaN fails both comparisons; an int of any size compares exactly with the bounds.
            if type(v) is float:
                return v if lo <= v <= hi else bad
            if isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi:
                return float(v)
            return bad

        return check_number
    if f.kind == "time":
        bad_text = Refusal("must be an RFC 3339 time with an offset, or epoch seconds")

        def check_time(v: Any) -> Any:
            if isinstance(v, str):
                try:
                    v = rfc3339_seconds(v)
                except ValueError:
                    return bad_text
            elif not isinstance(v, int | float) or isinstance(v, bool):
                return bad
            return int(v * 1000) if lo <= v <= run_at_horizon() else bad

        return check_time
    if f.kind == "any":
        return lambda v: v  # orjson.dumps decides (job_from_fields)
    raise ValueError(f"unknown kind {f.kind!r}")


RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def rfc3339_seconds(text: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp; ValueError when it is not one."""
    if not RFC3339_RE.fullmatch(text):
        raise ValueError(text)
    try:
        return datetime.fromisoformat(text.upper()).timestamp()
    except OverflowError:
        raise ValueError(text) from None


def run_at_horizon() -> float:
    """The latest run_at accepted now, in epoch seconds: MAX_DELAY_S from now."""
    return (now_ms() + MAX_DELAY_MS) / 1000


DEFAULT_QUEUE = "default"
DEFAULT_MAX_RETRIES = 3  # as NewJob.build's; App.new_job takes MAX_RETRIES and JOB_TIMEOUT instead
DEFAULT_TIMEOUT = 300.0
JOB_REQUEST_FIELDS: tuple[JobField, ...] = (
    JobField(
        "type",
        "string",
        "The job type: which handler runs it",
        "must be 1-128 characters of A-Z a-z 0-9 _ . : -",
        required=True,
        pattern=TYPE_RE,
    ),
    JobField("payload", "any", "Any JSON value, handed to the handler", "must be a JSON value"),
    JobField(
        "queue",
        "string",
        "The queue to put the job on",
        "must be 1-64 characters of A-Z a-z 0-9 _ . -",
        default=DEFAULT_QUEUE,
        pattern=QUEUE_NAME_RE,
    ),
    JobField(
        "priority",
        "integer",
        "Higher is claimed first",
        f"must be an integer from 0 to {MAX_PRIORITY}",
        default=0,
        minimum=0,
        maximum=MAX_PRIORITY,
    ),
    JobField(
        "delay",
        "number",
        "Seconds from now before the job may run",
        f"must be a number of seconds from 0 to {MAX_DELAY_S}",
        default=0,
        minimum=0,
        maximum=MAX_DELAY_S,
        attr="delay_ms",
    ),
    JobField(
        "run_at",
        "time",
        f"When the job may run: RFC 3339 with an offset, or epoch seconds; from 1970 to {MAX_DELAY_S} s"
        " (366 days) after now; a past time runs now. Not with a non-zero delay",
        f"must be a time within the next {MAX_DELAY_MS // 86_400_000} days",
        minimum=0,
        maximum=MAX_DELAY_S,  # seconds after now (see run_at_horizon)
        attr="run_at_ms",
    ),
    JobField(
        "max_retries",
        "integer",
        "Retries after the first attempt",
        f"must be an integer from 0 to {MAX_RETRIES_LIMIT}",
        default_setting="MAX_RETRIES",
        minimum=0,
        maximum=MAX_RETRIES_LIMIT,
    ),
    JobField(
        "timeout",
        "number",
        "Seconds an attempt may run",
        f"must be a number of seconds from {MIN_TIMEOUT_S} to {MAX_TIMEOUT_S:.0f}",
        default_setting="JOB_TIMEOUT",
        minimum=MIN_TIMEOUT_S,
        maximum=MAX_TIMEOUT_S,
    ),
    JobField(
        "idempotency_key",
        "string",
        "A second request with the same key and job answers the first job (200); another job, 409",
        f"must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY,
    ),
)
JOB_FIELDS_BY_NAME = MappingProxyType({f.name: f for f in JOB_REQUEST_FIELDS})
_CHECKS = {f.name: (f.attr, f.check) for f in JOB_REQUEST_FIELDS}  # a dict: MappingProxyType.get is slower
_DEFAULTS: dict[str, Any] = {
    **{f.attr: f.default for f in JOB_REQUEST_FIELDS if not f.required},
    "payload_json": b"null",
}
RUN_AT_WITH_DELAY = "give either run_at or delay, not both"


def job_from_fields(
    values: Mapping[str, Any],
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
) -> NewJob:
    """A NewJob from request fields, each checked by its JobField; null (None) means the default.

    Raises ``InvalidInput`` whose fields name each bad field, and each unknown one.
    """
    errs: dict[str, str] = {}
    job = object.__new__(NewJob)
    kept = job.__dict__  # filled in place: what a frozen dataclass __init__ would set
    kept.update(_DEFAULTS)
    kept["max_retries"] = max_retries
    kept["timeout"] = timeout
    for name, value in values.items():
        entry = _CHECKS.get(name)
        if entry is None:
            errs[name] = "unknown field"
        elif value is not None or name == "type":  # null: the default (type has none)
            v = entry[1](value)
            if type(v) is Refusal:
                errs[name] = v.message
            else:
                kept[entry[0]] = v
    if "type" not in kept and "type" not in errs:
        errs["type"] = "is required"
    if kept["run_at_ms"] is not None and kept["delay_ms"]:
        errs["run_at"] = RUN_AT_WITH_DELAY
    if kept["payload"] is not None:
        try:
            kept["payload_json"] = orjson.dumps(kept["payload"])
        except (TypeError, orjson.JSONEncodeError):
            errs["payload"] = "must be a JSON value"
    if errs:
        raise InvalidInput("invalid job: " + ", ".join(sorted(errs)), errs)
    return job


def error_entry(attempt: int, message: str, at_ms: int, traceback: str | None = None) -> dict[str, Any]:
    """One entry of a job's ``errors``: the traceback keeps its end (where the error was raised)."""
    tb = None if traceback is None else traceback[-MAX_TRACEBACK_CHARS:]
    return {"attempt": attempt, "error": message[:MAX_ERROR_CHARS], "traceback": tb, "at": iso_ms(at_ms)}


def decode_errors(raw: bytes | str | None) -> list[dict[str, Any]]:
    """A stored error history; Lua writes "at" as epoch ms (it has no clock formatting)."""
    if not raw:
        return []
    entries: list[dict[str, Any]] = orjson.loads(raw)
    for e in entries:
        if isinstance(e.get("at"), int):
            e["at"] = iso_ms(e["at"])
        e.setdefault("traceback", None)
    return entries


def bounded_result(value: JSONValue) -> bytes:
    """Serialise a handler's return value, replacing it by a marker when too big or not JSON."""
    if value is None:  # what most handlers return
        return b"null"
    try:
        raw = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps({"unserializable": repr(value)[:200]})
    if len(raw) > MAX_RESULT_BYTES:
        return orjson.dumps({"truncated": True, "bytes": len(raw)})
    return raw
