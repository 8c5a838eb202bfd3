"""The defects of the outside review of 6863bda (issue 10), one named regression test each.

Items 8 and 12 live in test_backend_contract.py and test_regressions_api_schema.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from conftest import MakeBackend, RedisServer, redis_settings

from gotaskq import keys
from gotaskq.app import App
from gotaskq.backends.base import Backend, ClaimBatch, Completion
from gotaskq.backends.memory import MemoryBackend
from gotaskq.backends.redis import RedisBackend, node_lease
from gotaskq.backends.redis import backend as redis_backend_module
from gotaskq.config import Settings
from gotaskq.errors import BackendUnavailable, IdempotencyConflict, QueueFull
from gotaskq.ids import MAX_NODE
from gotaskq.job import Job, NewJob
from gotaskq.states import JobStatus

S = JobStatus
LEASE_MS = 30_000


def spec(**kw: Any) -> NewJob:
    return NewJob.build("t", kw.pop("payload", {"n": 1}), **kw)


def commands(raw: redis.Redis, name: str | None = None) -> int:
    """Calls Redis has served so far (of one command, or of all but INFO)."""
    stats: dict[str, dict[str, int]] = raw.info("commandstats")  # type: ignore[assignment]
    if name is not None:
        return stats.get(f"cmdstat_{name}", {}).get("calls", 0)
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info",))


async def kill_all(backend: Backend, queue: str, n: int) -> list[str]:
    """Enqueue ``n`` jobs with no retries and fail each into the DLQ."""
    await backend.enqueue_many([spec(queue=queue, max_retries=0) for _ in range(n)])
    ids = []
    for c in (await backend.claim(queue, n, LEASE_MS)).jobs:
        await backend.fail(c.job, c.token, "boom", 0)
        ids.append(c.job.id)
    return ids


# -- 1 ------------------------------------------------------------------------------------------
async def test_1_multi_queue_batch_with_a_key_conflict_writes_nothing(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    for q in ("a", "b"):
        await backend.create_queue(q)
    await backend.enqueue(spec(queue="b", idempotency_key="K"))
    batch = [spec(queue="a") for _ in range(500)] + [NewJob.build("t", {"other": 1}, queue="b", idempotency_key="K")]
    with pytest.raises(IdempotencyConflict):
        await backend.enqueue_many(batch)
    assert (await backend.queue_info("a")).pending == 0
    assert (await backend.queue_info("b")).pending == 1


async def test_1_a_later_refusal_withdraws_what_earlier_calls_wrote(
    make_redis: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The precheck is skipped here, so queue b's refusal only shows when its own call runs."""
    backend: RedisBackend = await make_redis(max_queue_depth=600)
    for q in ("a", "b"):
        await backend.create_queue(q)
    await backend.enqueue_many([spec(queue="b") for _ in range(600)])

    async def no_precheck(*a: Any) -> None:
        return None

    monkeypatch.setattr(backend, "_precheck", no_precheck)
    with pytest.raises(QueueFull):
        await backend.enqueue_many([spec(queue="a", idempotency_key=f"k{i}") for i in range(700)] + [spec(queue="b")])
    info = await backend.queue_info("a")
    assert (info.pending, info.scheduled) == (0, 0)
    again = await backend.enqueue(spec(queue="a", idempotency_key="k1"))  # the withdrawn job's key is free
    assert again.created


