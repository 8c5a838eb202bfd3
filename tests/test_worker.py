"""The Worker pool, run for real against the memory backend, fakeredis and a real redis-server."""

from __future__ import annotations

import asyncio
import io
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from conftest import MakeBackend, MakeSettings

from gotaskq import keys
from gotaskq import worker as worker_module
from gotaskq.app import App
from gotaskq.backends.base import Backend, Completion
from gotaskq.backends.redis import RedisBackend
from gotaskq.job import Job, now_ms
from gotaskq.states import JobStatus
from gotaskq.worker import Worker

S = JobStatus
FAST: dict[str, Any] = {
    "num_workers": 4,
    "visibility_timeout": 2.0,
    "base_delay": 0.01,
    "max_delay": 0.05,
    "recovery_interval": 0.05,
    "shutdown_grace": 1.0,
}
DEADLINE_S = 5.0
STOP_DEADLINE_S = 10.0


async def wait_until(pred: Callable[[], Awaitable[bool] | bool], timeout: float = DEADLINE_S, what: str = "") -> None:
    """Poll ``pred`` every 10 ms until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or pred}")
        await asyncio.sleep(0.01)


async def wait_status(app: App, job_id: str, *statuses: JobStatus, timeout: float = DEADLINE_S) -> Job:
    found: list[Job] = []

    async def reached() -> bool:
        job = await app.get_job(job_id)
        if job is not None and job.status in statuses:
            found.append(job)
            return True
        return False

    await wait_until(reached, timeout, f"job {job_id} to be {'/'.join(statuses)}")
    return found[-1]


def sample(app: App, name: str, **labels: str) -> float:
    value = app.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def wait_sample(app: App, name: str, expected: float, **labels: str) -> None:
    """The worker counts an outcome just after the backend recorded it: wait for the count."""
    await wait_until(lambda: sample(app, name, **labels) >= expected, what=f"{name}{labels} >= {expected}")
    assert sample(app, name, **labels) == expected


class Pool:
    """Builds apps on the parametrised backend and runs workers; stops every worker at teardown."""

    def __init__(self, make_backend: MakeBackend, make_settings: MakeSettings) -> None:
        self._make_backend = make_backend
        self._make_settings = make_settings
        self.running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def app(self, **overrides: Any) -> App:
        kw = {**FAST, **overrides}
        backend = await self._make_backend(**kw)
        app = App(self._make_settings(**kw), backend, builtins=False)
        await app.start()
        return app

    async def start(self, app: App, concurrency: int | None = None, backend: Backend | None = None) -> Worker:
        """Run a worker; return once it listens for wake-ups (so no test races the subscription)."""
        w: Worker = app.worker(concurrency)
        if backend is not None:
            w.backend = backend
        self.running.append((w, asyncio.create_task(w.run())))
        await wait_until(lambda: _subscribed(app.backend), what="the worker to subscribe to wake-ups")
        return w

    async def stop_all(self) -> None:
        for w, task in reversed(self.running):
            if not task.done():
                try:
                    await asyncio.wait_for(w.stop(), STOP_DEADLINE_S)
                except TimeoutError:
                    pytest.fail(f"worker.stop() hung for {STOP_DEADLINE_S}s; tasks:\n{_task_stacks()}")
            await task  # surfaces an exception that escaped run()


async def _subscribed(backend: Backend) -> bool:
    if not isinstance(backend, RedisBackend):
        return True
    if backend.cluster:  # shard channels, counted on the primary that owns the queue's slot
        channel = keys.wake_channel("default", True)
        node = backend.client.get_node_from_key(channel)
        counts = await backend.client.execute_command("PUBSUB SHARDNUMSUB", channel, target_nodes=node)
        return bool(counts) and int(counts[0][1]) >= 1
    counts = await backend.client.pubsub_numsub(keys.WAKE_CHANNEL)
    return bool(counts) and int(counts[0][1]) >= 1


def _task_stacks() -> str:
    out = io.StringIO()
    for t in asyncio.all_tasks():
        t.print_stack(limit=8, file=out)
    return out.getvalue()


@pytest.fixture
async def pool(make_backend: MakeBackend, make_settings: MakeSettings) -> Any:
    p = Pool(make_backend, make_settings)
    yield p
    await p.stop_all()


class NoHeartbeat:
    """A backend whose heartbeats claim success but do nothing: the lease silently expires."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def extend_leases(self, queue: str, leases: Sequence[tuple[str, int]], lease_ms: int) -> list[bool]:
        return [True] * len(leases)


