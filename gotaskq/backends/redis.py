"""RedisBackend: the Backend protocol on Redis; every transition is one Lua script (lua/*.lua)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis import exceptions as rexc

from .. import keys
from ..batching import Batcher
from ..config import Settings
from ..errors import (
    BackendUnavailable,
    Code,
    GotaskqError,
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    QueueFull,
    QueueNotFound,
    StaleLease,
    raise_for_code,
)
from ..ids import Snowflake
from ..job import MAX_ERROR_HISTORY, Job, NewJob, error_entry, now_ms, validate_queue_name
from ..states import JobStatus
from .base import (
    LEASE_EXPIRED,
    ClaimBatch,
    Claimed,
    Completion,
    Enqueued,
    FailOutcome,
    MinuteStats,
    Page,
    QueueInfo,
    Recovered,
    vanished_job,
)
from .packing import with_hiredis_packing
from .paging import all_queues_page, decode_cursor, encode_cursor
from .scripts import Scripts

log = logging.getLogger("gotaskq.redis")
S = JobStatus
_SCHEDULED = 1  # enqueue.lua's answer for a job created SCHEDULED (0: PENDING)
PROMOTE_LIMIT = 1000
ENQUEUE_BULK = 1000  # jobs per enqueue script call: a POST /jobs/batch to one queue is one call
BULK = 500  # ids per replay/delete script call: keeps each script short for Redis' event loop
_ID_CACHE = 100_000
# Redis is there but cannot take a write now: a 503 for the client, a retry for a worker.
_REFUSALS = (
    rexc.OutOfMemoryError,
    rexc.ReadOnlyError,
    rexc.BusyLoadingError,
    rexc.TryAgainError,
    rexc.ClusterDownError,
    rexc.MasterDownError,
)


def _text(v: bytes | str) -> str:
    return v if isinstance(v, str) else v.decode()


def _s(v: bytes | None) -> str | None:
    return None if v is None else v.decode()


def _i(v: bytes | int | None, default: int = 0) -> int:
    return default if v is None else int(v)


class RedisBackend:
    name = "redis"

    def __init__(self, settings: Settings, client: aioredis.Redis | None = None) -> None:
        self.settings = settings
        self._client = client
        self._owns_client = client is None
        self._aging_ms = int(settings.priority_aging * 1000)
        self._done_ttl_ms = max(1, int(settings.complete_job_ttl * 1000))
        self._idem_ttl_ms = int(settings.idempotency_ttl * 1000)
        self._ids: Snowflake | None = None
        self._scripts: Scripts | None = None
        self._queue_of: OrderedDict[str, str] = OrderedDict()  # job id -> queue, bounded LRU
        self._wake = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._enqueuers: dict[str, Batcher[NewJob, Enqueued | GotaskqError]] = {}

    # -- connection ------------------------------------------------------------------------
    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise BackendUnavailable("backend is not connected")
        return self._client

    @property
    def scripts(self) -> Scripts:
        if self._scripts is None:
            raise BackendUnavailable("backend is not connected")
        return self._scripts

    async def connect(self) -> None:
        if self._client is None:
            assert self.settings.redis_url is not None
            self._client = aioredis.Redis.from_url(
                self.settings.redis_url,
                decode_responses=False,
                socket_connect_timeout=2,
                socket_timeout=10,
                health_check_interval=15,
            )
            pool = self._client.connection_pool
            if pool.connection_kwargs.get("encoding", "utf-8") == "utf-8" and (
                pool.connection_kwargs.get("encoding_errors", "strict") == "strict"
            ):  # hiredis encodes text as strict UTF-8 only
                pool.connection_class = with_hiredis_packing(pool.connection_class)
        self._scripts = Scripts(self._client)
        try:
            await self._id_source()
            await self._warn_eviction()
        except BackendUnavailable as exc:
            # Start anyway (readyz says 503); the node id is taken on first use.
            log.warning("redis is unreachable at start-up (%s); will keep trying", exc)

    async def _id_source(self) -> Snowflake:
        if self._ids is None:
            async with self._guard():
                node = await self.client.incr(keys.NODE)
            self._ids = Snowflake(node)
        return self._ids

    async def _warn_eviction(self) -> None:
        try:
            cfg = await self.client.config_get("maxmemory-policy")
        except rexc.ResponseError:
            return  # CONFIG may be renamed or disabled on managed Redis
        except (rexc.ConnectionError, rexc.TimeoutError, OSError):
            return
        policy = next(iter(cfg.values()), b"noeviction")
        if isinstance(policy, bytes):
            policy = policy.decode()
        if policy != "noeviction":
            log.warning(
                "REDIS maxmemory-policy is %r, not 'noeviction': Redis may evict job keys and "
                "LOSE JOBS. Set maxmemory-policy noeviction.",
                policy,
            )

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def ping(self) -> None:
        async with self._guard():
            await self.client.ping()

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Turn 'Redis cannot take this now' into BackendUnavailable (HTTP 503, never 201)."""
        try:
            yield
        except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
            raise BackendUnavailable(f"redis unreachable: {exc}") from exc
        except _REFUSALS as exc:  # redis-py strips the reply's code off these: match by class
            raise BackendUnavailable(f"redis refused: {type(exc).__name__}: {exc}") from exc
        except rexc.ResponseError as exc:
            msg = str(exc)
            if msg.startswith(("OOM", "LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN")):
                raise BackendUnavailable(f"redis refused: {msg}") from exc
            raise

    async def _run(self, script: Any, queue: str, args: Sequence[Any]) -> Any:
        async with self._guard():
            return await script(keys=[keys.queue_prefix(queue)], args=list(args))

    # -- queues ----------------------------------------------------------------------------
    async def create_queue(self, name: str) -> bool:
        validate_queue_name(name)
        async with self._guard():
            # The registry set first: a queue whose meta exists is always listed.
            await self.client.sadd(keys.QUEUES, name)
            created = await self.client.hsetnx(keys.queue_prefix(name) + "meta", "created", now_ms())
        if created:
            await self.client.publish(keys.WAKE_CHANNEL, name)
        return bool(created)

    async def queue_exists(self, name: str) -> bool:
        async with self._guard():
            return bool(await self.client.exists(keys.queue_prefix(name) + "meta"))

    async def list_queues(self) -> list[str]:
        async with self._guard():
            names = await self.client.smembers(keys.QUEUES)
        return sorted(_text(n) for n in names)

    async def queue_info(self, name: str) -> QueueInfo:
        p = keys.queue_prefix(name)
        async with self._guard():
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(p + "meta", ["created", "paused"])
            for suffix in ("ready", "delayed", "running", "dead"):
                pipe.zcard(p + suffix)
            meta, pending, scheduled, running, dead = await pipe.execute()
        if meta[0] is None:
            raise QueueNotFound(f"queue {name!r} does not exist")
        return QueueInfo(name, meta[1] == b"1", pending, scheduled, running, dead)

    async def set_paused(self, name: str, paused: bool) -> QueueInfo:
        await self.queue_info(name)
        async with self._guard():
            await self.client.hset(keys.queue_prefix(name) + "meta", "paused", "1" if paused else "0")
            if not paused:
                await self.client.publish(keys.WAKE_CHANNEL, name)
        return await self.queue_info(name)

    async def queue_stats(self, name: str, minutes: int) -> list[MinuteStats]:
        await self.queue_info(name)
        async with self._guard():
            now = await self.client.time()
            last = int(now[0]) // 60
            span = range(last - minutes + 1, last + 1)
            pipe = self.client.pipeline(transaction=False)
            for minute in span:
                pipe.hmget(f"{keys.queue_prefix(name)}stats:{minute}", ["done", "failed", "dead"])
            rows = await pipe.execute()
        return [MinuteStats(m, _i(r[0]), _i(r[1]), _i(r[2])) for m, r in zip(span, rows, strict=True)]

    # -- producers -------------------------------------------------------------------------
    @staticmethod
    def _job_record(job_id: str, spec: NewJob) -> bytes:
        """One argument per job (see enqueue.lua): the idempotency key last, as it may hold a newline."""
        run_at = -1 if spec.run_at_ms is None else spec.run_at_ms
        head = (
            f"{job_id}\n{spec.type}\n{spec.priority} {spec.delay_ms} {run_at} {spec.max_retries} "
            f"{math.ceil(spec.timeout * 1000)}\n{spec.fingerprint() if spec.idempotency_key else ''}\n"
        )
        return head.encode() + spec.payload_json + b"\n" + (spec.idempotency_key or "").encode()

    async def enqueue(self, spec: NewJob) -> Enqueued:
        """Concurrent single enqueues to one queue share one script call (see Batcher)."""
        batcher = self._enqueuers.get(spec.queue)
        if batcher is None:
            queue = spec.queue

            async def flush(specs: list[NewJob]) -> list[Enqueued | GotaskqError]:
                return await self._enqueue_coalesced(queue, specs)

            batcher = self._enqueuers[spec.queue] = Batcher(flush)
        out = await batcher.submit(spec)
        if isinstance(out, GotaskqError):
            raise out
        return out

    async def _enqueue_coalesced(self, queue: str, specs: list[NewJob]) -> list[Enqueued | GotaskqError]:
        """One call for all; if the batch is refused as a whole, each job gets its own answer."""
        try:
            return list(await self.enqueue_many(specs))
        except BackendUnavailable:
            raise
        except GotaskqError as exc:
            if len(specs) == 1:
                return [exc]
        results: list[Enqueued | GotaskqError] = []
        for spec in specs:
            try:
                results.append((await self.enqueue_many([spec]))[0])
            except BackendUnavailable:
                raise
            except GotaskqError as exc:
                results.append(exc)
        return results

    async def enqueue_many(self, specs: Sequence[NewJob]) -> list[Enqueued]:
        by_queue: dict[str, list[int]] = {}
        for i, spec in enumerate(specs):
            by_queue.setdefault(spec.queue, []).append(i)
        if len(by_queue) > 1:
            await self._precheck(by_queue)
        out: list[Enqueued | None] = [None] * len(specs)
        for queue, idxs in by_queue.items():
            for start in range(0, len(idxs), ENQUEUE_BULK):
                chunk = idxs[start : start + ENQUEUE_BULK]
                await self._enqueue_chunk(queue, [specs[i] for i in chunk], chunk, out)
        return [e for e in out if e is not None]

    async def _precheck(self, by_queue: dict[str, list[int]]) -> None:
        """One script per queue (one hash tag each), so a batch spanning queues is checked for
        missing queues and room before anything is written. This narrows, but cannot close, the
        window in which a later queue's refusal follows an earlier queue's write."""
        depth = self.settings.max_queue_depth
        for queue, idxs in by_queue.items():
            info = await self.queue_info(queue)
            if depth and info.pending + info.scheduled + len(idxs) > depth:
                raise QueueFull(f"queue {queue!r} holds {depth} waiting jobs")

    async def _enqueue_chunk(
        self, queue: str, specs: list[NewJob], idxs: list[int], out: list[Enqueued | None]
    ) -> None:
        s = self.settings
        id_source = await self._id_source()
        job_ids = list(map(str, id_source.next_many(len(specs))))
        any_idem = any(spec.idempotency_key for spec in specs)
        args: list[Any] = [
            self._idem_ttl_ms,
            s.max_queue_depth,
            self._aging_ms,
            keys.WAKE_CHANNEL,
            queue,
            int(any_idem),
        ]
        args.extend(map(self._job_record, job_ids, specs))
        res = await self._run(self.scripts.enqueue, queue, args)
        now = res[0]
        if now < 0:
            if now == Code.DUPLICATE:
                raise IdempotencyConflict("idempotency key was used for a different job", _s(res[2]) or "")
            raise_for_code(now, status=None)
        for k, spec, jid, outcome in zip(idxs, specs, job_ids, res[1:], strict=True):
            if isinstance(outcome, bytes):  # an idempotent replay: the id of the job it matched
                existing_id = outcome.decode()
                existing = await self.get_job(existing_id)
                out[k] = Enqueued(existing or vanished_job(existing_id, spec), created=False)
                continue
            self._remember(jid, queue)
            run_at = None
            if outcome == _SCHEDULED:
                run_at = spec.run_at_ms if spec.run_at_ms is not None else now + spec.delay_ms
            out[k] = Enqueued(
                Job(
                    id=jid,
                    queue=queue,
                    type=spec.type,
                    payload=orjson.loads(spec.payload_json),  # what was stored, as memory returns
                    priority=spec.priority,
                    status=S.SCHEDULED if outcome == _SCHEDULED else S.PENDING,
                    attempts=0,
                    max_retries=spec.max_retries,
                    timeout=spec.timeout,
                    run_at=run_at,
                    idempotency_key=spec.idempotency_key,
                    created_at=now,
                    updated_at=now,
                ),
                created=True,
            )

    def _remember(self, job_id: str, queue: str) -> None:
        self._queue_of[job_id] = queue
        if len(self._queue_of) > _ID_CACHE:
            self._queue_of.popitem(last=False)

    async def _locate(self, job_id: str) -> tuple[str, dict[bytes, bytes]] | None:
        """Find a job's queue and fields: the id cache first, else every registered queue."""
        cached = self._queue_of.get(job_id)
        async with self._guard():
            if cached is not None:
                fields: dict[bytes, bytes] = await self.client.hgetall(keys.job_key(cached, job_id))  # type: ignore[assignment]
                if fields:
                    return cached, fields
            queues = await self.list_queues()
            pipe = self.client.pipeline(transaction=False)
            for q in queues:
                pipe.hgetall(keys.job_key(q, job_id))
            found = await pipe.execute()
        for q, fields in zip(queues, found, strict=True):
            if fields:
                self._remember(job_id, q)
                return q, fields
        return None

    async def get_job(self, job_id: str) -> Job | None:
        hit = await self._locate(job_id)
        return None if hit is None else _decode(job_id, hit[0], hit[1])

    async def _queue_for(self, job_id: str) -> str:
        hit = await self._locate(job_id)
        if hit is None:
            raise JobNotFound(f"job {job_id} not found")
        return hit[0]

    async def cancel(self, job_id: str) -> Job:
        queue = await self._queue_for(job_id)
        res = await self._run(self.scripts.cancel, queue, [job_id, self._done_ttl_ms])
        if res[0] != Code.OK:
            raise_for_code(res[0], job_id, _s(res[1]) if len(res) > 1 else None)
        job = await self.get_job(job_id)
        if job is None:
            raise JobNotFound(f"job {job_id} not found")
        return job

    async def _jobs(self, queue: str, ids: Sequence[str]) -> list[Job]:
        if not ids:
            return []
        async with self._guard():
            pipe = self.client.pipeline(transaction=False)
            for jid in ids:
                pipe.hgetall(keys.job_key(queue, jid))
            rows = await pipe.execute()
        return [_decode(jid, queue, f) for jid, f in zip(ids, rows, strict=True) if f]

    async def list_jobs(self, queue: str, status: JobStatus, limit: int, cursor: str | None) -> Page:
        suffix = {S.PENDING: "ready", S.SCHEDULED: "delayed", S.RUNNING: "running", S.DEAD: "dead"}.get(status)
        if suffix is None:
            return Page([], None)
        await self.queue_info(queue)
        return await self._zpage(queue, suffix, limit, cursor)

    async def _zpage(self, queue: str, suffix: str, limit: int, cursor: str | None) -> Page:
        """Newest first by (score, id); the cursor is the last (score, id) returned."""
        after = decode_cursor(cursor, queue)
        key = keys.queue_prefix(queue) + suffix
        top: float | str = "+inf" if after is None else after[0]
        picked: list[tuple[float, int]] = []
        offset = 0
        async with self._guard():
            while len(picked) <= limit:
                rows: list[tuple[bytes, float]] = await self.client.zrevrangebyscore(  # type: ignore[assignment]
                    key, top, "-inf", start=offset, num=limit + 1 + 64, withscores=True
                )
                for member, score in rows:
                    entry = (score, int(member))
                    if after is None or entry < after:
                        picked.append(entry)
                if len(rows) < limit + 1 + 64:
                    break
                offset += len(rows)
        picked.sort(reverse=True)
        page = picked[:limit]
        jobs = await self._jobs(queue, [str(m) for _, m in page])
        return Page(jobs, encode_cursor(queue, page[-1]) if len(picked) > limit else None)

    # -- workers ---------------------------------------------------------------------------
    async def claim(self, queue: str, count: int, lease_ms: int) -> ClaimBatch:
        res = await self._run(self.scripts.claim, queue, [count, lease_ms, self._aging_ms, PROMOTE_LIMIT])
        if res[0] == Code.QUEUE_NOT_FOUND and len(res) == 1:
            raise QueueNotFound(f"queue {queue!r} does not exist")
        now = int(res[1])
        claimed = []
        for row in res[2:]:
            jid, lease, att, typ, payload, pri, maxr, tmo, run, idem, ca, err, errs = row
            jid_s = jid.decode()
            job = Job(
                id=jid_s,
                queue=queue,
                type=typ.decode(),
                payload=orjson.loads(payload),
                priority=int(pri),
                status=S.RUNNING,
                attempts=int(att),
                max_retries=int(maxr),
                timeout=int(tmo) / 1000,
                run_at=None if run is None else int(run),
                idempotency_key=_s(idem),
                last_error=_s(err),
                errors=orjson.loads(errs) if errs else [],
                created_at=int(ca),
                updated_at=now,
                started_at=now,
                lease=int(lease),
            )
            claimed.append(Claimed(job, int(lease)))
        return ClaimBatch(claimed, None if res[0] == -1 else int(res[0]))

    async def extend_leases(self, queue: str, leases: Sequence[tuple[str, int]], lease_ms: int) -> list[bool]:
        if not leases:
            return []
        args: list[Any] = [lease_ms]
        for jid, token in leases:
            args += [jid, token]
        return [bool(x) for x in await self._run(self.scripts.extend_lease, queue, args)]

    async def complete(self, queue: str, done: Sequence[Completion]) -> list[bool]:
        if not done:
            return []
        args: list[Any] = [self._done_ttl_ms]
        for c in done:
            args += [c.job_id, c.token, c.result_json]
        return [bool(x) for x in await self._run(self.scripts.complete, queue, args)]

    async def fail(self, job: Job, token: int, error: str, retry_delay_ms: int) -> FailOutcome:
        now = now_ms()
        entry = error_entry(job.attempts, error, now)
        history = [*job.errors, entry][-MAX_ERROR_HISTORY:]
        res = await self._run(
            self.scripts.fail,
            job.queue,
            [
                job.id,
                token,
                entry["error"],
                orjson.dumps(history),
                max(0, retry_delay_ms),
                keys.WAKE_CHANNEL,
                job.queue,
            ],
        )
        if res[0] == Code.STALE_LEASE:
            raise StaleLease(f"lease on job {job.id} is no longer held")
        status = S(res[1].decode())
        after = replace(job, status=status)
        after.last_error = entry["error"]
        after.errors = history
        after.updated_at = int(res[3])
        if status is S.DEAD:
            after.finished_at = int(res[2])
        else:
            after.run_at = int(res[2])
        return FailOutcome(status, after)

    async def release(self, queue: str, leases: Sequence[tuple[str, int]]) -> list[bool]:
        if not leases:
            return []
        args: list[Any] = [self._aging_ms, keys.WAKE_CHANNEL, queue]
        for jid, token in leases:
            args += [jid, token]
        return [bool(x) for x in await self._run(self.scripts.release, queue, args)]

    async def recover_expired(self, queue: str, limit: int = 500) -> Recovered:
        res = await self._run(
            self.scripts.recover_expired,
            queue,
            [limit, self._aging_ms, LEASE_EXPIRED, keys.WAKE_CHANNEL, queue],
        )
        return Recovered([x.decode() for x in res[0]], [x.decode() for x in res[1]])

    async def wait_for_work(self, timeout: float) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen())
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return
        self._wake.clear()

    async def _listen(self) -> None:
        """Set the wake event on every enqueue notice; resubscribe after Redis restarts."""
        while True:
            try:
                pubsub = self.client.pubsub()
                try:
                    await pubsub.subscribe(keys.WAKE_CHANNEL)
                    self._wake.set()  # a notice published before the subscription took is not lost
                    while True:
                        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                        if msg is not None:
                            self._wake.set()
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except (GotaskqError, rexc.RedisError, OSError):
                self._wake.set()  # let waiters poll while the channel is down
                await asyncio.sleep(0.5)

    # -- dead-letter queue -----------------------------------------------------------------
    async def list_dead(self, queue: str | None, limit: int, cursor: str | None) -> Page:
        if queue is None:
            return await all_queues_page(self, limit, cursor)
        await self.queue_info(queue)
        return await self._zpage(queue, "dead", limit, cursor)

    async def replay(self, job_id: str) -> Job:
        queue = await self._queue_for(job_id)
        res = await self._run(self.scripts.replay, queue, [self._aging_ms, keys.WAKE_CHANNEL, queue, job_id])
        _raise_bulk(job_id, res[0])
        job = await self.get_job(job_id)
        if job is None:
            raise JobNotFound(f"job {job_id} not found")
        return job

    async def _dead_ids(self, queue: str) -> list[str]:
        async with self._guard():
            ids: list[bytes] = await self.client.zrange(keys.queue_prefix(queue) + "dead", 0, BULK - 1)  # type: ignore[assignment]
        return [i.decode() for i in ids]

    async def replay_all(self, queue: str) -> int:
        await self.queue_info(queue)
        total = 0
        for _ in range(1_000_000):  # bounded: each pass empties up to BULK ids
            ids = await self._dead_ids(queue)
            if not ids:
                break
            res = await self._run(self.scripts.replay, queue, [self._aging_ms, keys.WAKE_CHANNEL, queue, *ids])
            total += sum(1 for r in res if r == 0)
        return total

    async def delete_dead(self, job_id: str) -> None:
        queue = await self._queue_for(job_id)
        res = await self._run(self.scripts.delete_dead, queue, [job_id])
        _raise_bulk(job_id, res[0])
        self._queue_of.pop(job_id, None)

    async def purge_dead(self, queue: str) -> int:
        await self.queue_info(queue)
        total = 0
        for _ in range(1_000_000):
            ids = await self._dead_ids(queue)
            if not ids:
                break
            res = await self._run(self.scripts.delete_dead, queue, ids)
            total += sum(1 for r in res if r == 0)
        return total


