"""Exceptions of gotaskq and the one table that maps Lua return codes onto them."""

from __future__ import annotations

from enum import IntEnum


class GotaskqError(Exception):
    """Base class of every error gotaskq raises on purpose."""

    code = "error"


class InvalidInput(GotaskqError, ValueError):
    code = "invalid"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class QueueNotFound(GotaskqError):
    code = "queue_not_found"


class JobNotFound(GotaskqError):
    code = "job_not_found"


class ScheduleNotFound(GotaskqError):
    code = "schedule_not_found"


class InvalidTransition(GotaskqError):
    """The job exists but is not in a state that allows the requested move."""

    code = "invalid_state"

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class StaleLease(GotaskqError):
    """The caller's lease token is no longer the job's current one: its write is refused."""

    code = "stale_lease"


class QueueNotExternal(GotaskqError):
    """External workers claim only from queues created or set with "external": true."""

    code = "queue_not_external"


class QueueBusy(GotaskqError):
    """The queue cannot be deleted while a job of it runs."""

    code = "queue_busy"


class QueueFull(GotaskqError):
    """Backpressure: the queue holds MAX_QUEUE_DEPTH waiting jobs."""

    code = "queue_full"


class IdempotencyConflict(GotaskqError):
    """The idempotency key was already used for a different job body."""

    code = "idempotency_conflict"

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class BackendUnavailable(GotaskqError):
    code = "backend_unavailable"


class ConfigError(GotaskqError):
    code = "config"


class Code(IntEnum):
    """Return codes of the Lua scripts (and of the memory backend's twin functions)."""

    OK = 0
    JOB_NOT_FOUND = -1
    WRONG_STATE = -2
    STALE_LEASE = -3
    QUEUE_NOT_FOUND = -4
    QUEUE_FULL = -5
    DUPLICATE = -6  # idempotency key matched: not an error, the existing id is returned
    ID_TAKEN = -7
    QUEUE_BUSY = -8
    NOT_EXTERNAL = -9
    EXTERNAL = -10  # an in-process claim on a queue served by external workers


def raise_for_code(code: int, job_id: str = "", status: str | None = None) -> None:
    """Raise the exception for a negative script code; do nothing for OK/DUPLICATE."""
    try:
        c = Code(code)
    except ValueError:
        raise GotaskqError(f"unexpected script code {code!r}") from None
    if c in (Code.OK, Code.DUPLICATE):
        return
    if c is Code.JOB_NOT_FOUND:
        raise JobNotFound(f"job {job_id} not found")
    if c is Code.WRONG_STATE:
        raise InvalidTransition(f"job {job_id} is {status or 'in another state'}", status)
    if c is Code.STALE_LEASE:
        raise StaleLease(f"lease on job {job_id} is no longer held")
    if c is Code.QUEUE_NOT_FOUND:
        raise QueueNotFound("queue not found")
    if c is Code.QUEUE_FULL:
        raise QueueFull("queue is full")
    if c is Code.NOT_EXTERNAL:
        raise QueueNotExternal("this queue is served by gotaskq's own workers (set external: true)")
    if c is Code.QUEUE_BUSY:
        raise QueueBusy("a job of the queue is running")
    if c is Code.ID_TAKEN:
        raise GotaskqError(f"job id {job_id} already exists")