# -- running handlers -----------------------------------------------------------------------
async def test_async_and_sync_handlers_store_their_result(pool: Pool) -> None:
    app = await pool.app()
    threads: dict[str, bool] = {}

    @app.task("add")
    async def add(job: Job) -> dict[str, int]:
        threads["add"] = threading.current_thread() is threading.main_thread()
        return {"sum": job.payload["a"] + job.payload["b"]}

    @app.task("mul")
    def mul(job: Job) -> int:
        threads["mul"] = threading.current_thread() is threading.main_thread()
        return int(job.payload["a"] * job.payload["b"])

    await pool.start(app)
    a = await app.enqueue("add", {"a": 2, "b": 3})
    m = await app.enqueue("mul", {"a": 4, "b": 5})
    a_done = await wait_status(app, a.id, S.DONE)
    m_done = await wait_status(app, m.id, S.DONE)
    assert a_done.result == {"sum": 5}
    assert m_done.result == 20
    for job in (a_done, m_done):
        assert job.attempts == 1
        assert job.last_error is None and job.errors == []
        assert job.finished_at is not None
    assert threads == {"add": True, "mul": False}, "sync handlers must run off the event loop"
    await wait_sample(app, "gotaskq_jobs_processed_total", 2, queue="default", status="done")


async def test_raising_handler_retries_then_goes_dead(pool: Pool) -> None:
    app = await pool.app()
    calls: list[int] = []

    @app.task("boom")
    async def boom(job: Job) -> None:
        calls.append(job.attempts)
        raise ValueError(f"boom {job.attempts}")

    await pool.start(app)
    job = await app.enqueue("boom", max_retries=2)
    dead = await wait_status(app, job.id, S.DEAD)
    assert calls == [1, 2, 3]
    assert dead.attempts == 3 == dead.max_retries + 1
    assert [e["attempt"] for e in dead.errors] == [1, 2, 3]
    assert [e["error"] for e in dead.errors] == ["ValueError: boom 1", "ValueError: boom 2", "ValueError: boom 3"]
    assert dead.last_error == "ValueError: boom 3"
    assert [j.id for j in (await app.dlq_list("default")).jobs] == [job.id]
    await wait_sample(app, "gotaskq_jobs_retried_total", 2, queue="default")
    await wait_sample(app, "gotaskq_jobs_dead_total", 1, queue="default")
    await wait_sample(app, "gotaskq_jobs_processed_total", 1, queue="default", status="dead")


