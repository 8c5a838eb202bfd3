"""Path and query parameters: job ids, queue names, page limits."""

from __future__ import annotations

import re

from starlette.requests import Request

from ..errors import InvalidInput, JobNotFound
from ..job import JOB_ID_RE, QUEUE_NAME_RE

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_DIGITS = re.compile(r"[0-9]+")
QUEUE_NAME_RULE = "queue name must be 1-64 characters of A-Z a-z 0-9 _ . -"
# What encode_cursor (gotaskq.backends.paging) writes: <queue>:<score>:<id>.
CURSOR_RE = re.compile(rf"{QUEUE_NAME_RE.pattern}:-?[0-9]{{1,20}}:-?[0-9]{{1,20}}")


def job_id(request: Request) -> str:
    """The ``{id}`` path parameter; anything that is not a decimal id cannot name a job: 404."""
    raw: str = request.path_params["id"]
    # fullmatch: JOB_ID_RE ends in ``$``, which also accepts a trailing newline.
    if not JOB_ID_RE.fullmatch(raw):
        raise JobNotFound("job not found")
    return raw


def queue_name(raw: object) -> str:
    """A valid queue name, or InvalidInput (422) naming ``queue``."""
    # fullmatch: QUEUE_NAME_RE ends in ``$``, which also accepts a trailing newline.
    if not isinstance(raw, str) or not QUEUE_NAME_RE.fullmatch(raw):
        raise InvalidInput(QUEUE_NAME_RULE, {"queue": "invalid queue name"})
    return raw


def path_queue(request: Request) -> str:
    return queue_name(request.path_params["name"])


def optional_queue(request: Request) -> str | None:
    """``?queue=``; absent means every queue (empty is no queue name: 422)."""
    raw = request.query_params.get("queue")
    return None if raw is None else queue_name(raw)


def required_queue(request: Request) -> str:
    raw = request.query_params.get("queue")
    if not raw:
        raise InvalidInput("the queue query parameter is required", {"queue": "is required"})
    return queue_name(raw)


def limit(request: Request) -> int:
    """``?limit=``: 1 or more, capped at MAX_LIMIT; empty or absent means DEFAULT_LIMIT."""
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    n = 0
    if _DIGITS.fullmatch(raw):
        n = MAX_LIMIT if len(raw.lstrip("0")) > 7 else int(raw)
    if n < 1:
        raise InvalidInput("limit must be a positive integer", {"limit": "must be an integer of at least 1"})
    return min(n, MAX_LIMIT)


def cursor(request: Request) -> str | None:
    """``?cursor=``: a next_cursor this server returned; absent or empty means the first page."""
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    if not CURSOR_RE.fullmatch(raw):
        raise InvalidInput("invalid cursor", {"cursor": "not a cursor this server returned"})
    return raw
