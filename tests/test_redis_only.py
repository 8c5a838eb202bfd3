"""Behaviour only a real redis-server shows: script cache, restarts, cluster slots, memory limits."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from conftest import RedisServer, _free_port, redis_settings
from redis.crc import key_slot

from gotaskq import keys
from gotaskq.app import App
from gotaskq.backends.base import Completion, QueueSettings, RateLimit
from gotaskq.backends.redis import RedisBackend, wake
from gotaskq.backends.redis.codec import split_m
from gotaskq.backends.redis.connection import Commands, send_all
from gotaskq.backends.redis.scripts import NAMES, lua_source, script_keys
from gotaskq.errors import BackendUnavailable
from gotaskq.job import Job, NewJob
from gotaskq.states import JobStatus
from gotaskq.worker import Worker

pytestmark = pytest.mark.redis
S = JobStatus
ROOT = Path(__file__).resolve().parents[1]
LEASE_MS = 30_000
DEADLINE_S = 15.0
GLOBAL_KEYS = {keys.QUEUES.encode(), keys.ACTIVE.encode()}


@pytest.fixture
def gotaskq_redis_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog wired straight to the backend's logger (setup_logging may stop propagation)."""
    logger = logging.getLogger("gotaskq.redis")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.WARNING)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


async def until(pred: Callable[[], Any], timeout: float = DEADLINE_S, what: str = "") -> Any:
    """Retry an async ``pred`` (exceptions count as 'not yet') until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = await pred()
            if got:
                return got
        except BackendUnavailable as exc:
            last = exc
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def spec(**kw: Any) -> NewJob:
    return NewJob.build("t", {"n": 1}, **kw)


# -- script cache ---------------------------------------------------------------------------
async def test_every_operation_survives_a_script_flush(make_redis: Callable[..., Any], raw: redis.Redis) -> None:
    b: RedisBackend = await make_redis()

    def flush() -> None:
        raw.script_flush()
        assert raw.script_exists(b.scripts.enqueue.sha) == [False]

    flush()
    a = (await b.enqueue(spec(max_retries=0, idempotency_key="k1"))).job
    assert raw.script_exists(b.scripts.enqueue.sha) == [True], "EVALSHA fell back to loading the script"
    flush()
    c = (await b.enqueue(spec())).job
    flush()
    later = (await b.enqueue(spec(delay=60))).job
    flush()
    batch = await b.claim("default", 2, LEASE_MS)
    got = {x.job.id: x for x in batch.jobs}
    assert set(got) == {a.id, c.id}
    flush()
    assert await b.extend_leases("default", [(a.id, got[a.id].token)], LEASE_MS) == [True]
    flush()
    assert (await b.fail(got[a.id].job, got[a.id].token, "boom", 0)).status is S.DEAD
    flush()
    assert await b.release("default", [(c.id, got[c.id].token)]) == [True]
    flush()
    assert (await b.replay(a.id)).status is S.PENDING
    flush()
    again = await b.claim("default", 2, 1)
    assert {x.job.id for x in again.jobs} == {a.id, c.id}
    await asyncio.sleep(0.01)
    flush()
    recovered = await b.recover_expired("default")
    assert (recovered.requeued, recovered.dead) == ([c.id], [a.id])  # a has no retries left
    flush()
    third = (await b.claim("default", 2, LEASE_MS)).jobs
    assert [x.job.id for x in third] == [c.id]
    flush()
    assert await b.complete("default", [Completion(c.id, third[0].token, b'"ok"')]) == [True]
    flush()
    await b.delete_dead(a.id)
    flush()
    assert (await b.cancel(later.id)).status is S.CANCELLED
    done = await b.get_job(c.id)
    assert done is not None and done.status is S.DONE and done.result == "ok"
    assert await b.get_job(a.id) is None


# -- restarts -------------------------------------------------------------------------------
async def test_a_worker_resumes_after_redis_restarts(redis_server: RedisServer, raw: redis.Redis) -> None:
    """bull#1873: a worker waiting for work while Redis restarts must pick up new work after."""
    app = App(redis_settings(redis_server.url), builtins=False)
    ran: list[str] = []

    @app.task("t")
    async def t(job: Job) -> str:
        ran.append(job.id)
        return "ok"

    await app.start()
    worker: Worker = app.worker()
    task = asyncio.create_task(worker.run())
    try:
        before = await app.enqueue("t")
        await until(lambda: _status_is(app, before.id, S.DONE), what="the job before the restart")
        await asyncio.sleep(0.1)  # the worker is now idle, waiting for work
        await asyncio.to_thread(redis_server.restart)  # no persistence: every key is gone
        assert raw.dbsize() == 0
        await until(lambda: app.create_queue("default"), what="the queue to be re-created")
        after = await until(lambda: app.enqueue("t"), what="an enqueue after the restart")
        await until(lambda: _status_is(app, after.id, S.DONE), what="the job enqueued after the restart")
        assert ran == [before.id, after.id]
        assert not task.done(), "the worker must keep running, not be restarted"
    finally:
        await asyncio.wait_for(worker.stop(), 10)
        await task
        await app.close()


async def _status_is(app: App, job_id: str, status: JobStatus) -> bool:
    job = await app.get_job(job_id)
    return job is not None and job.status is status


