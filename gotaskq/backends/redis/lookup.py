"""What spans queues: the job id -> queue index, and the set of queues that may have work.

Job keys carry their queue's hash tag, so finding a job by id needs its queue. The index
``gtq:ix:<hour>`` (hour of the id's Snowflake time) maps id -> queue in O(1); it is written in
the same pipeline as, and before, the enqueue script, so every stored job is indexed. Entries of
jobs that are gone (expired DONE jobs, refused enqueues) are pruned a bounded slice at a time.

On a Cluster these global keys live on one primary or another: while that primary is down
(failing over) their writes must not stall the queues on healthy primaries, so there they are
best effort, kept in memory and retried in the background (`Backlog`); until then a job is
found by id only from the process that created it, and its queue is polled via the local list.

``gtq:active`` holds the queues that may have waiting or running jobs, so an idle worker polls
those and not every queue ever created. An enqueue adds its queue after its script ran; a
worker that finds a queue idle removes it, then looks again and puts it back if a job came in
between: an enqueue either lands before that second look (seen) or adds the queue after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from redis import exceptions as rexc

from ... import keys
from ...ids import timestamp_ms
from .codec import text
from .connection import guard

log = logging.getLogger("gotaskq.redis")

CACHE_SIZE = 100_000
PRUNE_LOCK = f"{keys.PREFIX}:ix:pruning"
PRUNE_CURSOR = f"{keys.PREFIX}:ix:cursor"
PRUNE_BATCH = 500
BACKLOG_MAX = 1_000_000  # entries kept for a retry while their node is down
BACKLOG_RETRY_S = 0.5


class Backlog:
    """Global-key writes that failed, retried every BACKLOG_RETRY_S until they succeed."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.index: dict[int, dict[str, str]] = {}  # hour -> id -> queue
        self.active: set[str] = set()
        self._size = 0
        self._task: asyncio.Task[None] | None = None

    def keep(self, index: dict[int, dict[str, str]] | None = None, active: str | None = None) -> None:
        for hour, mapping in (index or {}).items():
            if self._size + len(mapping) > BACKLOG_MAX:
                log.error("dropping %d index entries: the backlog is full (lookups by id will miss them)", len(mapping))
                continue
            self.index.setdefault(hour, {}).update(mapping)
            self._size += len(mapping)
        if active is not None:
            self.active.add(active)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._retry())

    async def _retry(self) -> None:
        while self.index or self.active:
            await asyncio.sleep(BACKLOG_RETRY_S)
            with contextlib.suppress(rexc.RedisError, OSError):
                for hour in list(self.index):
                    mapping = self.index[hour]
                    await self._client.hset(keys.index_key(hour), mapping=mapping)
                    await self._client.sadd(keys.INDEX_HOURS, hour)
                    del self.index[hour]
                    self._size -= len(mapping)
                for queue in list(self.active):
                    await self._client.sadd(keys.ACTIVE, queue)
                    self.active.discard(queue)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def id_hour(job_id: str) -> int:
    return timestamp_ms(int(job_id)) // keys.HOUR_MS