def _raise_bulk(job_id: str, code: int | bytes) -> None:
    if isinstance(code, bytes):
        raise InvalidTransition(f"job {job_id} is {code.decode()}", code.decode())
    raise_for_code(code, job_id)


def _decode(job_id: str, queue: str, f: dict[bytes, bytes]) -> Job:
    def g(name: str) -> bytes | None:
        return f.get(name.encode())

    errs = g("errs")
    res = g("res")
    return Job(
        id=job_id,
        queue=queue,
        type=(g("type") or b"").decode(),
        payload=orjson.loads(g("payload") or b"null"),
        priority=_i(g("pri")),
        status=S((g("st") or b"PENDING").decode()),
        attempts=_i(g("att")),
        max_retries=_i(g("maxr")),
        timeout=_i(g("tmo")) / 1000,
        run_at=None if g("run") is None else _i(g("run")),
        idempotency_key=_s(g("idem")),
        last_error=_s(g("err")),
        errors=orjson.loads(errs) if errs else [],
        result=orjson.loads(res) if res else None,
        created_at=_i(g("ca")),
        updated_at=_i(g("ua") or g("ca")),
        started_at=None if g("sa") is None else _i(g("sa")),
        finished_at=None if g("fa") is None else _i(g("fa")),
        lease=_i(g("lease")),
    )
