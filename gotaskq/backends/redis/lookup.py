"""What spans queues: the job id -> queue index, and the set of queues that may have work.

Job keys carry their queue's hash tag, so finding a job by id needs its queue. One enqueue
call's ids are one unbroken run of one process's Snowflake ids (one node id, minted under one
lock), so the index stores runs, not ids: ``gtq:ix:<node>:<hour>`` is a sorted set of
"first last queue" members scored by where ``first`` falls in that hour. A lookup is one
ZREVRANGEBYSCORE (the run that starts at or before the id) in O(log n), and a bulk enqueue of
100 jobs costs one entry, so the index adds almost nothing to a waiting job's memory. It is
written in the same pipeline as, and before, the enqueue script, so every stored job is
indexed; runs whose jobs are all gone (expired DONE jobs, refused enqueues) are pruned a
bounded slice at a time.

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
import bisect
import contextlib
import logging
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as rexc

from ... import keys
from ...ids import EPOCH_MS, MAX_NODE, MAX_SEQ, NODE_BITS, SEQ_BITS
from .codec import text
from .connection import guard

log = logging.getLogger("gotaskq.redis")

# The id -> queue cache: GENERATIONS dicts of up to GENERATION_SIZE ids each (see RecentIds).
GENERATION_SIZE = 40_000  # below 43,690, where a dict would grow its table to 131,072 slots
GENERATIONS = 3
MAX_RUNS = 200_000  # enqueue calls kept in the cache (each one run of ids: RecentIds.add_run)
PRUNE_LOCK = f"{keys.PREFIX}:ix:pruning"
PRUNE_BATCH = 500
BACKLOG_MAX = 1_000_000  # entries kept for a retry while their node is down
BACKLOG_RETRY_S = 0.5


class Backlog:
    """Global-key writes that failed, retried every BACKLOG_RETRY_S until they succeed."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.index: list[Run] = []
        self.active: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def keep(self, runs: Sequence[Run] = (), active: str | None = None) -> None:
        if len(self.index) + len(runs) > BACKLOG_MAX:
            log.error("dropping %d index entries: the backlog is full (lookups by id will miss them)", len(runs))
        else:
            self.index.extend(runs)
        if active is not None:
            self.active.add(active)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._retry())

    async def _retry(self) -> None:
        while self.index or self.active:
            await asyncio.sleep(BACKLOG_RETRY_S)
            with contextlib.suppress(rexc.RedisError, OSError):
                while self.index:
                    run = self.index[0]
                    await self._client.zadd(run.key, {run.member: run.score})
                    await self._client.sadd(keys.INDEX_HOURS, run.bucket)
                    self.index.pop(0)
                for queue in list(self.active):
                    await self._client.sadd(keys.ACTIVE, queue)
                    self.active.discard(queue)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


SEQ_SHIFT = NODE_BITS + SEQ_BITS
MAX_RUN = 100_000  # ids enumerated per run at most when pruning (a run is one script call's jobs)


@dataclass(frozen=True, slots=True)
class Run:
    """One index entry: a run of ids of one queue, in the bucket (node, hour) where it starts."""

    bucket: str  # "<node>:<hour>"
    score: int
    member: str  # "first last queue"

    @property
    def key(self) -> str:
        return keys.index_key(self.bucket)


def _place(job_id: int) -> tuple[str, int]:
    """The bucket of an id and its score there: (ms into the hour, seq), exact in a double."""
    ms = (job_id >> SEQ_SHIFT) + EPOCH_MS
    hour, into = divmod(ms, keys.HOUR_MS)
    node = (job_id >> SEQ_BITS) & MAX_NODE
    return f"{node}:{hour}", (into << SEQ_BITS) | (job_id & MAX_SEQ)


def runs_of(queue: str, job_ids: Sequence[str]) -> list[Run]:
    """The index entries of one enqueue call's ids (one run; its copy in the next hour's bucket,
    at score 0, when it crosses an hour)."""
    first, last = int(job_ids[0]), int(job_ids[-1])
    member = f"{first} {last} {queue}"
    bucket, score = _place(first)
    runs = [Run(bucket, score, member)]
    last_bucket, _ = _place(last)
    if last_bucket != bucket:
        runs.append(Run(last_bucket, 0, member))
    return runs