class JobIndex:
    def __init__(self, client: Any, backlog: Backlog | None = None) -> None:
        self._client = client
        self._backlog = backlog
        self._cache: OrderedDict[str, str] = OrderedDict()  # bounded LRU: skips the index read
        self._hours: set[int] = set()  # hours this process already registered in gtq:ix:hours

    def write(self, pipe: Any, queue: str, job_ids: Sequence[str]) -> None:
        """Queue the index writes for ``job_ids`` on ``pipe`` (ahead of the enqueue script)."""
        by_hour: dict[int, dict[str, str]] = {}
        for jid in job_ids:
            by_hour.setdefault(id_hour(jid), {})[jid] = queue
        for hour, mapping in by_hour.items():
            pipe.hset(keys.index_key(hour), mapping=mapping)
            if hour not in self._hours:
                pipe.sadd(keys.INDEX_HOURS, hour)
                self._hours.add(hour)

    async def write_now(self, queue: str, job_ids: Sequence[str]) -> None:
        """The same writes, sent at once (Cluster: the index lives on another node than the job,
        and a down node's share goes to the backlog instead of failing the enqueue)."""
        for jid in job_ids:
            self.remember(jid, queue)
        pipe = self._client.pipeline(transaction=False)
        self.write(pipe, queue, job_ids)
        try:
            await pipe.execute()
        except (rexc.RedisError, OSError) as exc:
            if self._backlog is None:
                raise
            log.warning("index write deferred (%s): %d job(s) of %s", exc, len(job_ids), queue)
            by_hour: dict[int, dict[str, str]] = {}
            for jid in job_ids:
                by_hour.setdefault(id_hour(jid), {})[jid] = queue
            self._backlog.keep(index=by_hour)

    def remember(self, job_id: str, queue: str) -> None:
        self._cache[job_id] = queue
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def cached(self, job_id: str) -> str | None:
        return self._cache.get(job_id)

    async def queue_of(self, job_id: str) -> str | None:
        async with guard():
            q = await self._client.hget(keys.index_key(id_hour(job_id)), job_id)
        return None if q is None else text(q)

    async def forget(self, job_ids: Iterable[str]) -> None:
        by_hour: dict[int, list[str]] = {}
        for jid in job_ids:
            self._cache.pop(jid, None)
            by_hour.setdefault(id_hour(jid), []).append(jid)
        if by_hour:
            async with guard():
                pipe = self._client.pipeline(transaction=False)
                for hour, ids in by_hour.items():
                    pipe.hdel(keys.index_key(hour), *ids)
                await pipe.execute()

    async def prune(self, now_ms: int, budget: int = 2000) -> int:
        """Drop up to ``budget`` entries' worth of checks of jobs that are gone; one process at
        a time (a lock), hours at least two old (an entry is written just before its job)."""
        async with guard():
            if not await self._client.set(PRUNE_LOCK, "1", nx=True, px=30_000):
                return 0
            hours = sorted(int(h) for h in await self._client.smembers(keys.INDEX_HOURS))
            old = [h for h in hours if h <= now_ms // keys.HOUR_MS - 2]
            raw = await self._client.get(PRUNE_CURSOR)
        if not old:
            return 0
        hour, cursor = (int(x) for x in text(raw).split()) if raw else (old[0], 0)
        if hour not in old:
            hour, cursor = next((h for h in old if h > hour), old[0]), 0
        removed = checked = 0
        while checked < budget:
            key = keys.index_key(hour)
            async with guard():
                cursor, entries = await self._client.hscan(key, cursor, count=PRUNE_BATCH)
                pairs = [(text(k), text(v)) for k, v in entries.items()]
                if pairs:
                    pipe = self._client.pipeline(transaction=False)
                    for jid, q in pairs:
                        pipe.exists(keys.job_key(q, jid))
                    gone = [jid for (jid, _), there in zip(pairs, await pipe.execute(), strict=True) if not there]
                    if gone:
                        await self._client.hdel(key, *gone)
                        removed += len(gone)
                checked += len(pairs) + 1
                if cursor == 0:
                    if not await self._client.exists(key):
                        await self._client.srem(keys.INDEX_HOURS, hour)
                    later = [h for h in old if h > hour]
                    if not later:
                        await self._client.delete(PRUNE_CURSOR)
                        return removed
                    hour = later[0]
        async with guard():
            await self._client.set(PRUNE_CURSOR, f"{hour} {cursor}")
        return removed


class ActiveQueues:
    def __init__(self, client: Any, backlog: Backlog | None = None) -> None:
        self._client = client
        self._backlog = backlog
        self.noticed: set[str] = set()  # queues named by wake notices since the last read
        self.known: list[str] = []  # the last list read: used while gtq:active cannot be read

    def add(self, pipe: Any, queue: str) -> None:
        pipe.sadd(keys.ACTIVE, queue)

    async def add_now(self, queue: str) -> None:
        try:
            await self._client.sadd(keys.ACTIVE, queue)
        except (rexc.RedisError, OSError):
            if self._backlog is None:
                raise
            self._backlog.keep(active=queue)

    async def members(self) -> list[str]:
        backlog = self._backlog.active if self._backlog is not None else set()
        try:
            async with guard():
                names = {text(n) for n in await self._client.smembers(keys.ACTIVE)}
        except Exception:
            if self._backlog is None:
                raise
            names = set(self.known)  # its node is down: the queues of the last read go on
        names |= self.noticed | backlog
        self.noticed = set()
        self.known = sorted(names)
        return self.known

    async def mark_idle(self, queue: str) -> None:
        p = keys.queue_prefix(queue)
        async with guard():
            await self._client.srem(keys.ACTIVE, queue)
            pipe = self._client.pipeline(transaction=False)
            for suffix in ("ready", "delayed", "running"):
                pipe.zcard(p + suffix)
            if any(await pipe.execute()):
                await self._client.sadd(keys.ACTIVE, queue)

    async def rebuild(self, queues: Sequence[str]) -> None:
        """Add every queue that holds work (a start-up pass: covers data written before the set existed)."""
        for start in range(0, len(queues), PRUNE_BATCH):
            chunk = queues[start : start + PRUNE_BATCH]
            async with guard():
                pipe = self._client.pipeline(transaction=False)
                for q in chunk:
                    p = keys.queue_prefix(q)
                    for suffix in ("ready", "delayed", "running"):
                        pipe.zcard(p + suffix)
                counts = await pipe.execute()
                busy = [q for i, q in enumerate(chunk) if any(counts[3 * i : 3 * i + 3])]
                if busy:
                    await self._client.sadd(keys.ACTIVE, *busy)