async def test_1_a_single_queue_batch_larger_than_one_call_is_all_or_nothing(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    await backend.enqueue(spec(idempotency_key="K"))
    batch = [spec() for _ in range(999)] + [NewJob.build("t", {"other": 1}, idempotency_key="K")]
    with pytest.raises(IdempotencyConflict):
        await backend.enqueue_many(batch)
    assert (await backend.queue_info("default")).pending == 1


# -- 2 ------------------------------------------------------------------------------------------
async def test_2_deleting_a_dead_job_keeps_a_newer_jobs_idempotency_key(make_backend: MakeBackend) -> None:
    backend = await make_backend(idempotency_ttl=1.0)
    a = (await backend.enqueue(spec(idempotency_key="K", max_retries=0))).job
    c = (await backend.claim("default", 1, LEASE_MS)).jobs[0]
    await backend.fail(c.job, c.token, "boom", 0)
    await asyncio.sleep(1.2)  # A's key expired; A stays in the DLQ
    b = await backend.enqueue(spec(idempotency_key="K", max_retries=0))
    assert b.created and b.job.id != a.id
    await backend.delete_dead(a.id)
    retry = await backend.enqueue(spec(idempotency_key="K", max_retries=0))
    assert (retry.created, retry.job.id) == (False, b.job.id)


# -- 3 ------------------------------------------------------------------------------------------
async def test_3_live_processes_never_share_a_node_id(make_redis: Callable[..., Any], raw: redis.Redis) -> None:
    first: RedisBackend = await make_redis()
    held = first.node_id
    assert held is not None
    others = [n for n in range(MAX_NODE + 1) if n != held]
    raw.mset({keys.node_key(n): "someone" for n in others})  # every other node id is taken
    crowded = RedisBackend(redis_settings(first.settings.redis_url or ""))
    await crowded.connect()
    try:
        with pytest.raises(BackendUnavailable, match="node ids are leased"):
            await crowded.enqueue(spec())
        raw.delete(keys.node_key(others[7]))
        await crowded.enqueue(spec())
        assert crowded.node_id == others[7] != held
    finally:
        await crowded.close()


async def test_3_taking_a_node_id_on_a_fresh_redis_is_two_round_trips(
    make_redis: Callable[..., Any], raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe wins all 64 ids it tries on a fresh Redis: the 63 it gives back go in one
    pipeline, not one DEL each (~20 ms of a process's start)."""
    from redis.asyncio.connection import AbstractConnection

    b: RedisBackend = await make_redis()
    node_keys = keys.node_key(0).rsplit(":", 1)[0] + ":*"
    raw.delete(*raw.keys(node_keys))
    sends = 0
    real = AbstractConnection.send_packed_command

    async def counted(self: Any, *args: Any, **kw: Any) -> None:
        nonlocal sends
        sends += 1
        await real(self, *args, **kw)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    assert b._nodes is not None
    node = await b._nodes._acquire()
    assert sends == 2
    assert raw.keys(node_keys) == [keys.node_key(node).encode()]


async def test_3_a_process_that_lost_its_lease_stops_minting_until_it_has_a_new_one(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    b: RedisBackend = await make_redis()
    old = b.node_id
    assert old is not None
    raw.set(keys.node_key(old), "another-process")  # the lease expired and another took it
    assert b._nodes is not None
    b._nodes._valid_until = 0.0  # as if RENEW_EVERY_S passed without a renewal
    job = (await b.enqueue(spec())).job
    assert b.node_id is not None and b.node_id != old
    assert (int(job.id) >> 12) & MAX_NODE == b.node_id
    assert raw.get(keys.node_key(old)) == b"another-process"


async def test_3_a_taken_id_refuses_the_whole_call_before_writing(
    make_redis: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """(Redis only: the memory backend's ids come from one in-process generator.)"""
    backend: Any = await make_redis()
    taken = (await backend.enqueue(spec())).job
    real = await backend._nodes.ids()
    minted = iter([[int(taken.id) + 1, int(taken.id)]])

    class Clashing:
        node = real.node

        def next_many(self, n: int) -> list[int]:
            return next(minted, None) or real.next_many(n)

    async def ids() -> Any:
        return Clashing()

    monkeypatch.setattr(backend._nodes, "ids", ids)
    results = await asyncio.gather(backend.enqueue(spec(payload={"x": 1})), backend.enqueue(spec(payload={"x": 2})))
    assert all(r.created for r in results)
    info = await backend.queue_info("default")
    assert info.pending == 3, "no duplicates: the refused call wrote nothing before it was retried"


# -- 4 ------------------------------------------------------------------------------------------
async def test_4_a_full_pool_waits_instead_of_failing(make_redis: Callable[..., Any]) -> None:
    b: RedisBackend = await make_redis(redis_max_connections=8)
    job = (await b.enqueue(spec())).job
    b.index.recent.clear()
    got = await asyncio.gather(*(b.get_job(job.id) for _ in range(1000)), return_exceptions=True)
    assert [type(g).__name__ for g in got if not isinstance(g, Job)] == []


async def test_4_worker_leases_do_not_share_the_api_pool(make_redis: Callable[..., Any]) -> None:
    b: RedisBackend = await make_redis(redis_max_connections=2)
    assert b._wclient is not b._client
    job = (await b.enqueue(spec())).job
    c = (await b.claim("default", 1, LEASE_MS)).jobs[0]
    pool = b.client.connection_pool
    held = [await pool.get_connection() for _ in range(2)]  # type: ignore[call-arg]
    try:
        ok = await asyncio.wait_for(b.extend_leases("default", [(job.id, c.token)], LEASE_MS), 2)
        assert ok == [True]
    finally:
        for conn in held:
            await pool.release(conn)


async def test_4_a_thousand_concurrent_http_reads_answer_200(redis_server: RedisServer, raw: redis.Redis) -> None:
    """Through the real ASGI app on a real Redis with the default pool: 1,000 answers of 200, no 503."""
    from contextlib import AsyncExitStack

    from api_support import serve

    async with AsyncExitStack() as stack:
        app = App(redis_settings(redis_server.url), builtins=False)
        api = await serve(stack, app)
        job = await api.job()
        got = await asyncio.gather(*(api.client.get(f"/jobs/{job['id']}") for _ in range(1000)))
    assert sorted({r.status_code for r in got}) == [200]


# -- 5 ------------------------------------------------------------------------------------------
async def test_5_a_worker_whose_clock_runs_ahead_does_not_spin(
    redis_server: RedisServer, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gotaskq.worker as worker_module

    real = worker_module.now_ms
    monkeypatch.setattr(worker_module, "now_ms", lambda: real() + 2000)  # 2 s of skew
    app = App(redis_settings(redis_server.url), builtins=False)
    await app.start()
    await app.enqueue("t", delay=3.0)
    worker = app.worker()
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.3)
        before = commands(raw, "evalsha")
        await asyncio.sleep(1.0)
        calls = commands(raw, "evalsha") - before
    finally:
        await worker.stop()
        await task
        await app.close()
    assert calls < 40, f"{calls} script calls in 1 s while idle"


# -- 6 ------------------------------------------------------------------------------------------
async def test_6_idle_cost_does_not_grow_with_empty_queues(redis_server: RedisServer, raw: redis.Redis) -> None:
    app = App(redis_settings(redis_server.url), builtins=False)
    await app.start()
    for i in range(300):
        await app.backend.create_queue(f"empty-{i}")
    job = await app.enqueue("t")  # and one queue that had work once
    await app.backend.cancel(job.id)
    worker = app.worker()
    task = asyncio.create_task(worker.run())
    try:
        # Start-up makes one pass over every queue: wait until it is over (on a loaded machine
        # it took longer than a fixed second), then measure the idle rate itself.
        deadline = time.monotonic() + 10.0
        last = commands(raw)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            now = commands(raw)
            if now - last < 10:  # under 20 calls/s for half a second
                break
            last = now
        before = commands(raw)
        await asyncio.sleep(2.0)
        per_s = (commands(raw) - before) / 2
    finally:
        await worker.stop()
        await task
        await app.close()
    assert per_s < 20, f"{per_s} Redis calls/s from an idle worker with 300 empty queues"


async def test_6_finding_a_job_by_id_costs_constant_calls(make_redis: Callable[..., Any], raw: redis.Redis) -> None:
    b: RedisBackend = await make_redis()
    for i in range(300):
        await b.create_queue(f"q{i}")
    job = (await b.enqueue(spec(queue="q150"))).job
    other = RedisBackend(redis_settings(b.settings.redis_url or ""))  # another process: no cache
    await other.connect()
    try:
        before = commands(raw)
        assert await other.get_job("386102431366250496") is None
        found = await other.get_job(job.id)
        assert found is not None and found.queue == "q150"
        assert commands(raw) - before <= 4
    finally:
        await other.close()


# -- 7 ------------------------------------------------------------------------------------------
async def test_7_memory_backend_frees_expired_idempotency_entries() -> None:
    b = MemoryBackend(Settings(idempotency_ttl=0.1))
    await b.create_queue("default")
    await b.enqueue_many([spec(idempotency_key=f"k{i}") for i in range(1000)])
    await asyncio.sleep(0.15)
    await b.housekeeping()
    assert len(b._idem) == 0


# -- 9 ------------------------------------------------------------------------------------------
async def test_9_replay_all_replays_only_the_jobs_dead_at_its_start(
    make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = await make_backend()
    dead = await kill_all(backend, "default", 1200)
    original = backend.claim
    refail_done = asyncio.Event()

    async def poison_worker() -> None:  # every replayed job dies again at once
        for _ in range(2000):
            batch = await original("default", 500, LEASE_MS)
            for c in batch.jobs:
                await backend.fail(c.job, c.token, "boom again", 0)
            if refail_done.is_set() and not batch.jobs:
                return
            await asyncio.sleep(0)

    runner = asyncio.create_task(poison_worker())
    try:
        replayed = await backend.replay_all("default")
    finally:
        refail_done.set()
        await runner
    assert replayed == len(dead)


# -- 10 -----------------------------------------------------------------------------------------
async def test_10_no_script_call_blocks_redis_for_more_than_10ms(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    b: RedisBackend = await make_redis(max_queue_depth=0)
    raw.config_set("slowlog-log-slower-than", 10_000)
    raw.slowlog_reset()
    try:
        for _ in range(5):
            await b.enqueue_many([spec(payload={"pad": "x" * 200}, max_retries=0) for _ in range(1000)])
        batch = await b.claim("default", 5000, LEASE_MS)
        leases = [(c.job.id, c.token) for c in batch.jobs]
        assert len(leases) == 5000
        assert all(await b.extend_leases("default", leases, LEASE_MS))
        assert all(await b.complete("default", [Completion(j, t, b"1") for j, t in leases[:2000]]))
        assert all(await b.release("default", leases[2000:]))
        again = await b.claim("default", 5000, 1)
        await asyncio.sleep(0.01)
        recovered = 0
        for _ in range(100):
            recovered += len((await b.recover_expired("default")).dead)
        assert recovered == len(again.jobs) == 3000
        assert await b.replay_all("default") == 3000
        moved = await b.claim("default", 5000, 1)
        await asyncio.sleep(0.01)
        for _ in range(100):
            await b.recover_expired("default")
        assert len(moved.jobs) == 3000
        assert await b.purge_dead("default") == 3000
        slow = [(e["duration"], e["command"][:60]) for e in raw.slowlog_get(128)]
    finally:
        raw.config_set("slowlog-log-slower-than", 10_000)
    assert slow == [], slow


# -- 11 -----------------------------------------------------------------------------------------
class _OneQueueDown(MemoryBackend):
    async def claim(self, queue: str, count: int, lease_ms: int) -> ClaimBatch:
        if queue == "broken":
            raise BackendUnavailable("its node is down")
        return await super().claim(queue, count, lease_ms)

    async def recover_expired(self, queue: str, limit: int = 500) -> Any:
        if queue == "broken":
            raise BackendUnavailable("its node is down")
        return await super().recover_expired(queue, limit)


async def test_11_a_failing_queue_does_not_stall_the_others() -> None:
    backend = _OneQueueDown(Settings(recovery_interval=0.05))
    app = App(Settings(recovery_interval=0.05), backend=backend, builtins=False)
    done: list[float] = []

    @app.task("t")
    async def t(job: Job) -> None:
        done.append(time.monotonic())

    await app.start()
    for q in ("broken", "healthy"):
        await backend.create_queue(q)
    await app.enqueue("t", queue="broken")
    worker = app.worker()
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.5)  # the broken queue has failed several claims by now
        latencies = []
        for _ in range(5):
            t0 = time.monotonic()
            await app.enqueue("t", queue="healthy")
            for _ in range(200):
                if len(done) > len(latencies):
                    break
                await asyncio.sleep(0.005)
            latencies.append(done[-1] - t0 if len(done) > len(latencies) else 99.0)
    finally:
        await worker.stop()
        await task
        await app.close()
    assert max(latencies) < 0.5, latencies


def test_chunk_is_at_most_500() -> None:
    assert redis_backend_module.CHUNK <= 500 and redis_backend_module.CLAIM_CHUNK <= 500
    assert node_lease.LEASE_MS > node_lease.RENEW_EVERY_S * 1000 + node_lease.SAFETY_S * 1000


# -- 6: the id index stores runs of ids ---------------------------------------------------------
def test_6_a_run_of_ids_crosses_a_sequence_overflow_and_an_hour() -> None:
    from gotaskq.backends.redis.lookup import SEQ_SHIFT, ids_of_run, runs_of
    from gotaskq.ids import EPOCH_MS, MAX_SEQ, SEQ_BITS

    hour_end = (3_600_000 * 500_000 - EPOCH_MS - 1) << SEQ_SHIFT  # the last ms of an hour
    first = hour_end | (7 << SEQ_BITS) | (MAX_SEQ - 1)
    ids = ids_of_run(first, ((hour_end >> SEQ_SHIFT) + 1) << SEQ_SHIFT | (7 << SEQ_BITS) | 1)
    assert [i & MAX_SEQ for i in ids] == [MAX_SEQ - 1, MAX_SEQ, 0, 1]
    assert len({(i >> SEQ_BITS) & 1023 for i in ids}) == 1, "one node id throughout"
    runs = runs_of("q", [str(ids[0]), str(ids[-1])])
    assert [r.score for r in runs][1] == 0 and runs[0].bucket != runs[1].bucket


async def test_6_every_job_of_a_multi_queue_batch_is_found_from_another_process(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    b: RedisBackend = await make_redis()
    for q in ("a", "b"):
        await b.create_queue(q)
    jobs = [e.job for e in await b.enqueue_many([spec(queue="ab"[i % 2]) for i in range(1000)])]
    other = RedisBackend(redis_settings(b.settings.redis_url or ""))
    await other.connect()
    try:
        reads = ("zrevrangebyscore", "hgetall")
        before = sum(commands(raw, c) for c in reads)
        found = await asyncio.gather(*(other.get_job(j.id) for j in jobs))
        assert [(f.id, f.queue) for f in found if f is not None] == [(j.id, j.queue) for j in jobs]
        assert sum(commands(raw, c) for c in reads) - before == 2 * len(jobs), "one index read, one job read"
        assert len(raw.keys("gtq:ix:*:*")) == 1, "one bucket: one process, one hour"
        calls = 1000 // redis_backend_module.CHUNK
        assert raw.zcard(raw.keys("gtq:ix:*:*")[0]) <= calls + 2, "a run per script call, not an entry per job"
    finally:
        await other.close()