async def test_a_failed_job_waits_for_its_backoff(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[tuple[int, float, float]] = []

    def fixed_delay(failures: int, base: float, cap: float) -> float:
        delays.append((failures, base, cap))
        return 0.25

    monkeypatch.setattr(worker_module, "retry_delay", fixed_delay)
    app = await pool.app()
    starts: list[float] = []

    @app.task("flaky")
    async def flaky(job: Job) -> str:
        starts.append(time.monotonic())
        if job.attempts == 1:
            raise RuntimeError("first try fails")
        return "ok"

    await pool.start(app)
    job = await app.enqueue("flaky", max_retries=3)
    scheduled = await wait_status(app, job.id, S.SCHEDULED)
    assert scheduled.run_at is not None and scheduled.last_error == "RuntimeError: first try fails"
    done = await wait_status(app, job.id, S.DONE)
    assert done.attempts == 2 and done.result == "ok"
    assert delays == [(1, FAST["base_delay"], FAST["max_delay"])]
    assert starts[1] - starts[0] >= 0.22, "the retry ran before its backoff delay"


async def test_unknown_job_type_goes_dead_and_the_worker_keeps_going(pool: Pool) -> None:
    app = await pool.app()

    @app.task("known")
    async def known(job: Job) -> str:
        return "fine"

    await pool.start(app)
    unknown = await app.enqueue("no.such.type", max_retries=1)
    dead = await wait_status(app, unknown.id, S.DEAD)
    assert dead.attempts == 2
    assert dead.last_error is not None and "no.such.type" in dead.last_error
    assert "UnknownJobType" in dead.last_error
    ok = await app.enqueue("known")
    assert (await wait_status(app, ok.id, S.DONE)).result == "fine"


async def test_what_a_handler_does_with_its_timeout_is_respected(pool: Pool) -> None:
    """A handler that swallows the timeout's cancel finishes normally; one that turns it into
    its own error fails with that error; a TimeoutError of its own is not 'timed out'."""
    app = await pool.app()

    @app.task("swallow")
    async def swallow(job: Job) -> str:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # the task must not be cancelled again after this
        return "kept going"

    @app.task("convert")
    async def convert(job: Job) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            raise ValueError("gave up") from None

    @app.task("convert_to_timeout")
    async def convert_to_timeout(job: Job) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            raise TimeoutError("cancelled") from None

    @app.task("own_timeout")
    async def own_timeout(job: Job) -> None:
        raise TimeoutError("upstream took too long")

    @app.task("after")
    async def after(job: Job) -> str:
        await asyncio.sleep(0.05)
        return "fine"

    await pool.start(app, concurrency=1)  # one runner: each job must leave it healthy
    ids = [
        (await app.enqueue(t, timeout=0.1, max_retries=0)).id
        for t in ("swallow", "convert", "convert_to_timeout", "own_timeout", "after")
    ]
    swallowed, converted, timed_out, own, later = [await wait_status(app, i, S.DONE, S.DEAD, timeout=5.0) for i in ids]
    assert (swallowed.status, swallowed.result) == (S.DONE, "kept going")
    assert converted.status is S.DEAD and converted.last_error == "ValueError: gave up"
    assert timed_out.status is S.DEAD and timed_out.last_error == "timed out after 0.1s"
    assert own.status is S.DEAD and own.last_error == "TimeoutError: upstream took too long"
    assert (later.status, later.result) == (S.DONE, "fine")


async def test_deadline_tells_its_cancel_from_another() -> None:
    """(settle(), cancels still pending) after the deadline fired, or another cancel came."""

    async def run(fire: bool, cancel_too: bool) -> tuple[bool, int]:
        async def body() -> tuple[bool, int]:
            task = asyncio.current_task()
            assert task is not None
            deadline = worker_module._Deadlines().new(task)
            deadline.start(0.01 if fire else 60)
            try:
                if cancel_too:
                    asyncio.get_running_loop().call_later(0.02, task.cancel)
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                return deadline.settle(), task.cancelling()
            return deadline.settle(), task.cancelling()

        return await asyncio.create_task(body())

    assert await run(fire=True, cancel_too=False) == (True, 0)
    assert await run(fire=False, cancel_too=True) == (False, 1)


async def test_a_sooner_deadline_rearms_the_shared_timer() -> None:
    """One timer serves every runner, armed for the earliest deadline: a short timeout that
    starts while a long one is armed still fires on time, and the long one stays armed."""
    deadlines = worker_module._Deadlines()
    loop = asyncio.get_running_loop()

    async def body(seconds: float) -> tuple[bool, float]:
        task = asyncio.current_task()
        assert task is not None
        deadline = deadlines.new(task)
        t0 = loop.time()
        deadline.start(seconds)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            pass
        return deadline.settle(), loop.time() - t0

    long = asyncio.create_task(body(60))
    await asyncio.sleep(0.01)
    assert 59 < deadlines.armed_at - loop.time() <= 60.02
    fired, took = await asyncio.create_task(body(0.05))
    assert fired and 0.05 <= took < 1.0
    assert 59 < deadlines.armed_at - loop.time() <= 60.02, "the long deadline must be armed again"
    long.cancel()
    settled, _ = await long
    assert settled is False, "a cancel from elsewhere is not the deadline's"


async def test_job_timeout_counts_as_a_failure(pool: Pool) -> None:
    app = await pool.app()
    cancelled = asyncio.Event()

    @app.task("slow")
    async def slow(job: Job) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await pool.start(app)
    t0 = time.monotonic()
    job = await app.enqueue("slow", timeout=0.1, max_retries=0)
    dead = await wait_status(app, job.id, S.DEAD, timeout=3.0)
    assert time.monotonic() - t0 < 3.0
    assert dead.attempts == 1
    assert dead.last_error is not None and "timed out" in dead.last_error
    assert cancelled.is_set(), "the timed-out handler must be cancelled"


async def test_a_timed_out_sync_handler_is_failed_while_its_thread_finishes(pool: Pool) -> None:
    app = await pool.app()
    started: list[float] = []
    finished = threading.Event()

    @app.task("block")
    def block(job: Job) -> None:
        started.append(time.monotonic())
        time.sleep(0.5)  # a thread cannot be cancelled: it runs on after the timeout
        finished.set()

    await pool.start(app)
    job = await app.enqueue("block", timeout=0.1, max_retries=0)
    dead = await wait_status(app, job.id, S.DEAD, timeout=3.0)
    assert time.monotonic() - started[0] < 0.4, "the attempt must fail at its timeout, not when the thread returns"
    assert not finished.is_set()
    assert dead.last_error is not None and "timed out" in dead.last_error
    await wait_until(finished.is_set, what="the thread to finish")


async def test_a_job_does_not_time_out_before_it_starts(pool: Pool) -> None:
    app = await pool.app(num_workers=1)
    ran: list[str] = []

    @app.task("hog")
    def hog(job: Job) -> None:
        time.sleep(0.6)

    @app.task("quick")
    def quick(job: Job) -> str:
        ran.append(job.id)
        return "ran"

    await pool.start(app)
    hogging = await app.enqueue("hog", timeout=0.1, max_retries=0)
    await wait_status(app, hogging.id, S.DEAD)
    job = await app.enqueue("quick", timeout=0.3, max_retries=0)
    done = await wait_status(app, job.id, S.DONE, S.DEAD)
    assert (done.status, done.last_error, ran) == (S.DONE, None, [job.id])


# -- scheduling across queues -----------------------------------------------------------------
async def test_num_workers_bounds_the_whole_process_and_queues_take_turns(pool: Pool) -> None:
    app = await pool.app(num_workers=3)
    active = 0
    peak = 0
    started: list[str] = []

    @app.task("slow")
    async def slow(job: Job) -> None:
        nonlocal active, peak
        started.append(job.queue)
        active += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0.1)
        finally:
            active -= 1

    ids = []
    for q in ("qa", "qb", "qc"):
        await app.create_queue(q)
        for _ in range(4):
            ids.append((await app.enqueue("slow", queue=q)).id)
    w = await pool.start(app)  # concurrency from NUM_WORKERS
    assert w.concurrency == 3
    for jid in ids:
        await wait_status(app, jid, S.DONE)
    assert peak == 3, f"at most NUM_WORKERS handlers at once (and all of them used), saw {peak}"
    assert set(started[:3]) == {"qa", "qb", "qc"}, f"queues must take turns, started {started}"


