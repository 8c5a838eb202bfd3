"""Failover on real servers: kill -9 a primary under load; no acknowledged job is lost.

A steady load of enqueues with idempotency keys (a refused or failed call is retried with the
same key, as a client should) runs while a worker processes the jobs; meanwhile a primary is
killed. With REDIS_MIN_REPLICAS_ACK=1 every enqueue answered was on a replica before the
answer, so every such job must end DONE after the promotion.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

import fakeredis
import pytest
import redis
from cluster_support import RedisClusterSet, RedisSentinelSet, queue_names_on_every_primary
from redis.asyncio.cluster import NodesManager

from gotaskq import App
from gotaskq.backends.redis import RedisBackend, connection, wake
from gotaskq.config import Settings
from gotaskq.errors import GotaskqError
from gotaskq.job import Job, NewJob
from gotaskq.states import JobStatus

pytestmark = [pytest.mark.redis, pytest.mark.slow]
S = JobStatus
LOAD_INTERVAL_S = 0.02
SETTLE_S = 30.0

BASE = Settings(
    num_workers=20,
    visibility_timeout=3.0,
    recovery_interval=0.1,
    shutdown_grace=1.0,
    base_delay=0.01,
    max_delay=0.05,
    redis_min_replicas_ack=1,
    redis_replica_ack_timeout=1.0,
)


class Load:
    """Enqueues round-robin over ``queues`` with idempotency keys until stopped; records acks."""

    def __init__(self, app: App, queues: list[str]) -> None:
        self.app = app
        self.queues = queues
        self.acked: dict[str, str] = {}  # job id -> queue
        self.refused = 0
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _submit(self, queue: str, key: str) -> None:
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            try:
                job = await self.app.enqueue("t", {"k": key}, queue=queue, idempotency_key=key)
            except GotaskqError:
                self.refused += 1
                await asyncio.sleep(0.05)
                continue
            self.acked[job.id] = queue
            return
        raise AssertionError(f"{key} was never accepted")

    async def _run(self) -> None:
        pending: set[asyncio.Task[None]] = set()
        n = 0
        while not self._stop.is_set():
            queue = self.queues[n % len(self.queues)]
            task = asyncio.create_task(self._submit(queue, f"{queue}-{n}"))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
            await asyncio.sleep(LOAD_INTERVAL_S)
        if pending:
            await asyncio.gather(*pending)

    async def stop(self) -> None:
        self._stop.set()
        await self._task


async def run_failover(
    settings: Settings, queues: list[str], kill: Any
) -> tuple[Load, dict[str, list[float]], float, float]:
    """Load, then ``kill()`` in a thread (it blocks until the promotion); returns the load, the
    handler start times per queue, and when the kill began and ended (monotonic)."""
    app = App(settings, RedisBackend(settings), builtins=False)
    starts: dict[str, list[float]] = defaultdict(list)

    @app.task("t")
    async def t(job: Job) -> None:
        starts[job.queue].append(time.monotonic())

    await app.start()
    for q in queues:
        await app.create_queue(q)
    worker = app.worker()
    task = asyncio.create_task(worker.run())
    load = Load(app, queues)
    try:
        await asyncio.sleep(1.5)
        began = time.monotonic()
        await asyncio.to_thread(kill)
        ended = time.monotonic()
        await asyncio.sleep(1.5)
        await load.stop()
        deadline = time.monotonic() + SETTLE_S
        missing: list[str] = list(load.acked)
        while missing and time.monotonic() < deadline:
            jobs = await asyncio.gather(*(app.get_job(j) for j in missing), return_exceptions=True)
            missing = [
                j for j, job in zip(missing, jobs, strict=True) if not (isinstance(job, Job) and job.status is S.DONE)
            ]
            await asyncio.sleep(0.2)
        assert missing == [], f"{len(missing)} of {len(load.acked)} acknowledged jobs never ended DONE: {missing[:5]}"
    finally:
        await worker.stop()
        await task
        await app.close()
    return load, starts, began, ended


def max_gap(times: list[float], lo: float, hi: float) -> float:
    """The longest time without a job start inside [lo, hi]."""
    inside = [lo, *(t for t in times if lo <= t <= hi), hi]
    return max(b - a for a, b in itertools.pairwise(inside))


async def test_cluster_primary_kill_loses_no_acknowledged_job(redis_cluster: RedisClusterSet) -> None:
    redis_cluster.flushall()
    queues = queue_names_on_every_primary(redis_cluster)  # one queue on each primary
    victim_queue = queues[0]
    victim = redis_cluster.primary_for_key(f"gtq:{{{victim_queue}}}:meta")
    settings = replace(BASE, redis_url=redis_cluster.url, redis_cluster="true")

    def kill() -> None:
        redis_cluster.kill_primary(victim)
        redis_cluster.restart_node(victim)  # back as a replica: WAIT 1 can succeed again

    load, starts, began, ended = await run_failover(settings, queues, kill)
    assert len(load.acked) > 100
    for q in queues[1:]:  # queues on the surviving primaries kept starting jobs throughout
        gap = max_gap(starts[q], began, ended)
        assert gap < 1.0, f"queue {q} on a healthy primary went {gap:.2f}s without starting a job"
    assert any(t > ended for t in starts[victim_queue]), "the killed primary's queue never resumed"


def _sentinel_settings(sentinels: RedisSentinelSet, **kw: Any) -> Settings:
    """BASE on the test Sentinel set's primary (flushed first)."""
    sentinels.flushall()
    env = sentinels.env()
    return replace(
        BASE,
        redis_sentinels=tuple(env["REDIS_SENTINELS"].split(",")),
        redis_sentinel_master=env["REDIS_SENTINEL_MASTER"],
        **kw,
    )