def ids_of_run(first: int, last: int) -> list[int]:
    """Every id from ``first`` to ``last`` as one next_many call minted them."""
    out: list[int] = []
    i = first
    while i <= last and len(out) < MAX_RUN:
        out.append(i)
        if i & MAX_SEQ == MAX_SEQ:  # the sequence ran out: the next id is in the next millisecond
            i = (((i >> SEQ_SHIFT) + 1) << SEQ_SHIFT) | (i & (MAX_NODE << SEQ_BITS))
        else:
            i += 1
    return out


class RecentIds:
    """Job id -> queue for the ids this process wrote or found lately (skips the index read;
    on a Cluster, a job whose index write is backlogged is found only here).

    An enqueue call's ids are one run of this process's ids (Snowflake.next_many), so a call is
    one entry, (first, last, queue), in arrays sorted by first: a lookup is a bisect. One dict
    insert per id was ~3 % of a POST /jobs in a py-spy profile of the API. When the list holds
    ``max_runs`` entries its older half is dropped. Ids found by a lookup, one at a time, go
    into plain dicts: new ids into the newest, and when it is full the oldest is dropped whole
    (one OrderedDict of 100,000 ids had to grow its table, and rebuild its order, at 87,381
    ids: ~15 ms in one insert, a stall under load; here no dict grows past GENERATION_SIZE).

    A run's entry also covers the ids of its jobs that are gone (deleted, or never written: an
    idempotent replay, a refused call): a lookup then reads that queue and finds no job, as it
    would through the index. ``discard`` forgets single ids; a run is forgotten when it ages out.
    """

    def __init__(
        self, generation_size: int = GENERATION_SIZE, generations: int = GENERATIONS, max_runs: int = MAX_RUNS
    ) -> None:
        self._size = generation_size
        self._count = generations
        self._max_runs = max_runs
        self.generations: list[dict[str, str]] = [{}]  # newest first
        # the runs, sorted by first id: machine integers, 16 bytes a run (Python ints and a
        # tuple a run were ~100); a run's queue is a reference to one shared name
        self.firsts = array("q")
        self.lasts = array("q")
        self.queues: list[str] = []

    def add(self, job_ids: Sequence[str], queue: str) -> None:
        """Single ids (or any ids): one entry each."""
        newest = self.generations[0]
        if len(newest) + len(job_ids) > self._size:
            newest = {}
            self.generations.insert(0, newest)
            del self.generations[self._count :]
        newest.update(dict.fromkeys(job_ids, queue))

    def add_run(self, first: int, last: int, queue: str) -> None:
        """The ids one next_many call minted, ``first`` to ``last``."""
        if not 0 <= first <= last < 2**63:  # not ids of ours: the arrays hold 64-bit integers
            return
        firsts = self.firsts
        if firsts and first <= firsts[-1]:  # calls answer out of the order their ids were minted
            at = bisect.bisect_left(firsts, first)
            if at < len(firsts) and firsts[at] == first:  # the same call again (Cluster: before and after)
                self.lasts[at] = last
                self.queues[at] = queue
                return
            firsts.insert(at, first)
            self.lasts.insert(at, last)
            self.queues.insert(at, queue)
        else:
            firsts.append(first)
            self.lasts.append(last)
            self.queues.append(queue)
        if len(firsts) > self._max_runs:
            half = len(firsts) // 2
            del firsts[:half]
            del self.lasts[:half]
            del self.queues[:half]

    def get(self, job_id: str) -> str | None:
        for generation in self.generations:
            queue = generation.get(job_id)
            if queue is not None:
                return queue
        if not self.firsts or not (job_id.isascii() and job_id.isdigit()) or len(job_id) > 19:
            return None  # not one of our ids (below 2**63)
        jid = int(job_id)
        at = bisect.bisect_right(self.firsts, jid) - 1
        if at < 0:
            return None
        # a run that borrowed the next millisecond spans other nodes' ids between its two parts
        if jid > self.lasts[at] or (jid ^ self.firsts[at]) >> SEQ_BITS & MAX_NODE:
            return None
        return self.queues[at]

    def discard(self, job_ids: Iterable[str]) -> None:
        for jid in job_ids:
            for generation in self.generations:
                generation.pop(jid, None)

    def clear(self) -> None:
        self.generations = [{}]
        self.firsts, self.lasts, self.queues = array("q"), array("q"), []