async def test_two_busy_queues_share_the_slots_within_ten_percent(pool: Pool) -> None:
    """Claims that ride on completions (one round trip for both) must keep queues taking turns:
    with both queues always full, each holds half of the slots, give or take 10 %."""
    app = await pool.app(num_workers=10)
    running = {"fa": 0, "fb": 0}
    slot_samples = {"fa": 0, "fb": 0}
    started = {"fa": 0, "fb": 0}
    stop_at = [0.0]

    @app.task("busy")
    async def busy(job: Job) -> None:
        started[job.queue] += 1
        running[job.queue] += 1
        try:
            await asyncio.sleep(0.01)
        finally:
            running[job.queue] -= 1

    for q in ("fa", "fb"):
        await app.create_queue(q)
        await app.pause(q)
        await app.backend.enqueue_many([app.new_job("busy", None, queue=q) for _ in range(2_000)])
    await pool.start(app)
    for q in ("fa", "fb"):
        await app.resume(q)
    stop_at[0] = time.monotonic() + 3.0
    while time.monotonic() < stop_at[0]:
        await asyncio.sleep(0.005)
        for q in running:
            slot_samples[q] += running[q]
    a, b = slot_samples["fa"], slot_samples["fb"]
    assert a + b > 0 and started["fa"] > 50 and started["fb"] > 50, (slot_samples, started)
    assert abs(a - b) / (a + b) <= 0.10, f"slot-time per queue {slot_samples}, starts {started}"
    sa, sb = started["fa"], started["fb"]
    assert abs(sa - sb) / (sa + sb) <= 0.10, f"starts per queue {started}"