async def test_sentinel_primary_kill_loses_no_acknowledged_job(redis_sentinel: RedisSentinelSet) -> None:
    settings = _sentinel_settings(redis_sentinel)

    def kill() -> None:
        old = redis_sentinel.current_primary()
        redis_sentinel.kill_primary()
        redis_sentinel.restart_server(old)

    load, starts, _, ended = await run_failover(settings, ["default", "other"], kill)
    assert len(load.acked) > 100
    assert any(t > ended for t in starts["default"]), "jobs never resumed after the failover"


async def test_sentinel_script_calls_wait_for_a_connection_like_every_other_call(
    redis_sentinel: RedisSentinelSet,
) -> None:
    """A Sentinel pool raises 'Too many connections' when full (it does not wait): script calls
    (send_all) and pipelines must take one of the client's slots as every other call does."""
    await _calls_side_by_side_on_two_connections(_sentinel_settings(redis_sentinel, redis_max_connections=2))


async def test_cluster_pipelines_and_acked_writes_wait_for_a_connection(redis_cluster: RedisClusterSet) -> None:
    """A Cluster node's pool raises 'Too many connections' when full too: pipelines (a queue's
    stats, multi-queue reads) and the script + WAIT of an acknowledged write, sent on a node's
    connection directly, must wait for one of the client's slots as every other call does."""
    settings = replace(BASE, redis_url=redis_cluster.url, redis_cluster="true", redis_max_connections=2)
    await _calls_side_by_side_on_two_connections(settings, "s")


async def test_cluster_connections_killed_while_idle_are_replaced_not_failed(redis_cluster: RedisClusterSet) -> None:
    """A Cluster node hands out its idle connections without a probe: after a node restart or
    a CLIENT KILL, a call on one the server closed must connect again, not answer 503."""
    settings = replace(BASE, redis_url=redis_cluster.url, redis_cluster="true", redis_min_replicas_ack=0)
    backend = RedisBackend(settings)
    await backend.connect()
    try:
        queues = queue_names_on_every_primary(redis_cluster, 2)
        for q in queues:
            await backend.create_queue(q)
        first = [await backend.enqueue(NewJob.build("t", {}, queue=q)) for q in queues]
        for e in first:
            assert await backend.get_job(e.job.id) is not None  # connections to each primary, idle now
        killed = sum(
            redis.Redis(port=port).client_kill_filter(_type="normal", skipme=True) for port in redis_cluster.nodes
        )
        assert killed >= 3, "connections on every primary were closed"
        await asyncio.sleep(0.1)  # the loop sees the EOFs
        for q, e in zip(queues, first, strict=True):
            assert (await backend.enqueue(NewJob.build("t", {}, queue=q))).job.queue == q
            assert await backend.get_job(e.job.id) is not None
    finally:
        await backend.close()


async def _calls_side_by_side_on_two_connections(settings: Settings, prefix: str = "q") -> None:
    backend = RedisBackend(settings)
    await backend.connect()
    try:
        queues = [f"{prefix}{i}" for i in range(8)]
        for q in queues:
            await backend.create_queue(q)
        first = [await backend.enqueue(NewJob.build("t", {}, queue=q)) for q in queues]
        for _ in range(3):  # script calls (one Batcher per queue) next to plain reads
            calls: list[Awaitable[Any]] = [backend.enqueue(NewJob.build("t", {}, queue=q)) for q in queues]
            calls += [backend.get_job(e.job.id) for e in first]
            calls += [backend.queue_stats(q, 5) for q in queues]  # a pipeline each
            calls += [backend.queue_infos(queues)]  # a pipeline across nodes
            for out in await asyncio.gather(*calls, return_exceptions=True):
                assert not isinstance(out, BaseException), repr(out.__cause__ or out)
    finally:
        await backend.close()