async def test_an_enqueue_while_the_wake_channel_subscribes_is_not_lost(
    make_redis: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer: RedisBackend = await make_redis()
    producer: RedisBackend = await make_redis()
    subscribing = asyncio.Event()
    go = asyncio.Event()
    real_pubsub = consumer.client.pubsub

    def slow_pubsub(**kw: Any) -> Any:
        """The SUBSCRIBE round trip, held open until the producer has published."""
        ps = real_pubsub(**kw)
        real_subscribe = ps.subscribe

        async def subscribe(*a: Any, **k: Any) -> Any:
            subscribing.set()
            await go.wait()
            return await real_subscribe(*a, **k)

        ps.subscribe = subscribe
        return ps

    monkeypatch.setattr(consumer.client, "pubsub", slow_pubsub)
    waiting = asyncio.create_task(consumer.wait_for_work(1.5))
    await asyncio.wait_for(subscribing.wait(), 5)
    await producer.enqueue(spec())  # published while the consumer is not yet subscribed
    t0 = time.monotonic()
    go.set()
    await waiting
    assert time.monotonic() - t0 < 0.5, "the waiter slept through an enqueue made while it subscribed"


async def test_an_idle_wake_subscription_pings_and_still_hears_notices(
    make_redis: Callable[..., Any], raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wake reader blocks without a timeout (a cheaper read per notice): a PING every
    PING_S writes something while idle, so a connection that died silently errors out and is
    subscribed again. The pongs are skipped; notices after them still wake the waiter."""
    monkeypatch.setattr(wake, "PING_S", 0.05)
    consumer: RedisBackend = await make_redis()
    producer: RedisBackend = await make_redis()
    await consumer.wait_for_work(5.0)  # subscribes (the subscription itself wakes it once)
    pings = raw.info("commandstats").get("cmdstat_ping", {}).get("calls", 0)
    await asyncio.sleep(0.4)  # an idle subscription: the pinger runs
    idle_pings = raw.info("commandstats").get("cmdstat_ping", {}).get("calls", 0) - pings
    assert idle_pings >= 3, f"{idle_pings} PINGs in 0.4 s of an idle subscription"
    for _ in range(3):
        await consumer.wait_for_work(0.06)  # takes any wake-up already there, and waits past a pong
        t0 = time.monotonic()
        waiting = asyncio.create_task(consumer.wait_for_work(5.0))
        await asyncio.sleep(0.1)
        assert not waiting.done(), "a pong woke the waiter"
        await producer.enqueue(spec())
        await waiting
        assert time.monotonic() - t0 < 1.0, "a notice after the pongs did not wake the waiter"


async def test_wake_notices_are_not_formatted_for_a_debug_log_each(
    make_redis: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """RESP3 delivers notices as pushes; redis-py's handler for them formats each one for a
    DEBUG line of its "push_response" logger (and takes the logging lock): the reader skips it."""
    consumer: RedisBackend = await make_redis()
    producer: RedisBackend = await make_redis()
    await consumer.wait_for_work(5.0)  # subscribed
    with caplog.at_level(logging.DEBUG, logger="push_response"):
        for _ in range(3):
            await _a_notice_wakes_the_waiter(consumer, producer, "the notice did not wake the waiter")
    assert [r.getMessage()[:40] for r in caplog.records if r.name == "push_response"] == []


async def test_a_wake_subscription_that_answers_nothing_is_replaced(
    make_redis: Callable[..., Any], raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection that died without a word never errors on a blocking read: when a PING
    gets nothing back by the next one, the reader closes it and the listener subscribes again
    (CLIENT PAUSE makes the server answer nothing for a while)."""
    monkeypatch.setattr(wake, "PING_S", 0.05)
    consumer: RedisBackend = await make_redis()
    producer: RedisBackend = await make_redis()
    await consumer.wait_for_work(5.0)  # subscribed

    def subscribes() -> int:
        return int(raw.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0))

    before = subscribes()
    raw.execute_command("CLIENT", "PAUSE", 400, "ALL")
    await asyncio.sleep(0.5)  # (raw would block during the pause)

    async def subscribed_again() -> bool:
        return subscribes() > before

    await until(subscribed_again, 5.0, "a new subscription after the silent one")
    await _a_notice_wakes_the_waiter(consumer, producer, "the new subscription hears notices")


async def _a_notice_wakes_the_waiter(consumer: RedisBackend, producer: RedisBackend, why: str) -> None:
    """An enqueue on ``producer`` wakes a ``consumer`` waiting for work, within a second."""
    await consumer.wait_for_work(0.06)  # takes any wake-up already there (a new subscription gives one)
    waiting = asyncio.create_task(consumer.wait_for_work(5.0))
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    await producer.enqueue(spec())
    await waiting
    assert time.monotonic() - t0 < 1.0, why


# -- key layout -----------------------------------------------------------------------------
def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


async def test_every_key_of_a_queue_is_in_the_slot_of_its_hash_tag(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    b: RedisBackend = await make_redis()
    queues = ["default", "mail.v2-x_y"]
    await b.create_queue(queues[1])
    for q in queues:
        jobs = [(await b.enqueue(spec(queue=q, idempotency_key=f"idem-{i}", max_retries=0))).job for i in range(4)]
        await b.enqueue(spec(queue=q, delay=60))
        batch = {x.job.id: x for x in (await b.claim(q, 3, LEASE_MS)).jobs}
        ok, dead, _ = (batch[j.id] for j in jobs[:3])
        assert await b.complete(q, [Completion(ok.job.id, ok.token, b"1")]) == [True]
        await b.fail(dead.job, dead.token, "boom", 0)
        await b.cancel(jobs[3].id)
        await b.enqueue(spec(queue=q))
    all_keys = set(raw.scan_iter(count=1000))
    assert GLOBAL_KEYS <= all_keys
    per_queue: dict[str, list[bytes]] = {q: [] for q in queues}
    for key in {k for k in all_keys if not keys.is_global(k)}:
        owners = [q for q in queues if f"{{{q}}}".encode() in key]
        assert len(owners) == 1, f"key {key!r} carries no queue hash tag"
        per_queue[owners[0]].append(key)
    for q, ks in per_queue.items():
        expected = crc16_xmodem(q.encode()) % 16384
        assert expected == key_slot(q.encode())
        assert {key_slot(k) for k in ks} == {expected}, f"keys of {q} span several slots: {ks}"
        suffixes = {k.decode().split("}:", 1)[1].split(":", 1)[0] for k in ks}
        assert {"meta", "ready", "delayed", "running", "dead", "j", "idem"} <= suffixes


async def test_done_jobs_expire_and_waiting_jobs_do_not(make_redis: Callable[..., Any], raw: redis.Redis) -> None:
    b: RedisBackend = await make_redis(complete_job_ttl=120.0)
    done = (await b.enqueue(spec())).job
    running = (await b.enqueue(spec())).job
    dead = (await b.enqueue(spec(max_retries=0))).job
    batch = {x.job.id: x for x in (await b.claim("default", 3, LEASE_MS)).jobs}
    assert await b.complete("default", [Completion(done.id, batch[done.id].token, b"1")]) == [True]
    await b.fail(batch[dead.id].job, batch[dead.id].token, "boom", 0)
    pending = (await b.enqueue(spec())).job
    scheduled = (await b.enqueue(spec(delay=60))).job
    cancelled = (await b.enqueue(spec(delay=60))).job
    await b.cancel(cancelled.id)

    def pttl(job: Job) -> int:
        return int(raw.pttl(keys.job_key("default", job.id)))

    # a DONE record goes by its done-set score (see keys.py), a CANCELLED one by its key TTL
    go_at = raw.zscore(keys.queue_prefix("default") + "completed", done.id)
    assert pttl(done) == -1 and go_at is not None and 0 < go_at - time.time() * 1000 <= 120_000
    assert 0 < pttl(cancelled) <= 120_000
    for waiting in (pending, scheduled, running, dead):
        assert pttl(waiting) == -1, f"a {waiting.id} job key must never expire"
    for suffix in ("meta", "ready", "delayed", "running", "dead"):
        assert raw.pttl(keys.queue_prefix("default") + suffix) == -1, suffix


async def test_the_ready_and_running_sets_stay_skiplists_and_hold_only_jobs(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    """A small sorted set is a listpack, where adding a member scans and moves the whole list
    (16 us a job at 100 waiting, against 4 as a skiplist). enqueue.lua and claim.lua convert
    the sets they add jobs to with a long member they take out again in the same call."""
    b: RedisBackend = await make_redis()
    p = keys.queue_prefix("default")
    first = (await b.enqueue(spec())).job
    assert raw.object("encoding", p + "ready") == b"skiplist"
    assert raw.zrange(p + "ready", 0, -1) == [first.id.encode()]
    raw.delete(p + "ready")
    raw.zadd(p + "ready", {first.id: 1})  # as an older version or another script left it
    assert raw.object("encoding", p + "ready") == b"listpack"
    second = (await b.enqueue(spec())).job
    assert raw.object("encoding", p + "ready") == b"skiplist"
    claimed = (await b.claim("default", 1, LEASE_MS)).jobs
    assert [c.job.id for c in claimed] == [first.id]
    assert raw.object("encoding", p + "running") == b"skiplist"
    assert raw.zrange(p + "running", 0, -1) == [first.id.encode()]
    assert raw.zrange(p + "ready", 0, -1) == [second.id.encode()]
    assert await b.complete("default", [Completion(first.id, claimed[0].token, b"1")]) == [True]
    assert raw.exists(p + "running") == 0  # emptied: the next claim makes a new one


# -- operating conditions -------------------------------------------------------------------
async def test_a_warning_when_redis_may_evict_keys(
    redis_server: RedisServer, raw: redis.Redis, gotaskq_redis_log: pytest.LogCaptureFixture
) -> None:
    raw.config_set("maxmemory-policy", "allkeys-lru")
    try:
        b = RedisBackend(redis_settings(redis_server.url))
        await b.connect()
        await b.close()
    finally:
        raw.config_set("maxmemory-policy", "noeviction")
    warnings = [r for r in gotaskq_redis_log.records if r.levelno == logging.WARNING]
    assert any("noeviction" in r.getMessage() and "allkeys-lru" in r.getMessage() for r in warnings), warnings
    gotaskq_redis_log.clear()
    b = RedisBackend(redis_settings(redis_server.url))
    await b.connect()
    await b.close()
    assert not [r for r in gotaskq_redis_log.records if "noeviction" in r.getMessage()]


async def test_a_closed_port_raises_backend_unavailable() -> None:
    b = RedisBackend(redis_settings(f"redis://127.0.0.1:{_free_port()}/0"))
    await b.connect()  # starts anyway: readiness reports the outage
    try:
        with pytest.raises(BackendUnavailable):
            await b.ping()
        with pytest.raises(BackendUnavailable):
            await b.enqueue(spec())
        with pytest.raises(BackendUnavailable):
            await b.claim("default", 1, LEASE_MS)
        with pytest.raises(BackendUnavailable):
            await b.create_queue("default")
    finally:
        await b.close()


async def test_a_redis_that_goes_away_raises_backend_unavailable(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    assert binary is not None
    server = RedisServer(binary, _free_port(), tmp_path)
    server.start()
    b = RedisBackend(redis_settings(server.url))
    try:
        await b.connect()
        await b.create_queue("default")
        await b.enqueue(spec())
        server.stop()
        for call in (b.ping, lambda: b.enqueue(spec()), lambda: b.claim("default", 1, LEASE_MS), b.list_queues):
            with pytest.raises(BackendUnavailable):
                await call()
    finally:
        server.stop()
        await b.close()


async def test_out_of_memory_writes_nothing(make_redis: Callable[..., Any], raw: redis.Redis) -> None:
    b: RedisBackend = await make_redis()
    await b.enqueue(spec())  # scripts loaded, node id taken
    keys_before = set(raw.scan_iter(count=1000))
    raw.config_set("maxmemory", 1)
    try:
        for new in (spec(), spec(delay=5, idempotency_key="k")):
            with pytest.raises((BackendUnavailable, redis.RedisError)):
                await b.enqueue(new)
    finally:
        raw.config_set("maxmemory", 0)
    assert set(raw.scan_iter(count=1000)) == keys_before
    info = await b.queue_info("default")
    assert (info.pending, info.scheduled) == (1, 0)
    await b.enqueue(spec())  # and it works again once memory is back


async def test_out_of_memory_is_backend_unavailable(make_redis: Callable[..., Any], raw: redis.Redis) -> None:
    b: RedisBackend = await make_redis()
    await b.enqueue(spec())
    raw.config_set("maxmemory", 1)
    try:
        with pytest.raises(BackendUnavailable):
            await b.enqueue(spec())
    finally:
        raw.config_set("maxmemory", 0)


def _refusals(raw: redis.Redis, code: str) -> int:
    return int(raw.info("errorstats").get(f"errorstat_{code}", {}).get("count", 0))


async def test_a_worker_survives_redis_turning_read_only(redis_server: RedisServer, raw: redis.Redis) -> None:
    app = App(redis_settings(redis_server.url), builtins=False)

    @app.task("t")
    async def t(job: Job) -> str:
        return "ok"

    await app.start()
    worker: Worker = app.worker()
    task = asyncio.create_task(worker.run())
    try:
        job = await app.enqueue("t", delay=0.3)
        before = _refusals(raw, "READONLY")
        raw.replicaof("127.0.0.1", _free_port())  # a replica of nobody: every write is refused
        try:  # promoting the due job is a write
            await until(
                lambda: asyncio.to_thread(lambda: _refusals(raw, "READONLY") > before), what="a READONLY refusal"
            )
        finally:
            raw.replicaof("NO", "ONE")
        await until(lambda: _status_is(app, job.id, S.DONE), timeout=4.0, what="the job once writable again")
    finally:
        await asyncio.wait_for(worker.stop(), 10)
        await task
        await app.close()


# -- the connections send_all keeps out of the pool (connection.Lane) ----------------------
async def test_connections_killed_while_idle_are_replaced_not_failed(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    """In the lane and in the pool (redis-py 8.1.0 hands out a closed pooled connection:
    redis/redis-py#4252; connection.CheckedPool)."""
    backend = await make_redis()
    first = (await backend.enqueue(spec())).job
    assert await backend.get_job(first.id) is not None  # a pooled connection, idle from now on
    lane = backend._client.gtq_lane
    assert lane.idle, "an enqueue leaves its connection in the lane"
    raw.client_kill_filter(_type="normal", skipme=True)  # what a restart or CLIENT KILL does
    await asyncio.sleep(0.1)  # the loop sees the EOF
    job = (await backend.enqueue(spec())).job  # a new connection, not a 503
    assert raw.exists(f"{keys.queue_prefix('default')}j:{job.id}")
    assert await backend.get_job(first.id) is not None


async def test_the_lanes_are_connected_at_start_so_the_first_calls_open_nothing(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    """Under load the first calls after a start each opened a connection (a TCP connect and the
    HELLO and CLIENT SETINFO round trips): the first jobs' enqueue -> start was the run's worst."""
    backend = await make_redis()
    for client in (backend._client, backend._wclient):
        lane = client.gtq_lane
        assert lane.size and len(lane.idle) == lane.size
        assert all(c.is_connected for c in lane.idle)
    # and the scripts are loaded: no first call gets NOSCRIPT (and loads it on a new connection)
    assert all(raw.script_exists(*(getattr(backend._scripts, n).sha for n in NAMES)))
    queues = [f"q{i}" for i in range(backend._client.gtq_lane.size)]  # one call each (not coalesced)
    for q in queues:
        await backend.create_queue(q)
    before = len(raw.client_list())
    await asyncio.gather(*(backend.enqueue(spec(queue=q)) for q in queues))
    await asyncio.gather(*(backend.claim("default", 1, LEASE_MS) for _ in range(backend._wclient.gtq_lane.size)))
    assert len(raw.client_list()) == before, " ".join(f"{c['id']}:{c['cmd']}" for c in raw.client_list())


async def test_an_api_process_connects_only_its_own_lane_at_start(make_redis: Callable[..., Any]) -> None:
    """NUM_WORKERS=0 (`gotaskq api`): the worker client's connections stay closed until used."""
    backend = await make_redis(num_workers=0)
    assert backend._client is not backend._wclient
    api_lane, worker_lane = backend._client.gtq_lane, backend._wclient.gtq_lane
    assert api_lane.size and len(api_lane.idle) == api_lane.size
    assert worker_lane.size and not worker_lane.idle
    await backend.claim("default", 1, LEASE_MS)  # and it still works when one is wanted
    assert worker_lane.idle


def _command(*args: Any) -> Commands:
    one = Commands()
    one.execute_command(*args)
    return one


async def test_a_cancelled_exchange_never_leaves_its_connection_in_the_lane(make_redis: Callable[..., Any]) -> None:
    client = (await make_redis())._client
    call = asyncio.create_task(send_all(client, _command("BLPOP", "gtq:test:nothing", "0.3")))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.4)  # the BLPOP's nil reply arrives on the cancelled connection
    for _ in range(client.gtq_lane.size + 1):  # whichever connection the lane hands out
        assert await send_all(client, _command("PING")) == [b"PONG"]


async def test_a_read_only_reply_takes_the_connection_out_of_the_lane(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    client = (await make_redis())._client
    write = _command("SET", "gtq:test:k", "1")
    assert await send_all(client, write) == [b"OK"]
    assert client.gtq_lane.idle
    used = client.gtq_lane.idle[-1]  # the next call's (the lane hands out its last)
    raw.replicaof("127.0.0.1", _free_port())  # a replica of nobody: every write is refused
    try:
        out = await send_all(client, write)
        assert isinstance(out[0], redis.exceptions.ReadOnlyError)
        assert used not in client.gtq_lane.idle, "a replica's connection is not kept"
    finally:
        raw.replicaof("NO", "ONE")
    assert await send_all(client, write) == [b"OK"]


# -- shipping the scripts -------------------------------------------------------------------
def test_every_lua_script_ships_and_loads() -> None:
    on_disk = sorted(p.stem for p in (ROOT / "lua").glob("*.lua"))
    assert sorted(NAMES) == on_disk
    for name in NAMES:
        text = lua_source(name)
        assert text == (ROOT / "lua" / f"{name}.lua").read_text()
        assert text.startswith(f"-- {name}:")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include.get("lua") == "gotaskq/lua", "the wheel must carry lua/ as gotaskq/lua"


# -- jobs written before the packed layout ("m", "p") -----------------------------------------
async def test_jobs_stored_field_by_field_still_run_through_every_transition(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    """Round-2 code stored type, payload, pri, maxr, tmo as fields of their own: an upgrade must
    claim, fail, recover, replay and run such jobs as it does its own."""
    b: RedisBackend = await make_redis()
    # one call: one indexed run of three ids; the last two are then rewritten the old way
    _, old_retry_job, old_dead_job = (e.job for e in await b.enqueue_many([spec(priority=1) for _ in range(3)]))
    p = keys.queue_prefix("default")
    now = int(time.time() * 1000)
    for jid, pri, maxr in ((old_retry_job.id, 7, 1), (old_dead_job.id, 0, 0)):
        raw.delete(f"{p}j:{jid}")
        raw.hset(
            f"{p}j:{jid}",
            mapping={
                "type": "old",
                "payload": '{"v":2}',
                "pri": pri,
                "maxr": maxr,
                "tmo": 5000,
                "ca": now,
                "st": "PENDING",
            },
        )
        raw.zadd(f"{p}ready", {jid: now - pri * b._aging_ms})
    old_retry, old_dead = old_retry_job.id, old_dead_job.id
    batch = await b.claim("default", 3, LEASE_MS)
    got = {c.job.id: c for c in batch.jobs}
    assert batch.jobs[0].job.id == old_retry  # its own pri field still orders it
    c = got[old_retry]
    assert (c.job.type, c.job.payload, c.job.priority, c.job.max_retries, c.job.timeout) == ("old", {"v": 2}, 7, 1, 5.0)
    out = await b.fail(c.job, c.token, "boom", 60_000)
    assert out.status is S.SCHEDULED
    assert (await b.run_now(old_retry)).status is S.PENDING
    again = await b.claim("default", 1, LEASE_MS)
    assert [j.job.id for j in again.jobs] == [old_retry]
    assert (await b.fail(again.jobs[0].job, again.jobs[0].token, "boom", 0)).status is S.DEAD  # maxr 1 read
    d = got[old_dead]
    assert (await b.fail(d.job, d.token, "boom", 0)).status is S.DEAD
    assert (await b.replay(old_dead)).status is S.PENDING
    c2 = (await b.claim("default", 1, LEASE_MS)).jobs[0]
    assert c2.job.id == old_dead and c2.job.attempts == 1
    assert await b.release("default", [(c2.job.id, c2.token)]) == [True]
    fetched = await b.get_job(old_dead)
    assert fetched is not None and (fetched.type, fetched.payload, fetched.status) == ("old", {"v": 2}, S.PENDING)


async def test_claim_reads_run_and_idem_only_for_jobs_without_the_tab(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    """m ends with a tab for a job enqueued with no delay, run_at or idempotency key, and claim
    then skips reading run and idem. A job stored without the tab (with a key or a delay, or
    by an older version) has them read; an older version reads m with the tab (int() takes it)."""
    b: RedisBackend = await make_redis()
    p = keys.queue_prefix("default")
    plain, keyed, old = (e.job for e in await b.enqueue_many([spec(), spec(idempotency_key="k-tab"), spec(priority=2)]))
    stored = {j.id: raw.hget(f"{p}j:{j.id}", "m") for j in (plain, keyed, old)}
    assert stored[plain.id] == stored[old.id].replace(b"\n2 ", b"\n0 ") == b"t\n0 3 300000\t"
    assert stored[keyed.id] == b"t\n0 3 300000"
    assert split_m(stored[plain.id]) == ("t", 0, 3, 300000)
    # as an older version stored it: no tab, and an idempotency key the claim must hand over
    raw.hset(f"{p}j:{old.id}", mapping={"m": "t\n2 3 300000", "idem": "old-key"})
    got = {c.job.id: c.job for c in (await b.claim("default", 3, LEASE_MS)).jobs}
    assert {jid: (j.idempotency_key, j.created_at) for jid, j in got.items()} == {
        plain.id: (None, plain.created_at),
        keyed.id: ("k-tab", keyed.created_at),
        old.id: ("old-key", old.created_at),
    }
    assert (got[old.id].priority, got[plain.id].timeout) == (2, 300.0)


def _enqueue_raw(b: RedisBackend, raw: redis.Redis, args: list[Any]) -> Any:
    """enqueue.lua called with arguments the test made (ids of its choosing: the backend draws
    them itself), as ``b._args`` builds them."""
    k = script_keys("enqueue", "default")
    return raw.evalsha(b.scripts.enqueue.sha, len(k), *k, *args)


async def test_a_key_naming_an_id_of_the_same_call_writes_each_job_to_its_own_hash(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    """An idempotency key left behind by a deleted job whose id comes round again in this call
    (ids are never reused while node ids are leased; this is the guard if one were): the key is
    dead when the call is checked and names a written job by the time its own job is written.
    What the check decided holds: every job lands in its own hash and is claimed with it."""
    b: RedisBackend = await make_redis()
    p = keys.queue_prefix("default")
    specs = [NewJob.build("t", {"n": 0}), NewJob.build("t", {"n": 1}, idempotency_key="K"), NewJob.build("t", {"n": 2})]
    ids = ["900001", "900002", "900003"]
    raw.set(f"{p}idem:K", "900001 " + specs[1].fingerprint())
    res = _enqueue_raw(b, raw, b._args("default", specs, ids, [0, 1, 2], False))
    assert res[1:] == [0, 0, 0]  # three jobs created, none a replay
    assert {jid: orjson.loads(raw.hget(f"{p}j:{jid}", "p")) for jid in ids} == {
        jid: {"n": i} for i, jid in enumerate(ids)
    }
    assert raw.get(f"{p}idem:K").startswith(b"900002 ")  # the key now names its new job
    got = {c.job.id: c.job.payload for c in (await b.claim("default", 3, LEASE_MS)).jobs}
    assert got == {jid: {"n": i} for i, jid in enumerate(ids)}


async def test_enqueue_keeps_the_tab_off_a_job_with_a_run_time_or_a_key(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    """The tab tells claim a job has no run or idem field: enqueue.lua drops it from such a job
    whatever the caller sent, so a key is never lost at claim (its record's TTL follows it)."""
    b: RedisBackend = await make_redis()
    p = keys.queue_prefix("default")
    specs = [spec(idempotency_key="tabbed"), spec(delay=0.05), spec()]
    ids = ["910001", "910002", "910003"]
    args = b._args("default", specs, ids, [0, 1, 2], False)
    step = args[7]
    assert step == 4
    for j in range(3):  # forge the tab onto every job's m
        at = 8 + j * step + 1
        if not args[at].endswith("\t"):
            args[at] += "\t"
    _enqueue_raw(b, raw, args)
    assert [raw.hget(f"{p}j:{jid}", "m").endswith(b"\t") for jid in ids] == [False, False, True]
    await asyncio.sleep(0.1)
    got = {c.job.id: c.job for c in (await b.claim("default", 3, LEASE_MS)).jobs}
    assert got["910001"].idempotency_key == "tabbed" and got["910002"].run_at is not None


async def test_claim_drops_an_id_whose_job_is_gone_and_leases_the_rest(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    """An id in the ready set without its hash (evicted, or deleted by hand) used to stop the
    claim script half-way, after the ids had left the ready set: the jobs of that call were
    stranded. Now the id is dropped and the others are leased."""
    b: RedisBackend = await make_redis()
    p = keys.queue_prefix("default")
    first = (await b.enqueue(spec())).job
    raw.zadd(f"{p}ready", {"999999": 0})  # first in line, no hash
    second = (await b.enqueue(spec())).job
    batch = await b.claim("default", 3, LEASE_MS)
    assert sorted(c.job.id for c in batch.jobs) == sorted([first.id, second.id])
    assert raw.zcard(f"{p}ready") == 0
    assert sorted(raw.zrange(f"{p}running", 0, -1)) == sorted([first.id.encode(), second.id.encode()])


async def test_the_recovery_pass_deletes_expired_done_records(make_redis: Callable[..., Any], raw: redis.Redis) -> None:
    """With no later completion in the queue, the worker's recovery pass deletes DONE records
    past COMPLETE_JOB_TTL (no PEXPIRE a job: the done set says when), a bounded slice a call,
    and nothing of them is left (memory back to where it was)."""
    b: RedisBackend = await make_redis(complete_job_ttl=0.3)
    ids = [(await b.enqueue(spec())).job.id for _ in range(3)]
    claimed = (await b.claim("default", 3, LEASE_MS)).jobs
    assert await b.complete("default", [Completion(c.job.id, c.token, b"1") for c in claimed]) == [True] * 3
    done = keys.queue_prefix("default") + "completed"
    assert raw.zcard(done) == 3
    assert all(raw.pttl(keys.job_key("default", jid)) == -1 for jid in ids)  # no key expiry of their own
    assert (await b.recover_expired("default")).expired == 0  # not yet: their time has not come
    await asyncio.sleep(0.5)
    assert (await b.recover_expired("default", limit=2)).expired == 2
    assert (await b.recover_expired("default", limit=2)).expired == 1
    assert (await b.recover_expired("default", limit=2)).expired == 0
    assert raw.zcard(done) == 0
    assert sum(raw.exists(keys.job_key("default", jid)) for jid in ids) == 0


async def test_a_new_worker_deletes_expired_done_records_of_a_queue_no_one_lists(
    redis_server: RedisServer, raw: redis.Redis
) -> None:
    """Jobs completed by a process that is gone (a deploy): the queue holds no work, so no worker
    lists it, yet a new worker's housekeeping (at start, then once a minute) deletes the records."""
    app = App(redis_settings(redis_server.url, complete_job_ttl=0.2), builtins=False)
    await app.start()
    worker: Worker | None = None
    task: asyncio.Task[None] | None = None
    try:
        await app.create_queue("gone")
        job = await app.enqueue("t", queue="gone")
        c = (await app.backend.claim("gone", 1, LEASE_MS)).jobs[0]
        assert await app.backend.complete("gone", [Completion(job.id, c.token, b"1")]) == [True]
        await asyncio.sleep(0.4)
        key = keys.job_key("gone", job.id)
        assert raw.exists(key) == 1 and await app.get_job(job.id) is None  # past its time: not shown
        await app.backend.mark_idle("gone")  # as the gone process's worker did: no work is left
        assert "gone" not in await app.backend.active_queues()
        worker = app.worker()
        task = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 10
        while raw.exists(key):
            assert time.monotonic() < deadline, "the record was not deleted"
            await asyncio.sleep(0.05)
        assert raw.zcard(keys.queue_prefix("gone") + "completed") == 0
    finally:
        if worker is not None and task is not None:
            await asyncio.wait_for(worker.stop(), 10)
            await task
        await app.close()


async def test_a_completion_deletes_the_queues_expired_done_records(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    b: RedisBackend = await make_redis(complete_job_ttl=0.3)
    first = (await b.enqueue(spec())).job
    c = (await b.claim("default", 1, LEASE_MS)).jobs[0]
    assert await b.complete("default", [Completion(first.id, c.token, b"null")]) == [True]
    stored = await b.get_job(first.id)
    assert stored is not None and stored.status is S.DONE and stored.result is None
    assert raw.hexists(keys.job_key("default", first.id), "res") == 0  # a null result is no field
    await asyncio.sleep(0.5)
    second = (await b.enqueue(spec())).job
    c = (await b.claim("default", 1, LEASE_MS)).jobs[0]
    assert await b.complete("default", [Completion(second.id, c.token, b'{"ok":1}')]) == [True]
    assert await b.get_job(first.id) is None
    assert raw.zrange(keys.queue_prefix("default") + "completed", 0, -1) == [second.id.encode()]
    kept = await b.get_job(second.id)
    assert kept is not None and kept.result == {"ok": 1}


async def test_the_rate_window_counts_exactly_the_jobs_started(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    b: RedisBackend = await make_redis()
    await b.configure_queue("default", QueueSettings(rate_limit=RateLimit(5, 3600)))
    for _ in range(7):
        await b.enqueue(spec())
    assert len((await b.claim("default", 2, LEASE_MS)).jobs) == 2
    (window,) = raw.keys(keys.queue_prefix("default") + "rl:*")
    assert raw.get(window) == b"2" and 0 < raw.pttl(window) <= 2 * 3600 * 1000
    assert len((await b.claim("default", 10, LEASE_MS)).jobs) == 3
    assert raw.get(window) == b"5"


async def test_the_stats_hash_always_expires(make_redis: Callable[..., Any], raw: redis.Redis) -> None:
    """complete.lua sets its TTL when a minute's field is new, not on every call."""
    b: RedisBackend = await make_redis()
    for _ in range(3):
        await b.enqueue(spec())
        c = (await b.claim("default", 1, LEASE_MS)).jobs[0]
        assert await b.complete("default", [Completion(c.job.id, c.token, b"null", False)]) == [True]
    (stats,) = raw.keys(keys.queue_prefix("default") + "stats:*")
    assert 24 * 3600 * 1000 < raw.pttl(stats) <= 90_000_000
    assert sum(int(v) for k, v in raw.hgetall(stats).items() if k.startswith(b"done:")) == 3


@pytest.mark.parametrize("has_key", [True, None], ids=["the worker says it has a key", "not said"])
async def test_a_done_record_kept_for_its_idempotency_key_expires_on_its_own(
    make_redis: Callable[..., Any], raw: redis.Redis, has_key: bool | None
) -> None:
    """It may outlive every worker's pass (the key lives a day by default): it keeps a key TTL."""
    b: RedisBackend = await make_redis(complete_job_ttl=0.3, idempotency_ttl=60.0)
    job = (await b.enqueue(spec(idempotency_key="k"))).job
    c = (await b.claim("default", 1, LEASE_MS)).jobs[0]
    assert await b.complete("default", [Completion(job.id, c.token, b"1", has_key)]) == [True]
    assert 50_000 < raw.pttl(keys.job_key("default", job.id)) <= 60_000
    assert raw.zscore(keys.queue_prefix("default") + "completed", job.id) > time.time() * 1000 + 50_000


async def test_the_worker_tells_complete_whether_a_job_has_an_idempotency_key(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    """A completion says it (the key never changes after the enqueue), so complete.lua looks up
    the key field only for jobs that have one: a missing field is the costliest lookup."""
    b: RedisBackend = await make_redis(complete_job_ttl=60.0, idempotency_ttl=3600.0)
    app = App(b.settings, backend=b, builtins=False)
    seen: list[Completion] = []
    real = b.complete_and_claim

    async def spy(queue: str, done: Any, count: int, lease_ms: int) -> Any:
        seen.extend(done)
        return await real(queue, done, count, lease_ms)

    b.complete_and_claim = spy  # type: ignore[method-assign]
    b.complete = lambda queue, done: spy(queue, done, 0, LEASE_MS)  # type: ignore[method-assign]
    ran: list[str] = []

    @app.task("t")
    async def handler(job: Job) -> None:
        ran.append(job.id)

    keyed = (await b.enqueue(spec(idempotency_key="k"))).job
    plain = (await b.enqueue(spec())).job
    worker = Worker(app, concurrency=2)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            if {c.job_id for c in seen} >= {keyed.id, plain.id}:
                break
            await asyncio.sleep(0.02)
    finally:
        await worker.stop()
        await task
    assert {c.job_id: c.has_key for c in seen} == {keyed.id: True, plain.id: False}
    assert raw.pttl(keys.job_key("default", keyed.id)) > 3_000_000  # kept for its key
    assert raw.pttl(keys.job_key("default", plain.id)) == -1  # goes with the completed set


async def test_upgrade_older_done_listing_is_pruned_and_unlisted_done_records_go_by_finish_time(
    make_redis: Callable[..., Any], raw: redis.Redis
) -> None:
    """Older versions listed DONE jobs in "done" (their records had a key TTL): the recovery pass
    prunes it. A DONE record in no listing (a rollback and back) is shown until its finish time
    plus COMPLETE_JOB_TTL, as if listed."""
    b: RedisBackend = await make_redis(complete_job_ttl=60.0)
    p = keys.queue_prefix("default")
    raw.zadd(p + "done", {"123": 1, "456": time.time() * 1000 + 60_000})
    await b.recover_expired("default")
    assert raw.zrange(p + "done", 0, -1) == [b"456"]
    fresh = (await b.enqueue(spec())).job
    stale = (await b.enqueue(spec())).job
    batch = (await b.claim("default", 2, LEASE_MS)).jobs
    assert await b.complete("default", [Completion(c.job.id, c.token, b"1") for c in batch]) == [True, True]
    raw.zrem(p + "completed", fresh.id, stale.id)
    raw.hset(keys.job_key("default", stale.id), "fa", int(time.time() * 1000) - 61_000)
    assert (await b.get_job(fresh.id)) is not None
    assert (await b.get_job(stale.id)) is None


@pytest.mark.parametrize("options", [{}, {"priority": 2}], ids=["no-options", "options-no-key"])
async def test_an_enqueue_call_naming_a_taken_id_writes_nothing(
    make_redis: Callable[..., Any], raw: redis.Redis, options: dict[str, Any]
) -> None:
    """enqueue.lua's check pass for a call without keys (its short and full write loops): an id
    that names a stored job refuses the whole call (-7), before any write."""
    b: RedisBackend = await make_redis()
    held = (await b.enqueue(spec())).job
    specs = [spec(**options), spec(**options)]
    ids = ["999999999999999999", held.id]  # a fresh id first: the refusal must not write it
    keys_before = set(raw.scan_iter(count=1000))
    res = await b._run("enqueue", "default", b._args("default", specs, ids, [0, 1], False))
    assert res == [-7]
    assert set(raw.scan_iter(count=1000)) == keys_before
    stored = await b.get_job(held.id)
    assert stored is not None and stored.to_dict() == held.to_dict()