async def test_a_busy_worker_runs_jobs_while_a_completion_call_is_on_its_way(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one completion call at a time, a worker of quick jobs and its store took turns: all
    slots finished, one call wrote them and claimed the next, and the worker waited for it. Two
    calls in flight, each claiming as many jobs as it completes, let the jobs one call claimed
    run while the other is written."""
    app = await pool.app(num_workers=20)
    backend = app.backend
    inner = backend.complete_and_claim
    out = {"calls": 0, "peak": 0, "started_during_call": 0, "started": 0}
    store = asyncio.Lock()  # a store serves one call at a time

    async def slow_round_trip(
        queue: str, done: Sequence[Completion], count: int, lease_ms: int
    ) -> tuple[list[bool], Any]:
        out["calls"] += 1
        out["peak"] = max(out["peak"], out["calls"])
        try:
            async with store:
                await asyncio.sleep(0.005)  # the store's time
                return await inner(queue, done, count, lease_ms)
        finally:
            out["calls"] -= 1

    monkeypatch.setattr(backend, "complete_and_claim", slow_round_trip)

    @app.task("quick")
    async def quick(job: Job) -> None:
        out["started"] += 1
        if out["calls"]:
            out["started_during_call"] += 1

    await app.pause("default")
    await backend.enqueue_many([app.new_job("quick", None) for _ in range(600)])
    await pool.start(app)
    await app.resume("default")
    await wait_until(lambda: out["started"] >= 600, what="600 jobs to start")
    assert out["peak"] == 2, out
    # most jobs start while a call is out (the first batch, claimed alone, does not)
    assert out["started_during_call"] >= 0.8 * out["started"], out


async def test_completions_from_a_dry_queue_go_in_one_call(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two completion calls in flight pay off when each claims the next jobs on its way back;
    from a queue that gave fewer jobs than asked (dry) nothing rides back, so the box goes in
    one call: two would only double what each call costs the worker and the store."""
    app = await pool.app(num_workers=20)
    backend = app.backend
    calls: list[int] = []
    inner, inner_complete = backend.complete_and_claim, backend.complete

    async def complete_and_claim(
        queue: str, done: Sequence[Completion], count: int, lease_ms: int
    ) -> tuple[list[bool], Any]:
        calls.append(len(done))
        return await inner(queue, done, count, lease_ms)

    async def complete(queue: str, done: Sequence[Completion]) -> list[bool]:
        calls.append(len(done))
        return await inner_complete(queue, done)

    monkeypatch.setattr(backend, "complete_and_claim", complete_and_claim)
    monkeypatch.setattr(backend, "complete", complete)

    @app.task("quick")
    async def quick(job: Job) -> None:
        return None

    await app.pause("default")
    await backend.enqueue_many([app.new_job("quick", None) for _ in range(10)])
    await pool.start(app)
    await app.resume("default")  # one claim takes the 10 of the 20 it asks: the queue is dry
    await wait_until(lambda: sum(calls) >= 10, what="10 completions written")
    assert calls == [10], calls


async def test_a_completion_call_that_found_its_work_taken_lets_the_next_one_start(
    pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completion call started for a job whose outcome another call (returning just then)
    took along finds nothing to write. It must still let the next completion start a call,
    or that job would stay in flight, heartbeated, forever."""
    app = await pool.app()
    backend = app.backend
    w = Worker(app, concurrency=4)
    await app.pause("default")
    await backend.enqueue_many([app.new_job("t", None) for _ in range(3)])
    await app.resume("default")
    first, second, third = (await backend.claim("default", 3, 30_000)).jobs
    for c in (first, second, third):
        w._inflight[(c.job.id, c.token)] = worker_module._InFlight(c)
    gate = asyncio.get_running_loop().create_future()
    written: list[str] = []
    inner, inner_complete = backend.complete_and_claim, backend.complete

    async def gated(queue: str, done: Sequence[Completion], count: int, lease_ms: int) -> tuple[list[bool], Any]:
        await gate
        written.extend(c.job_id for c in done)
        return await inner(queue, done, count, lease_ms)

    async def complete(queue: str, done: Sequence[Completion]) -> list[bool]:  # nothing to claim
        written.extend(c.job_id for c in done)
        return await inner_complete(queue, done)

    monkeypatch.setattr(backend, "complete_and_claim", gated)
    monkeypatch.setattr(backend, "complete", complete)
    await w._complete(first, None)  # a call starts and waits at the gate
    await asyncio.sleep(0.01)
    gate.set_result(None)  # it returns: its task runs next, and takes the outcome queued now
    await w._complete(second, None)  # starts a second call, which will find the box empty
    await asyncio.sleep(0.01)
    await w._complete(third, None)
    await wait_until(lambda: third.job.id in written, timeout=2.0, what="the third outcome to be written")
    assert set(written) == {first.job.id, second.job.id, third.job.id}
    assert not w._inflight


async def test_a_queue_created_while_running_is_picked_up(pool: Pool) -> None:
    app = await pool.app()

    @app.task("t")
    async def t(job: Job) -> str:
        return job.queue

    await pool.start(app)
    first = await app.enqueue("t")
    await wait_status(app, first.id, S.DONE)  # the worker has listed the queues already
    await app.create_queue("late")
    late = await app.enqueue("t", queue="late")
    assert (await wait_status(app, late.id, S.DONE)).result == "late"


async def test_a_paused_queue_is_skipped_until_resumed(pool: Pool) -> None:
    app = await pool.app()

    @app.task("t")
    async def t(job: Job) -> str:
        return job.queue

    await app.create_queue("p")
    await app.pause("p")
    held = await app.enqueue("t", queue="p")
    await pool.start(app)
    barrier = await app.enqueue("t")
    await wait_status(app, barrier.id, S.DONE)
    await asyncio.sleep(0.2)  # a few more claim rounds: the paused job must stay put
    job = await app.get_job(held.id)
    assert job is not None and job.status is S.PENDING and job.attempts == 0
    await app.resume("p")
    assert (await wait_status(app, held.id, S.DONE)).result == "p"


async def test_a_delayed_job_starts_when_due(pool: Pool) -> None:
    app = await pool.app()
    started_ms: list[int] = []

    @app.task("t")
    async def t(job: Job) -> None:
        started_ms.append(now_ms())

    await pool.start(app)
    job = await app.enqueue("t", delay=0.2)
    assert job.status is S.SCHEDULED and job.run_at is not None
    await wait_status(app, job.id, S.DONE)
    late_ms = started_ms[0] - job.run_at
    assert late_ms >= -2, f"started {-late_ms} ms before its run_at"
    assert late_ms < 500, f"started {late_ms} ms after its run_at"


# -- leases -----------------------------------------------------------------------------------
async def test_heartbeats_keep_the_lease_of_a_blocking_sync_handler(pool: Pool) -> None:
    app = await pool.app(visibility_timeout=0.3)
    calls: list[int] = []

    @app.task("block")
    def block(job: Job) -> str:
        calls.append(job.attempts)
        time.sleep(1.0)  # blocks its thread, not the event loop that heartbeats
        return "held"

    await pool.start(app)
    job = await app.enqueue("block")
    done = await wait_status(app, job.id, S.DONE)
    assert calls == [1]
    assert done.attempts == 1 and done.result == "held"
    assert sample(app, "gotaskq_jobs_recovered_total", queue="default") == 0
    assert sample(app, "gotaskq_stale_completions_total") == 0


async def test_a_job_of_a_killed_worker_is_recovered_and_rerun(pool: Pool) -> None:
    app = await pool.app()
    runs: list[int] = []

    @app.task("t")
    async def t(job: Job) -> str:
        runs.append(job.attempts)
        return "rerun"

    job = await app.enqueue("t")
    batch = await app.backend.claim("default", 1, lease_ms=200)  # a worker that then dies
    assert [c.job.id for c in batch.jobs] == [job.id]
    t0 = time.monotonic()
    await pool.start(app)
    done = await wait_status(app, job.id, S.DONE, timeout=3.0)
    assert time.monotonic() - t0 < 0.2 + 1.5
    assert runs == [2]
    assert done.attempts == 2 and done.result == "rerun"
    await wait_sample(app, "gotaskq_jobs_recovered_total", 1, queue="default")
    # the dead worker's token is fenced off
    old = batch.jobs[0]
    assert await app.backend.complete("default", [Completion(job.id, old.token, b"1")]) == [False]


async def test_stop_releases_a_job_that_outlives_the_grace(pool: Pool) -> None:
    app = await pool.app(shutdown_grace=0.2)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @app.task("long")
    async def long(job: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    w = await pool.start(app)
    job = await app.enqueue("long")
    await asyncio.wait_for(started.wait(), DEADLINE_S)
    t0 = time.monotonic()
    await asyncio.wait_for(w.stop(), STOP_DEADLINE_S)
    assert time.monotonic() - t0 < 2.0
    assert cancelled.is_set()
    after = await app.get_job(job.id)
    assert after is not None
    assert after.status is S.PENDING
    assert after.attempts == 0, "a released attempt is not counted"
    info = await app.queue_info("default")
    assert (info.pending, info.running) == (1, 0)
    assert w.inflight == 0


async def test_stop_waits_for_a_short_job(pool: Pool) -> None:
    app = await pool.app(shutdown_grace=5.0)
    started = asyncio.Event()

    @app.task("short")
    async def short(job: Job) -> str:
        started.set()
        await asyncio.sleep(0.2)
        return "finished"

    w = await pool.start(app)
    job = await app.enqueue("short")
    await asyncio.wait_for(started.wait(), DEADLINE_S)
    t0 = time.monotonic()
    await asyncio.wait_for(w.stop(), STOP_DEADLINE_S)
    assert time.monotonic() - t0 < 4.0
    done = await app.get_job(job.id)
    assert done is not None and done.status is S.DONE and done.result == "finished"
    assert done.attempts == 1
    assert (await app.queue_info("default")).running == 0


async def test_a_completion_with_an_old_token_is_refused(pool: Pool) -> None:
    app = await pool.app()
    backend = app.backend
    job = await app.enqueue("t")
    old = (await backend.claim("default", 1, lease_ms=50)).jobs[0]
    recovered: list[str] = []

    async def expired() -> bool:
        recovered.extend((await backend.recover_expired("default")).requeued)
        return bool(recovered)

    await wait_until(expired, what="the lease to expire")
    assert recovered == [job.id]
    assert await backend.complete("default", [Completion(job.id, old.token, b'"late"')]) == [False]
    pending = await app.get_job(job.id)
    assert pending is not None and pending.status is S.PENDING and pending.result is None
    new = (await backend.claim("default", 1, lease_ms=10_000)).jobs[0]
    assert new.token > old.token
    assert await backend.complete("default", [Completion(job.id, new.token, b'"ok"')]) == [True]


async def test_the_worker_counts_its_own_stale_completion(pool: Pool) -> None:
    app = await pool.app(visibility_timeout=0.2)
    first_started = threading.Event()
    calls: list[int] = []

    @app.task("t")
    def t(job: Job) -> str:
        calls.append(job.attempts)
        if job.attempts == 1:
            first_started.set()
            time.sleep(0.8)  # far past the lease, which nobody renews
            return "first"
        return "second"

    await pool.start(app, concurrency=1, backend=NoHeartbeat(app.backend))
    job = await app.enqueue("t")
    await wait_until(first_started.is_set, what="the first attempt to start")
    await pool.start(app, concurrency=1)  # a healthy worker recovers the job and runs it again
    done = await wait_status(app, job.id, S.DONE)
    assert done.result == "second" and done.attempts == 2
    await wait_sample(app, "gotaskq_stale_completions_total", 1)
    after = await app.get_job(job.id)
    assert after is not None and after.result == "second", "the stale completion must not overwrite"
    assert calls == [1, 2]


# -- idle behaviour ---------------------------------------------------------------------------
async def test_an_idle_worker_does_not_spin(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    app = await pool.app()
    backend = app.backend
    real_claim = backend.claim
    claims = 0

    async def counting_claim(queue: str, count: int, lease_ms: int) -> Any:
        nonlocal claims
        claims += 1
        return await real_claim(queue, count, lease_ms)

    monkeypatch.setattr(backend, "claim", counting_claim)
    await app.backend.cancel((await app.enqueue("t", delay=60)).id)  # a queue that had work once
    await pool.start(app)
    await asyncio.sleep(0.3)  # start-up, and a first round over the queue that had work
    claims = 0
    await asyncio.sleep(1.0)  # the measuring window
    assert claims <= 10, f"{claims} claim calls in 1 s while idle"


async def test_an_idle_worker_starts_a_new_job_promptly(pool: Pool) -> None:
    app = await pool.app()
    started_at: list[float] = []

    @app.task("t")
    async def t(job: Job) -> None:
        started_at.append(time.perf_counter())

    await pool.start(app)
    latencies = []
    for _ in range(3):
        await asyncio.sleep(0.1)  # let the worker go back to waiting for work
        t0 = time.perf_counter()
        job = await app.enqueue("t")
        await wait_status(app, job.id, S.DONE)
        latencies.append(started_at[-1] - t0)
    assert statistics.median(latencies) < 0.05, f"enqueue-to-start latencies {latencies}"


async def test_a_failed_attempt_records_the_handlers_traceback(pool: Pool) -> None:
    app = await pool.app()

    @app.task("t")
    async def exploding_handler(job: Job) -> None:
        raise KeyError("missing")

    job = await app.enqueue("t", max_retries=0)
    await pool.start(app)
    dead = await wait_status(app, job.id, S.DEAD)
    (entry,) = dead.errors
    assert entry["error"] == "KeyError: 'missing'"
    assert "exploding_handler" in entry["traceback"] and entry["traceback"].startswith("Traceback")


async def test_handlers_report_progress_while_running_and_after(pool: Pool) -> None:
    app = await pool.app()
    halfway = asyncio.Event()
    go_on = asyncio.Event()

    @app.task("async")
    async def async_handler(job: Job) -> None:
        await job.progress(50, "half")
        halfway.set()
        await go_on.wait()
        await job.progress(100)

    @app.task("sync")
    def sync_handler(job: Job) -> None:
        job.progress_sync(25.5, "a quarter")

    job = await app.enqueue("async")
    await pool.start(app)
    await asyncio.wait_for(halfway.wait(), 5)
    running = await app.get_job(job.id)
    assert running is not None and running.status is S.RUNNING
    assert running.progress_info is not None
    assert (running.progress_info["percent"], running.progress_info["message"]) == (50, "half")
    go_on.set()
    done = await wait_status(app, job.id, S.DONE)
    assert done.to_dict()["progress"] is not None and done.to_dict()["progress"]["percent"] == 100
    other = await app.enqueue("sync")
    finished = await wait_status(app, other.id, S.DONE)
    assert finished.progress_info is not None and finished.progress_info["message"] == "a quarter"
    with pytest.raises(RuntimeError):
        await finished.progress(10)  # not from a running handler


async def test_the_handoff_wakes_one_runner_at_a_time_and_strands_no_job() -> None:
    """A runner whose handlers return at once runs the jobs behind its own without a wake-up
    for each; a runner whose handler awaits has woken another for the jobs behind it."""
    loop = asyncio.get_running_loop()
    handoff = worker_module._Handoff()
    taken: dict[str, list[int]] = {}
    hold = asyncio.Event()

    async def runner(name: str, awaits: bool) -> None:
        while True:
            item = await handoff.get(loop)
            taken.setdefault(name, []).append(item)  # type: ignore[arg-type]
            if awaits:
                await hold.wait()

    quick = [asyncio.create_task(runner(f"q{i}", False)) for i in range(3)]
    await asyncio.sleep(0)
    for i in range(10):
        handoff.put(i)  # type: ignore[arg-type]
    await wait_until(lambda: sum(map(len, taken.values())) == 10, timeout=2.0, what="10 jobs taken")
    assert sorted(i for got in taken.values() for i in got) == list(range(10))
    assert len(taken) == 1, f"one runner ran them all, one wake-up: {taken}"
    await _cancel_all(quick)

    taken.clear()
    slow = [asyncio.create_task(runner(f"s{i}", True)) for i in range(3)]
    await asyncio.sleep(0)
    for i in range(3):
        handoff.put(i)  # type: ignore[arg-type]
    await wait_until(lambda: len(taken) == 3, timeout=2.0, what="each awaiting runner to take a job")
    hold.set()
    await _cancel_all(slow)

    # a runner cancelled (a shutdown) after its wake-up, before it ran, passes the wake-up on
    taken.clear()
    pair = [asyncio.create_task(runner(f"c{i}", False)) for i in range(2)]
    await asyncio.sleep(0)
    handoff.put(7)  # type: ignore[arg-type]
    pair[0].cancel()
    await wait_until(lambda: taken == {"c1": [7]}, timeout=2.0, what=f"the other runner to take the job: {taken}")
    await _cancel_all(pair)


async def _cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
