"""Cursor pagination shared by both backends: newest first, stable under concurrent inserts.

A cursor is ``<queue>:<score>:<id>`` of the last job returned; the next page holds the jobs
that order strictly after it, ordering by (score, id) descending.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..errors import InvalidInput
from ..job import QUEUE_NAME_RE, Job
from .base import Page, QueueInfo


def encode_cursor(queue: str, last: tuple[float, int]) -> str:
    return f"{queue}:{int(last[0])}:{last[1]}"


def decode_cursor(cursor: str | None, queue: str) -> tuple[float, int] | None:
    """The (score, id) to continue after, for ``queue``; None starts from the top."""
    if cursor is None or cursor == "":
        return None
    parsed = parse_cursor(cursor)
    if parsed[0] != queue:
        return None
    return parsed[1], parsed[2]


def parse_cursor(cursor: str) -> tuple[str, int, int]:
    parts = cursor.rsplit(":", 2)
    try:
        if len(parts) != 3 or not QUEUE_NAME_RE.fullmatch(parts[0]):
            raise ValueError
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        raise InvalidInput("invalid cursor", {"cursor": "not a cursor this server returned"}) from None


class _DeadLister(Protocol):
    async def list_queues(self) -> list[str]: ...
    async def queue_infos(self, names: Sequence[str]) -> list[QueueInfo]: ...
    async def list_dead(self, queue: str | None, limit: int, cursor: str | None) -> Page: ...


async def all_queues_page(backend: _DeadLister, limit: int, cursor: str | None) -> Page:
    """Dead jobs of every queue: queues in name order, each newest first. The queues' DLQ sizes
    are read at once first (one pipeline, every Cluster primary in parallel): only queues with
    dead jobs are paged."""
    queues = [i.name for i in await backend.queue_infos(await backend.list_queues()) if i.dead]
    start_queue = parse_cursor(cursor)[0] if cursor else None
    jobs: list[Job] = []
    for name in queues:
        if start_queue is not None and name < start_queue:
            continue
        page = await backend.list_dead(name, limit - len(jobs), cursor if name == start_queue else None)
        jobs.extend(page.jobs)
        if len(jobs) >= limit:
            if page.next_cursor is not None:
                return Page(jobs, page.next_cursor)
            later = [q for q in queues if q > name]
            return Page(jobs, f"{later[0]}:{2**62}:0" if later and await _has_dead(backend, later) else None)
    return Page(jobs, None)


async def _has_dead(backend: _DeadLister, queues: list[str]) -> bool:
    for q in queues:
        if (await backend.list_dead(q, 1, None)).jobs:
            return True
    return False
