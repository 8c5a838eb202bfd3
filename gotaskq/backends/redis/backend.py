"""RedisBackend: the Backend protocol on Redis; every transition is one Lua script (lua/*.lua).

Each script call touches one queue's keys (one Cluster slot) and at most CHUNK jobs (complete
also deletes up to 500 expired DONE records), so no call holds Redis for more than a few
milliseconds at any NUM_WORKERS or batch size.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import PipelineCommand, RedisCluster

from ... import keys
from ...batching import Batcher
from ...config import Settings
from ...errors import (
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
from ...job import MAX_ERROR_HISTORY, Job, NewJob, error_entry, now_ms, validate_queue_name
from ...schedules import Schedule
from ...states import JobStatus
from ..base import (
    LEASE_EXPIRED,
    STATS_MINUTES,
    UNSET,
    ClaimBatch,
    Claimed,
    Completion,
    Enqueued,
    FailOutcome,
    MinuteStats,
    Page,
    QueueInfo,
    QueueSettings,
    RateLimit,
    Recovered,
)
from ..paging import all_queues_page, decode_cursor, encode_cursor
from .codec import CLAIM_ROW, claimed_job, decode_job, job_args, num, opt_text, text
from .connection import (
    WORKER_POOL_SIZE,
    Commands,
    Topology,
    cluster_enabled,
    guard,
    make_topology,
    send_all,
    slot_of,
    startup_checks,
)
from .lookup import ActiveQueues, Backlog, JobIndex
from .node_lease import NodeLease
from .scripts import Scripts, script_keys
from .wake import ShardedWakeListener, WakeListener

log = logging.getLogger("gotaskq.redis")
S = JobStatus
_SCHEDULED = 1  # enqueue.lua's answer for a job created SCHEDULED (0: PENDING)
PROMOTE_LIMIT = 100
CHUNK = 100  # jobs per script call: each call holds Redis a few ms at most, even on a slow machine
CLAIM_CHUNK = 100  # a claimed job costs the most (a read of every field, and its reply)
REBUILD_ACTIVE_S = 3600.0
INFO_BATCH = 200  # queues per pipeline of queue_infos
SWEEP_MS = 60_000  # how often one process looks for queues with expired DONE records


_LIMITED = {1: "concurrency", 2: "rate_limit"}  # claim.lua's "limited" answer
_HAS_KEY = {True: "1", False: "0", None: "?"}  # complete.lua's flag: the job has an idempotency key


def _completion_items(done: Sequence[Completion]) -> tuple[int, list[tuple[Any, ...]]]:
    """complete.lua's arguments a job, and each job's: two (id, token) when every job returned
    null and has no idempotency key (the common batch), else four."""
    if all(c.has_key is False and c.result_json == b"null" for c in done):
        return 2, [(c.job_id, c.token) for c in done]
    return 4, [(c.job_id, c.token, c.result_json, _HAS_KEY[c.has_key]) for c in done]


class NotReplicated(BackendUnavailable):
    """REDIS_MIN_REPLICAS_ACK replicas did not confirm a write in time: it may not survive a failover."""


class RedisBackend:
    name = "redis"

    def __init__(self, settings: Settings, client: aioredis.Redis | RedisCluster | None = None) -> None:
        self.settings = settings
        self._client: Any = client
        self._wclient: Any = client  # the worker's pool (claims, heartbeats, outcomes)
        self._owns_client = client is None
        self._topology: Topology | None = None
        self.cluster = isinstance(client, RedisCluster)
        self._aging_ms = int(settings.priority_aging * 1000)
        self._done_ttl_ms = max(1, int(settings.complete_job_ttl * 1000))
        self._idem_ttl_ms = int(settings.idempotency_ttl * 1000)
        self._scripts: Scripts | None = None
        self._nodes: NodeLease | None = None
        self._index: JobIndex | None = None
        self._active: ActiveQueues | None = None
        self._wake: WakeListener | None = None
        self._enqueuers: dict[str, Batcher[NewJob, Enqueued | GotaskqError]] = {}
        self._rebuilt_at: int | None = None
        self._backlog: Backlog | None = None

    # -- connection ------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            raise BackendUnavailable("backend is not connected")
        return self._client

    @property
    def scripts(self) -> Scripts:
        if self._scripts is None:
            raise BackendUnavailable("backend is not connected")
        return self._scripts

    @property
    def index(self) -> JobIndex:
        assert self._index is not None, "backend is not connected"
        return self._index

    @property
    def active(self) -> ActiveQueues:
        assert self._active is not None, "backend is not connected"
        return self._active

    @property
    def node_id(self) -> int | None:
        return None if self._nodes is None else self._nodes.node

    @property
    def mode(self) -> str:
        return self._topology.mode if self._topology is not None else ("cluster" if self.cluster else "single")

    async def connect(self) -> None:
        if self._client is None:
            self._use(make_topology(self.settings, WORKER_POOL_SIZE))
        else:
            self._use(None)
        try:
            if (
                self._topology is not None
                and self.settings.redis_cluster == "auto"
                and not self.settings.redis_sentinels
            ):
                async with guard():
                    is_cluster = await cluster_enabled(self._client)
                if is_cluster:
                    old = self._topology
                    self._use(make_topology(self.settings, WORKER_POOL_SIZE, cluster=True))
                    await old.close()
            if self._topology is not None:
                async with guard():
                    await self._topology.initialize(runs_workers=self.settings.num_workers > 0)
            async with guard():
                await self._client.ping()
                if not self.cluster:  # (a Cluster's scripts load on each primary on first use)
                    try:
                        await self.scripts.load(self._client)
                    except rexc.ResponseError as exc:  # e.g. an ACL without SCRIPT: each call says so
                        log.warning("could not load the Lua scripts at start-up: %s", exc)
            log.info("connected to redis (%s)", self.mode)
            await self._id_source()
            if self._topology is not None:
                await startup_checks(self._topology)
        except BackendUnavailable as exc:
            # Start anyway (readyz says 503); the node id is taken on first use.
            log.warning("redis is unreachable at start-up (%s); will keep trying", exc)

    def _use(self, topology: Topology | None) -> None:
        """Build everything on the clients of ``topology`` (None: the client given at construction).
        Synchronous, so a call made while connect() still asks INFO finds clients to use."""
        if topology is not None:
            self._topology = topology
            self._client, self._wclient = topology.api, topology.worker
            self.cluster = topology.cluster
        self._scripts = Scripts(self._client)
        self._nodes = NodeLease(self._client, self._scripts.renew_node)
        self._backlog = Backlog(self._client) if self.cluster else None
        self._index = JobIndex(self._client, self._backlog)
        self._active = ActiveQueues(self._client, self._backlog)
        listener = ShardedWakeListener if self.cluster else WakeListener
        self._wake = listener(self._client, self._active.noticed.add)

    async def close(self) -> None:
        if self._wake is not None:
            await self._wake.close()
        if self._backlog is not None:
            await self._backlog.close()
        if self._nodes is not None:
            await self._nodes.release()
        if self._owns_client and self._topology is not None:
            await self._topology.close()
            self._client = self._wclient = self._topology = None

    async def ping(self) -> None:
        async with guard():
            await self.client.ping()

    def _channel(self, queue: str) -> str:
        return keys.wake_channel(queue, self.cluster)

    async def _run(self, script: str, queue: str, args: Sequence[Any], *, worker: bool = False) -> Any:
        client = self._wclient if worker else self._client
        if not self.cluster:
            return await self._send(client, script, queue, args)
        async with guard():
            return await self.scripts.run(script, queue, list(args), client)

    async def _write(
        self,
        script: str,
        queue: str,
        args: Sequence[Any],
        *,
        index: Sequence[str] = (),
        activate: bool = False,
        worker: bool = False,
    ) -> Any:
        """A transition a caller is told about: index ``index`` ids first, run the script, mark the
        queue active after it, and with REDIS_MIN_REPLICAS_ACK = n wait until n replicas hold it
        (WAIT on the connection that wrote; NotReplicated, a 503, if they do not in time)."""
        n = self.settings.redis_min_replicas_ack
        if not (index or activate or n):
            return await self._run(script, queue, args, worker=worker)
        client = self._wclient if worker else self._client
        if not self.cluster:
            return await self._send(client, script, queue, args, index=index, activate=activate, acks=n)
        async with guard():  # the keys live on different nodes: one call each, in order
            if index:
                await self.index.write_now(queue, index)
            res = await self._acked(client, script, queue, list(args), n)
            if activate:
                await self.active.add_now(queue)
            return res

    async def _send(
        self,
        client: Any,
        script: str,
        queue: str,
        args: Sequence[Any],
        *,
        index: Sequence[str] = (),
        activate: bool = False,
        acks: int = 0,
    ) -> Any:
        """One server or a Sentinel's primary: the script with what goes around it in one write."""
        async with guard():
            code = getattr(self.scripts, script)
            for attempt in range(2):
                pipe = Commands()
                if index:
                    self.index.write(pipe, queue, index)  # before the job: every stored job is indexed
                at = len(pipe)
                # EVALSHA as a plain command: redis-py would add a SCRIPT EXISTS round trip before
                # every pipeline holding a Script; a restarted Redis answers NOSCRIPT instead.
                script_keys_ = script_keys(script, queue)
                pipe.evalsha(code.sha, len(script_keys_), *script_keys_, *args)
                if acks:
                    pipe.execute_command("WAIT", acks, self._ack_ms)
                if activate:
                    self.active.add(pipe, queue)  # after the job: see lookup.ActiveQueues
                out = await send_all(client, pipe)
                if isinstance(out[at], rexc.NoScriptError) and not attempt:
                    await client.script_load(code.script)  # every other command of it is idempotent
                    continue
                for r in out:
                    if isinstance(r, Exception):
                        raise r
                break
        if acks:
            _check_acked(out[at + 1], acks)
        return out[at]

    @property
    def _ack_ms(self) -> int:
        return max(1, int(self.settings.redis_replica_ack_timeout * 1000))

    async def _relearn_slots(self, client: Any) -> None:
        """A call on a node's connection directly, which redis-py does not watch, met an error
        or a redirect: the Cluster client learns its slots again, spaced as after its own errors."""
        with contextlib.suppress(rexc.RedisError, OSError):
            await client.relearn_slots()

    async def _acked(self, client: Any, script: str, queue: str, args: list[Any], n: int) -> Any:
        """Cluster: the script, then WAIT, on one connection of the queue's primary (redis-py's
        Cluster pipeline refuses scripts, so the two commands go through the node itself)."""
        if not n:
            return await self.scripts.run(script, queue, args, client)
        code = getattr(self.scripts, script)
        script_keys_ = script_keys(script, queue)
        for attempt in range(2):
            node = client.get_node_from_key(script_keys_[0])
            cmds = [
                PipelineCommand(0, "EVALSHA", code.sha, len(script_keys_), *script_keys_, *args),
                PipelineCommand(1, "WAIT", n, self._ack_ms),
            ]
            try:
                async with slot_of(client):  # the node's pool raises when full: wait as other calls do
                    await node.execute_pipeline(cmds)
            except (rexc.ConnectionError, rexc.TimeoutError, OSError):
                await self._relearn_slots(client)  # the primary may be gone: learn the new one
                raise
            res, acked = cmds[0].result, cmds[1].result
            if isinstance(res, rexc.NoScriptError) and not attempt:  # a new primary after a failover
                await client.script_load(code.script)
                continue
            if isinstance(res, (rexc.MovedError, rexc.AskError)):
                await self._relearn_slots(client)
                raise BackendUnavailable(f"slot of queue {queue!r} moved: {res}")
            for r in (res, acked):
                if isinstance(r, Exception):
                    raise r
            assert isinstance(acked, int)
            _check_acked(acked, n)
            return res
        raise AssertionError("unreachable")

    # -- queues ----------------------------------------------------------------------------
    async def create_queue(self, name: str) -> bool:
        validate_queue_name(name)
        async with guard():
            # The registry set first: a queue whose meta exists is always listed.
            await self.client.sadd(keys.QUEUES, name)
            created = await self.client.hsetnx(keys.queue_prefix(name) + "meta", "created", now_ms())
        return bool(created)

    async def queue_exists(self, name: str) -> bool:
        async with guard():
            return bool(await self.client.exists(keys.queue_prefix(name) + "meta"))

    async def list_queues(self) -> list[str]:
        async with guard():
            names = await self.client.smembers(keys.QUEUES)
        return sorted(text(n) for n in names)

    async def queue_info(self, name: str) -> QueueInfo:
        found = await self.queue_infos([name])
        if not found:
            raise QueueNotFound(f"queue {name!r} does not exist")
        return found[0]

    async def _read_queues(
        self, names: Sequence[str], reads: Callable[[Any, str], None]
    ) -> AsyncIterator[tuple[str, list[Any]]]:
        """Each queue's replies to what ``reads`` adds to a pipeline for it, INFO_BATCH queues a
        pipeline (on a Cluster one pipeline goes to every primary at once)."""
        for start in range(0, len(names), INFO_BATCH):
            chunk = names[start : start + INFO_BATCH]
            async with guard():
                pipe = self.client.pipeline(transaction=False)
                for name in chunk:
                    reads(pipe, keys.queue_prefix(name))
                rows = await pipe.execute()
            per = len(rows) // max(1, len(chunk))
            for i, name in enumerate(chunk):
                yield name, rows[per * i : per * i + per]

    async def queue_infos(self, names: Sequence[str]) -> list[QueueInfo]:
        def reads(pipe: Any, p: str) -> None:
            pipe.hmget(p + "meta", ["created", "paused", "conc", "rmax", "rper", "ext"])
            for suffix in ("ready", "delayed", "running", "dead"):
                pipe.zcard(p + suffix)

        out: list[QueueInfo] = []
        async for name, (meta, pending, scheduled, running, dead) in self._read_queues(names, reads):
            if meta[0] is not None:
                conc = None if meta[2] is None else int(meta[2])
                limit = None if meta[3] is None else RateLimit(int(meta[3]), int(meta[4]) / 1000)
                ext = meta[5] == b"1"
                out.append(QueueInfo(name, meta[1] == b"1", pending, scheduled, running, dead, conc, limit, ext))
        return out

    async def configure_queue(self, name: str, settings: QueueSettings) -> QueueInfo:
        await self.queue_info(name)
        meta = keys.queue_prefix(name) + "meta"
        fields: dict[str, int | str] = {}
        drop: list[str] = []
        if settings.concurrency is not UNSET:
            if settings.concurrency is None:
                drop.append("conc")
            else:
                fields["conc"] = int(settings.concurrency)  # type: ignore[call-overload]
        if settings.rate_limit is not UNSET:
            if settings.rate_limit is None:
                drop += ["rmax", "rper"]
            else:
                assert isinstance(settings.rate_limit, RateLimit)
                fields["rmax"] = settings.rate_limit.max
                fields["rper"] = max(1, round(settings.rate_limit.per * 1000))
        if settings.paused is not UNSET:
            fields["paused"] = "1" if settings.paused else "0"
        if settings.external is not UNSET:
            fields["ext"] = "1" if settings.external else "0"
        async with guard():
            if drop:
                await self.client.hdel(meta, *drop)
            if fields:
                await self.client.hset(meta, mapping=fields)
            if fields or drop:  # a looser limit or a resume may let waiting jobs start
                await self.client.sadd(keys.ACTIVE, name)
                await self.client.execute_command("SPUBLISH" if self.cluster else "PUBLISH", self._channel(name), name)
        return await self.queue_info(name)

    async def purge_queue(self, name: str) -> int:
        await self.queue_info(name)
        total = 0
        for _ in range(1_000_000):  # bounded: each call removes up to CHUNK jobs
            removed = int(await self._run("purge", name, [CHUNK]))
            total += removed
            if removed == 0:
                break
        return total

    async def delete_queue(self, name: str) -> None:
        validate_queue_name(name)
        res = int(await self._run("drop_queue", name, []))
        if res != Code.OK:
            raise_for_code(res)
        async with guard():
            await self.client.srem(keys.QUEUES, name)
            await self.client.srem(keys.ACTIVE, name)
            batch: list[Any] = []
            # Every key of the queue shares its hash tag: one slot, one node, removed in slices.
            async for key in self.client.scan_iter(match=keys.queue_prefix(name) + "*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    await self.client.unlink(*batch)
                    batch = []
            if batch:
                await self.client.unlink(*batch)
        if name == "default":
            await self.create_queue(name)

    async def set_paused(self, name: str, paused: bool) -> QueueInfo:
        return await self.configure_queue(name, QueueSettings(paused=paused))

    async def queue_stats(self, name: str, minutes: int) -> list[MinuteStats]:
        await self.queue_info(name)
        minutes = min(minutes, STATS_MINUTES)
        async with guard():
            now = await self.client.time()
            last = int(now[0]) // 60
            span = range(last - minutes + 1, last + 1)
            hours = sorted({m // 60 for m in span})
            pipe = self.client.pipeline(transaction=False)
            for hour in hours:
                pipe.hgetall(f"{keys.queue_prefix(name)}stats:{hour}")
            rows: list[dict[bytes, bytes]] = await pipe.execute()
        counts: dict[bytes, bytes] = {}
        for row in rows:
            counts.update(row)
        return [
            MinuteStats(
                m, num(counts.get(b"done:%d" % m)), num(counts.get(b"failed:%d" % m)), num(counts.get(b"dead:%d" % m))
            )
            for m in span
        ]

    # -- producers -------------------------------------------------------------------------
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
        """One call for all; if the call is refused (having written nothing), each job gets its own answer."""
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
        """All or nothing: a batch that needs one script call is atomic; one that needs more
        (several queues, or more than CHUNK jobs) is checked by every call before any writes,
        and what earlier calls wrote is withdrawn if a later one still refuses."""
        by_queue: dict[str, list[int]] = {}
        for i, spec in enumerate(specs):
            by_queue.setdefault(spec.queue, []).append(i)
        calls = [(q, idxs[at : at + CHUNK]) for q, idxs in by_queue.items() for at in range(0, len(idxs), CHUNK)]
        # One unbroken run of ids per call: the id index stores runs (lookup.py).
        source = await self._id_source()
        ids = [""] * len(specs)
        for _, idxs in calls:
            for i, jid in zip(idxs, source.next_many(len(idxs)), strict=True):
                ids[i] = str(jid)
        out: list[Enqueued | None] = [None] * len(specs)
        if len(calls) == 1:
            await self._enqueue_call(calls[0][0], specs, ids, calls[0][1], out)
            return [e for e in out if e is not None]
        await self._precheck(specs, ids, by_queue, calls)
        done: list[tuple[str, list[int]]] = []
        try:
            for queue, idxs in calls:
                await self._enqueue_call(queue, specs, ids, idxs, out)
                done.append((queue, idxs))
        except GotaskqError as exc:
            await self._withdraw(done, out, exc)
            raise
        return [e for e in out if e is not None]

    async def _id_source(self) -> Any:
        if self._nodes is None:
            raise BackendUnavailable("backend is not connected")
        return await self._nodes.ids()

    def _args(
        self, queue: str, specs: Sequence[NewJob], ids: Sequence[str], idxs: Sequence[int], check: bool
    ) -> list[Any]:
        chunk = [specs[i] for i in idxs]
        args: list[Any] = [
            self._idem_ttl_ms,
            self.settings.max_queue_depth,
            self._aging_ms,
            self._channel(queue),
            queue,
            int(any(spec.idempotency_key for spec in chunk)),
            int(check),
        ]
        rows = [job_args(ids[i], specs[i]) for i in idxs]
        step = 3 if all(len(row) == 3 for row in rows) else 4  # 3: no job has options
        args.append(step)
        for row in rows:
            args.extend(row)
            if len(row) < step:
                args.append(b"")  # empty options
        return args

    async def _precheck(
        self,
        specs: Sequence[NewJob],
        ids: Sequence[str],
        by_queue: dict[str, list[int]],
        calls: list[tuple[str, list[int]]],
    ) -> None:
        """Every refusal reason before any write: a missing queue, no room, a key conflict. (A taken
        id cannot happen while node ids are leased; if it did, the withdrawal undoes the batch.)"""
        depth = self.settings.max_queue_depth
        for queue, idxs in by_queue.items():
            info = await self.queue_info(queue)
            if depth and info.pending + info.scheduled + len(idxs) > depth:
                raise QueueFull(f"queue {queue!r} holds {depth} waiting jobs")
        for queue, idxs in calls:
            if not any(specs[i].idempotency_key for i in idxs):
                continue  # nothing else a call could refuse that queue_info did not just check
            res = await self._run("enqueue", queue, self._args(queue, specs, ids, idxs, True))
            if res[0] < 0:
                _raise_enqueue(res)

    async def _enqueue_call(
        self, queue: str, specs: Sequence[NewJob], ids: Sequence[str], idxs: Sequence[int], out: list[Enqueued | None]
    ) -> None:
        job_ids = [ids[i] for i in idxs]
        args = self._args(queue, specs, ids, idxs, False)
        res = await self._write("enqueue", queue, args, index=job_ids, activate=True)
        now = res[0]
        if now < 0:
            with contextlib.suppress(BackendUnavailable):
                await self.index.forget_call(queue, job_ids)  # else pruned later
            _raise_enqueue(res)
        self.index.remember_call(job_ids, queue)
        for k, jid, outcome in zip(idxs, job_ids, res[1:], strict=True):
            spec = specs[k]
            if isinstance(outcome, bytes):  # an idempotent replay: the id of the job it matched
                existing_id = outcome.decode()
                existing = await self._get_in(queue, existing_id)
                if existing is None:  # it vanished since the script saw it: report that honestly
                    raise JobNotFound(f"job {existing_id}, which idempotency key replays, no longer exists")
                out[k] = Enqueued(existing, False)  # created: by position, see Job below
                continue
            run_at = None
            status = S.PENDING
            if outcome == _SCHEDULED:
                status = S.SCHEDULED
                run_at = spec.run_at_ms if spec.run_at_ms is not None else now + spec.delay_ms
            # by position: keywords cost ~1 us more a job (as in codec.claimed_job)
            job = Job(
                jid,  # id
                queue,
                spec.type,
                orjson.loads(spec.payload_json),  # payload: what was stored, as memory returns
                spec.priority,
                status,
                0,  # attempts
                spec.max_retries,
                spec.timeout,
                run_at,
                spec.idempotency_key,
            )
            job.created_at = job.updated_at = now
            out[k] = Enqueued(job, True)  # created

    async def _withdraw(self, done: list[tuple[str, list[int]]], out: list[Enqueued | None], exc: GotaskqError) -> None:
        """Take back the jobs earlier calls of a refused batch created; name any a worker already took."""
        started: list[str] = []
        for queue, idxs in done:
            created = [e.job.id for e in (out[i] for i in idxs) if e is not None and e.created]
            for start in range(0, len(created), CHUNK):
                chunk = created[start : start + CHUNK]
                try:
                    res = await self._run("withdraw", queue, chunk)
                except BackendUnavailable:
                    started.extend(chunk)
                    continue
                started.extend(jid for jid, r in zip(chunk, res, strict=True) if isinstance(r, bytes))
                self.index.forget(jid for jid, r in zip(chunk, res, strict=True) if r == 0)
        if started:  # the refusal still stands; the client learns exactly which jobs exist
            exc.args = (
                f"{exc}; {len(started)} job(s) of this batch were already written and could not be "
                f"withdrawn: {', '.join(started[:50])}",
            )

    async def _get_in(self, queue: str, job_id: str) -> Job | None:
        async with guard():
            fields: dict[bytes, bytes] = await self.client.hgetall(keys.job_key(queue, job_id))
        return decode_job(job_id, queue, fields) if await self._current(queue, job_id, fields) else None

    async def _current(self, queue: str, job_id: str, fields: dict[bytes, bytes]) -> bool:
        """False for no record, or a DONE one past COMPLETE_JOB_TTL that no pass deleted yet
        (complete.lua: DONE records go by their completed-set score, not by a key TTL)."""
        if not fields:
            return False
        if fields.get(b"st") != b"DONE" or b"idem" in fields:  # a key TTL: Redis itself decides
            return True
        async with guard():
            go_at = await self.client.zscore(keys.queue_prefix(queue) + "completed", job_id)
        if go_at is None:  # not listed (by an older version, or pruned by one): by its finish time
            go_at = num(fields.get(b"fa")) + self._done_ttl_ms
        return bool(go_at > now_ms())

    async def _locate(self, job_id: str) -> tuple[str, dict[bytes, bytes]] | None:
        """A job's queue and fields in two reads: the id -> queue index, then the job."""
        queue = self.index.cached(job_id) or await self.index.queue_of(job_id)
        if queue is None:
            return None
        async with guard():
            fields: dict[bytes, bytes] = await self.client.hgetall(keys.job_key(queue, job_id))
        if not await self._current(queue, job_id, fields):
            return None
        self.index.remember([job_id], queue)
        return queue, fields

    async def get_job(self, job_id: str) -> Job | None:
        hit = await self._locate(job_id)
        return None if hit is None else decode_job(job_id, hit[0], hit[1])

    async def _queue_for(self, job_id: str) -> str:
        hit = await self._locate(job_id)
        if hit is None:
            raise JobNotFound(f"job {job_id} not found")
        return hit[0]

    async def cancel(self, job_id: str) -> Job:
        queue = await self._queue_for(job_id)
        return await self._moved(queue, job_id, await self._write("cancel", queue, [job_id, self._done_ttl_ms]))

    async def run_now(self, job_id: str) -> Job:
        queue = await self._queue_for(job_id)
        args = [job_id, self._aging_ms, self._channel(queue), queue]
        return await self._moved(queue, job_id, await self._write("run_now", queue, args, activate=True))

    async def _moved(self, queue: str, job_id: str, res: list[Any]) -> Job:
        """The job after a one-job transition that answered {0, now} or {code, status}."""
        if res[0] != Code.OK:
            raise_for_code(res[0], job_id, opt_text(res[1]) if len(res) > 1 else None)
        job = await self._get_in(queue, job_id)
        if job is None:
            raise JobNotFound(f"job {job_id} not found")
        return job

    async def _jobs(self, queue: str, ids: Sequence[str]) -> list[Job]:
        if not ids:
            return []
        async with guard():
            pipe = self.client.pipeline(transaction=False)
            for jid in ids:
                pipe.hgetall(keys.job_key(queue, jid))
            rows = await pipe.execute()
        return [decode_job(jid, queue, f) for jid, f in zip(ids, rows, strict=True) if f]

    async def list_jobs(self, queue: str, status: JobStatus, limit: int, cursor: str | None) -> Page:
        suffix = {
            S.PENDING: "ready",
            S.SCHEDULED: "delayed",
            S.RUNNING: "running",
            S.DEAD: "dead",
            S.DONE: "completed",
        }.get(status)
        if suffix is None:
            return Page([], None)
        await self.queue_info(queue)
        # DONE: only records whose time has not passed (a pass may not have deleted them yet)
        return await self._zpage(queue, suffix, limit, cursor, f"({now_ms()}" if status is S.DONE else "-inf")

    async def _zpage(self, queue: str, suffix: str, limit: int, cursor: str | None, bottom: str = "-inf") -> Page:
        """Newest first by (score, id) down to ``bottom``; the cursor is the last (score, id) returned."""
        after = decode_cursor(cursor, queue)
        key = keys.queue_prefix(queue) + suffix
        top: float | str = "+inf" if after is None else after[0]
        picked: list[tuple[float, int]] = []
        offset = 0
        async with guard():
            while len(picked) <= limit:
                rows: list[tuple[bytes, float]] = await self.client.zrevrangebyscore(
                    key, top, bottom, start=offset, num=limit + 1 + 64, withscores=True
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
    async def active_queues(self) -> list[str]:
        now = now_ms()
        if self._rebuilt_at is None or now - self._rebuilt_at > REBUILD_ACTIVE_S * 1000:
            try:
                await self.active.rebuild(await self.list_queues())
                self._rebuilt_at = now
            except BackendUnavailable as exc:  # next time; meanwhile the set and notices serve
                log.warning("could not rebuild the active queue set: %s", exc)
        return await self.active.members()

    async def woken_queues(self) -> list[str]:
        return sorted(self.active.noticed)  # they stay in noticed for the next active_queues()

    async def mark_idle(self, queue: str) -> None:
        await self.active.mark_idle(queue)

    async def housekeeping(self) -> list[str]:
        await self.index.prune(now_ms())
        return await self._queues_with_expired_done()

    async def _queues_with_expired_done(self) -> list[str]:
        """Queues whose completed set has a record past its time (one process a minute asks)."""
        async with guard():
            if not await self.client.set(keys.SWEEP_LOCK, "1", nx=True, px=SWEEP_MS):
                return []

        def reads(pipe: Any, p: str) -> None:
            pipe.zrange(p + "completed", 0, 0, withscores=True)  # the earliest to go

        now = now_ms()
        return [
            name
            async for name, (first,) in self._read_queues(await self.list_queues(), reads)
            if first and first[0][1] <= now
        ]

    async def claim(self, queue: str, count: int, lease_ms: int, external: bool = False) -> ClaimBatch:
        claimed: list[Claimed] = []
        while True:
            want = min(CLAIM_CHUNK, count - len(claimed))
            res = await self._run("claim", queue, self._claim_args(want, lease_ms, external), worker=not external)
            batch = self._claimed(queue, res, claimed, want, count)
            if batch is not None:
                return batch

    def _claim_args(self, want: int, lease_ms: int, external: bool = False) -> list[Any]:
        return [want, lease_ms, self._aging_ms, PROMOTE_LIMIT, int(external)]

    def _claimed(self, queue: str, res: list[Any], claimed: list[Claimed], want: int, count: int) -> ClaimBatch | None:
        """Add one claim.lua reply's jobs to ``claimed``; the batch when done, None to claim more."""
        if len(res) == 1:
            if res[0] == Code.EXTERNAL:  # served over HTTP: this process has nothing to do here
                return ClaimBatch([], None, now_ms(), True)
            raise_for_code(res[0])
        now = int(res[1])
        got, rest = divmod(len(res) - 4, CLAIM_ROW)
        if rest:  # a short row would shift every later job's fields: refuse the reply whole
            raise BackendUnavailable(f"claim.lua answered {len(res)} elements, not 4 + {CLAIM_ROW} a job")
        for i in range(4, len(res), CLAIM_ROW):
            job = claimed_job(queue, res[i : i + CLAIM_ROW], now)
            claimed.append(Claimed(job, job.lease))
        if got < want or len(claimed) >= count:
            return ClaimBatch(claimed, None if res[0] == -1 else int(res[0]), now, res[2] == 1, _LIMITED.get(res[3]))
        return None

    async def complete_and_claim(
        self, queue: str, done: Sequence[Completion], count: int, lease_ms: int
    ) -> tuple[list[bool], ClaimBatch]:
        """Both scripts in one pipeline: one round trip (and one read and write on each side) for
        what a worker does most. Where a pipeline cannot carry them (a Cluster refuses scripts in
        one; replica acks WAIT after the completion), two calls."""
        if self.cluster or self.settings.redis_min_replicas_ack or len(done) > CHUNK or count > CLAIM_CHUNK:
            return await self.complete(queue, done), await self.claim(queue, count, lease_ms)
        arity, items = _completion_items(done)
        args: list[Any] = [self._done_ttl_ms, arity]
        for item in items:
            args.extend(item)
        async with guard():
            pipe = Commands()
            for name, script_args in (("complete", args), ("claim", self._claim_args(count, lease_ms))):
                k = script_keys(name, queue)
                pipe.evalsha(getattr(self.scripts, name).sha, len(k), *k, *script_args)
            out = await send_all(self._wclient, pipe)
        # a restarted Redis has no scripts: NOSCRIPT means that script did not run
        if isinstance(out[0], rexc.NoScriptError):
            out[0] = await self._run("complete", queue, args, worker=True)
        elif isinstance(out[0], Exception):
            raise out[0]
        oks = [bool(x) for x in out[0]]
        if isinstance(out[1], Exception):
            if not isinstance(out[1], rexc.NoScriptError | rexc.ConnectionError | rexc.TimeoutError):
                raise out[1]
            return oks, await self.claim(queue, count, lease_ms)
        batch = self._claimed(queue, out[1], [], count, count)
        assert batch is not None
        return oks, batch

    async def _chunked(
        self, script: str, queue: str, head: list[Any], items: Sequence[Sequence[Any]], *, acked: bool = False
    ) -> list[bool]:
        out: list[bool] = []
        for start in range(0, len(items), CHUNK):
            args = list(head)
            for item in items[start : start + CHUNK]:
                args.extend(item)
            if acked:
                res = await self._write(script, queue, args, worker=True)
            else:
                res = await self._run(script, queue, args, worker=True)
            out.extend(bool(x) for x in res)
        return out

    async def extend_leases(self, queue: str, leases: Sequence[tuple[str, int]], lease_ms: int) -> list[bool]:
        return await self._chunked("extend_lease", queue, [lease_ms], leases)

    async def complete(self, queue: str, done: Sequence[Completion]) -> list[bool]:
        arity, items = _completion_items(done)
        return await self._chunked("complete", queue, [self._done_ttl_ms, arity], items, acked=True)

    async def fail(
        self,
        job: Job,
        token: int,
        error: str,
        retry_delay_ms: int,
        traceback: str | None = None,
        retry: bool = True,
    ) -> FailOutcome:
        now = now_ms()
        entry = error_entry(job.attempts, error, now, traceback)
        history = [*job.errors, entry][-MAX_ERROR_HISTORY:]
        args = [job.id, token, entry["error"], orjson.dumps(history), max(0, retry_delay_ms)]
        args += [self._channel(job.queue), job.queue, int(retry)]
        res = await self._run("fail", job.queue, args, worker=True)
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

    async def report_progress(self, queue: str, job_id: str, token: int, progress: dict[str, object]) -> bool:
        return bool(await self._run("progress", queue, [job_id, token, orjson.dumps(progress)], worker=True))

    async def release(self, queue: str, leases: Sequence[tuple[str, int]]) -> list[bool]:
        return await self._chunked("release", queue, [self._aging_ms, self._channel(queue), queue], leases)

    async def recover_expired(self, queue: str, limit: int = CHUNK) -> Recovered:
        args = [min(limit, CHUNK), self._aging_ms, LEASE_EXPIRED, self._channel(queue), queue, MAX_ERROR_HISTORY]
        res = await self._run("recover_expired", queue, args, worker=True)
        return Recovered([x.decode() for x in res[0]], [x.decode() for x in res[1]], int(res[2]))

    async def wait_for_work(self, timeout: float) -> None:
        if self._wake is None:
            raise BackendUnavailable("backend is not connected")
        await self._wake.wait(timeout)

    # -- schedules -------------------------------------------------------------------------
    async def put_schedule(self, schedule: Schedule) -> bool:
        key = keys.schedule_key(schedule.name)
        async with guard():
            await self.client.sadd(keys.SCHEDULES, schedule.name)
            last, job = await self.client.hmget(key, ["last", "job"])
            state = (None if last is None else int(last), opt_text(job))
            nxt = schedule.with_state(None, *state).next_after(now_ms())
            created = await self.client.hset(key, "def", orjson.dumps(schedule.definition())) == 1
            await self.client.hset(key, "next", nxt)
        return bool(created)

    async def get_schedule(self, name: str) -> Schedule | None:
        async with guard():
            fields = await self.client.hgetall(keys.schedule_key(name))
        return _schedule(fields)

    async def list_schedules(self) -> list[Schedule]:
        async with guard():
            names = sorted(text(n) for n in await self.client.smembers(keys.SCHEDULES))
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(keys.schedule_key(name))
            rows = await pipe.execute()
        return [s for s in map(_schedule, rows) if s is not None]

    async def delete_schedule(self, name: str) -> bool:
        async with guard():
            gone = await self.client.delete(keys.schedule_key(name))
            await self.client.srem(keys.SCHEDULES, name)
        return bool(gone)

    async def advance_schedule(self, name: str, seen_next_ms: int, next_ms: int, ran_ms: int, job_id: str) -> bool:
        async with guard():
            won = await self.scripts.advance_schedule(
                keys=[keys.schedule_key(name)], args=[seen_next_ms, next_ms, ran_ms, job_id], client=self._wclient
            )
        return bool(won)

    # -- worker registry -------------------------------------------------------------------
    async def register_worker(self, info: dict[str, object], ttl_ms: int) -> None:
        record = orjson.dumps({**info, "expires_ms": now_ms() + ttl_ms})
        async with guard():
            await self._wclient.hset(keys.WORKERS, str(info["id"]), record)

    async def unregister_worker(self, worker_id: str) -> None:
        async with guard():
            await self._wclient.hdel(keys.WORKERS, worker_id)

    async def list_workers(self) -> list[dict[str, object]]:
        """One hash of every process's record; a record past its expiry is a dead process (removed)."""
        async with guard():
            raw: dict[bytes, bytes] = await self.client.hgetall(keys.WORKERS)
        now = now_ms()
        live: list[dict[str, object]] = []
        gone: list[bytes] = []
        for wid, record in raw.items():
            info = orjson.loads(record)
            if info.pop("expires_ms", 0) > now:
                live.append(info)
            else:
                gone.append(wid)
        if gone:
            with contextlib.suppress(BackendUnavailable):
                async with guard():
                    await self.client.hdel(keys.WORKERS, *gone)
        return sorted(live, key=lambda i: str(i.get("started_at")))

    # -- dead-letter queue -----------------------------------------------------------------
    async def list_dead(self, queue: str | None, limit: int, cursor: str | None) -> Page:
        if queue is None:
            return await all_queues_page(self, limit, cursor)
        await self.queue_info(queue)
        return await self._zpage(queue, "dead", limit, cursor)

    async def _replay(self, queue: str, ids: Sequence[str]) -> list[Any]:
        res: list[Any] = await self._write(
            "replay", queue, [self._aging_ms, self._channel(queue), queue, *ids], activate=True
        )
        return res

    async def replay(self, job_id: str) -> Job:
        queue = await self._queue_for(job_id)
        res = await self._replay(queue, [job_id])
        _raise_bulk(job_id, res[0])
        job = await self._get_in(queue, job_id)
        if job is None:
            raise JobNotFound(f"job {job_id} not found")
        return job

    async def replay_all(self, queue: str) -> int:
        """Replay the jobs that were dead when the call started: not those that die again meanwhile."""
        await self.queue_info(queue)
        async with guard():
            t = await self.client.time()
        cutoff = int(t[0]) * 1000 + int(t[1]) // 1000
        seen: set[str] = set()
        total = 0
        for _ in range(1_000_000):  # bounded: each pass takes up to CHUNK ids out of the DLQ
            async with guard():
                raw: list[bytes] = await self.client.zrangebyscore(
                    keys.queue_prefix(queue) + "dead", "-inf", cutoff, 0, CHUNK
                )
            ids = [text(i) for i in raw if text(i) not in seen]
            if not ids:
                break
            seen.update(ids)
            total += sum(1 for r in await self._replay(queue, ids) if r == 0)
        return total

    async def delete_dead(self, job_id: str) -> None:
        queue = await self._queue_for(job_id)
        res = await self._write("delete_dead", queue, [job_id])
        _raise_bulk(job_id, res[0])
        self.index.forget([job_id])

    async def purge_dead(self, queue: str) -> int:
        await self.queue_info(queue)
        total = 0
        for _ in range(1_000_000):
            async with guard():
                raw: list[bytes] = await self.client.zrange(keys.queue_prefix(queue) + "dead", 0, CHUNK - 1)
            ids = [text(i) for i in raw]
            if not ids:
                break
            res = await self._run("delete_dead", queue, ids)
            total += sum(1 for r in res if r == 0)
            self.index.forget(jid for jid, r in zip(ids, res, strict=True) if r == 0)
        return total


def _schedule(fields: dict[bytes, bytes]) -> Schedule | None:
    if not fields or b"def" not in fields:
        return None
    d = orjson.loads(fields[b"def"])
    base = Schedule(d["name"], d["job"], d["cron"], d["every"], d["timezone"], d["paused"])
    last = fields.get(b"last")
    nxt = fields.get(b"next")
    return base.with_state(
        None if nxt is None else int(nxt), None if last is None else int(last), opt_text(fields.get(b"job"))
    )


def _check_acked(acked: int, n: int) -> None:
    if acked < n:
        raise NotReplicated(f"the write reached {acked} of the {n} replicas REDIS_MIN_REPLICAS_ACK asks for; retry")


def _raise_enqueue(res: list[Any]) -> None:
    if res[0] == Code.DUPLICATE:
        raise IdempotencyConflict("idempotency key was used for a different job", opt_text(res[2]) or "")
    raise_for_code(res[0], status=None)


def _raise_bulk(job_id: str, code: int | bytes) -> None:
    if isinstance(code, bytes):
        raise InvalidTransition(f"job {job_id} is {code.decode()}", code.decode())
    raise_for_code(code, job_id)