async def test_a_call_made_while_holding_a_slot_does_not_wait_for_another() -> None:
    """A Cluster pipeline sends a redirected command (MOVED, ASK) through the client's own
    execute_command: holding the pipeline's slot, it must not wait for a second one (with every
    slot held so, each would wait forever). Another task still waits for a free slot."""
    slots = asyncio.Semaphore(1)
    order: list[str] = []

    async def other() -> None:
        async with connection._slot(slots):
            order.append("other")

    async def nested() -> None:
        async with connection._slot(slots):
            order.append("nested")

    async with connection._slot(slots):
        waiting = asyncio.create_task(other())  # inherits the holder variable: must still wait
        async with asyncio.timeout(1.0):  # (wait_for would run it in a task of its own)
            await nested()  # same task: no second slot taken
        await asyncio.sleep(0.01)
        assert not waiting.done() and order == ["nested"]
    await asyncio.wait_for(waiting, 1.0)
    assert order == ["nested", "other"]


async def test_cluster_slot_refreshes_after_node_errors_are_spaced_out(
    redis_cluster: RedisClusterSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py learns the whole slot table again before the next call after any node's
    connection error, every other call waiting: with a primary down, each failed call to its
    queues refreshed again, back to back, stalling the healthy primaries' queues. A refresh
    after an error runs at most once per REFRESH_GAP_S; the calls meanwhile go on."""
    client = connection._cluster_client(redis_cluster.url, 4)
    try:
        await client.initialize()
        nodes = client.nodes_manager
        refreshes = 0
        learn = NodesManager.initialize

        async def counted(self: NodesManager, *args: Any, **kwargs: Any) -> None:
            nonlocal refreshes
            refreshes += 1
            await learn(self, *args, **kwargs)

        monkeypatch.setattr(NodesManager, "initialize", counted)
        began = time.monotonic()
        for i in range(20):
            client._initialize = True  # what redis-py sets after a node's connection error
            assert await client.set(f"k{i}", i)  # calls go on with the table they have
        calls_s = time.monotonic() - began
        assert refreshes <= 1 + calls_s / client.REFRESH_GAP_S, f"{refreshes} refreshes in {calls_s:.3f}s"
        await asyncio.sleep(client.REFRESH_GAP_S)
        before = refreshes
        client._initialize = True
        assert await client.get("k0") == b"0"
        assert refreshes == before + 1, "the first call after the gap learns the table again"
        assert not client._initialize
        assert client.commands_parser.node is nodes.default_node
        client._initialize = True  # within the gap again: this refresh is held back
        assert await client.get("k0") == b"0"
        assert client._initialize and refreshes == before + 1
        await client.aclose()  # still closes the connections those calls hold
        open_ = [c for n in nodes.nodes_cache.values() for c in n._connections if c.is_connected]
        assert open_ == [], f"{len(open_)} connections left open by aclose"
    finally:
        await client.aclose()


async def test_wake_notices_are_read_from_the_parser_on_every_topology(
    redis_cluster: RedisClusterSet, redis_sentinel: RedisSentinelSet
) -> None:
    """The wake reader's cheap path (the connection's hiredis parser, see wake.read_notices)
    on a plain server, a Sentinel's primary and a Cluster shard; redis-py's PubSub only where
    the connection reads otherwise (fakeredis)."""
    plain = connection.make_client(redis_cluster.url, 4)  # a Cluster node takes SUBSCRIBE too
    sentinel = connection._sentinel_client(_sentinel_settings(redis_sentinel), 4)
    cluster = connection._cluster_client(redis_cluster.url, 4)
    fake = fakeredis.FakeAsyncRedis()
    shard: wake._Shard | None = None
    pubsubs: list[Any] = []
    try:
        for client in (plain, sentinel, fake):
            ps = client.pubsub()
            pubsubs.append(ps)
            await ps.subscribe("gtq:wake")
        await cluster.initialize()
        shard = wake._Shard.open(cluster.get_node_from_key("gtq:{q}:wake"), lambda q: None)
        await shard.subscribe(["gtq:{q}:wake"])
        for ps in [*pubsubs[:2], shard._pubsub]:
            assert wake.replies_of(ps) is ps.connection._parser, type(ps.connection).__mro__
        assert isinstance(wake.replies_of(pubsubs[2]), wake._PubSubReplies)
    finally:
        for ps in pubsubs:
            await ps.aclose()
        if shard is not None:
            await shard.close()
        for c in (plain, sentinel, cluster, fake):
            await c.aclose()