class JobIndex:
    def __init__(self, client: Any, backlog: Backlog | None = None) -> None:
        self._client = client
        self._backlog = backlog
        self.recent = RecentIds()
        self._buckets: set[str] = set()  # buckets this process already registered in gtq:ix:hours

    def write(self, pipe: Any, queue: str, job_ids: Sequence[str]) -> None:
        """Queue the index writes for one call's ``job_ids`` on ``pipe`` (ahead of the enqueue script)."""
        for run in runs_of(queue, job_ids):
            pipe.zadd(run.key, {run.member: run.score})
            if run.bucket not in self._buckets:
                pipe.sadd(keys.INDEX_HOURS, run.bucket)
                self._buckets.add(run.bucket)

    async def write_now(self, queue: str, job_ids: Sequence[str]) -> None:
        """The same writes, sent at once (Cluster: the index lives on another node than the job,
        and a down node's share goes to the backlog instead of failing the enqueue)."""
        self.remember_call(job_ids, queue)
        pipe = self._client.pipeline(transaction=False)
        self.write(pipe, queue, job_ids)
        try:
            await pipe.execute()
        except (rexc.RedisError, OSError) as exc:
            if self._backlog is None:
                raise
            log.warning("index write deferred (%s): %d job(s) of %s", exc, len(job_ids), queue)
            self._backlog.keep(runs_of(queue, job_ids))

    def remember(self, job_ids: Sequence[str], queue: str) -> None:
        self.recent.add(job_ids, queue)

    def remember_call(self, job_ids: Sequence[str], queue: str) -> None:
        """The ids of one enqueue call: one run (see RecentIds)."""
        if job_ids:
            self.recent.add_run(int(job_ids[0]), int(job_ids[-1]), queue)

    def cached(self, job_id: str) -> str | None:
        return self.recent.get(job_id)

    async def queue_of(self, job_id: str) -> str | None:
        jid = int(job_id)
        bucket, score = _place(jid)
        async with guard():
            found = await self._client.zrevrangebyscore(keys.index_key(bucket), score, "-inf", start=0, num=1)
        if not found:
            return None
        first, last, queue = text(found[0]).split(" ", 2)
        return queue if int(first) <= jid <= int(last) else None

    def forget(self, job_ids: Iterable[str]) -> None:
        self.recent.discard(job_ids)

    async def forget_call(self, queue: str, job_ids: Sequence[str]) -> None:
        """Drop the index entry of a call the store refused (none of its jobs exist). The cache
        may still hold its run (Cluster: remembered before the write): a lookup of one of its
        ids reads that queue and finds no job, as the index would have answered."""
        self.forget(job_ids)
        async with guard():
            for run in runs_of(queue, job_ids):
                await self._client.zrem(run.key, run.member)

    async def prune(self, now_ms: int, budget: int = 5000) -> int:
        """Drop runs whose jobs are all gone, checking up to ``budget`` jobs; one process at a
        time (a lock), buckets at least two hours old (an entry is written just before its jobs)."""
        async with guard():
            if not await self._client.set(PRUNE_LOCK, "1", nx=True, px=30_000):
                return 0
            buckets = [text(b) for b in await self._client.smembers(keys.INDEX_HOURS)]
        old = sorted(b for b in buckets if int(b.split(":")[1]) <= now_ms // keys.HOUR_MS - 2)
        removed = checked = 0
        for bucket in old:
            if checked >= budget:
                break
            key = keys.index_key(bucket)
            async with guard():
                members = [text(m) for m in await self._client.zrange(key, 0, PRUNE_BATCH - 1)]
            for member in members:
                first, last, queue = member.split(" ", 2)
                ids = ids_of_run(int(first), int(last))
                checked += len(ids)
                async with guard():
                    pipe = self._client.pipeline(transaction=False)
                    for jid in ids:
                        pipe.exists(keys.job_key(queue, str(jid)))
                    if not any(await pipe.execute()):
                        await self._client.zrem(key, member)
                        removed += 1
            async with guard():
                if not await self._client.exists(key):
                    await self._client.srem(keys.INDEX_HOURS, bucket)
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
        self.noticed.clear()  # in place: the wake listener holds this set's add
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
