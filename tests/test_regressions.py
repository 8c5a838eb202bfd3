"""Bugs reported against other job queues, as named regression tests on every backend."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import MakeBackend, RedisServer
from invariants import check_invariants

from gotaskq.app import App
from gotaskq.backends.base import Backend, Completion
from gotaskq.backends.redis import RedisBackend
from gotaskq.config import Settings
from gotaskq.job import Job, NewJob
from gotaskq.states import JobStatus
from gotaskq.worker import Worker

S = JobStatus
DEADLINE_S = 10.0


async def wait_for(pred: object, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await pred():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def run_until_done(worker: Worker, backend: Backend, job_id: str) -> None:
    """Run ``worker`` until the job is DONE (bounded), then stop it."""
    task = asyncio.create_task(worker.run())
    try:

        async def done() -> bool:
            j = await backend.get_job(job_id)
            return j is not None and j.status is S.DONE

        await wait_for(done)
    finally:
        await worker.stop()
        await task


async def test_bull_356_completion_racing_the_recovery_pass(make_backend: MakeBackend) -> None:
    """bull#356: a completion and the stalled-job check ran together and both won. Here exactly
    one of them wins: DONE (recovery found nothing) or PENDING (the completion was refused)."""
    backend = await make_backend()
    outcomes = set()
    for _ in range(20):
        job = (await backend.enqueue(NewJob.build("t", None))).job
        claimed = (await backend.claim("default", 1, 5)).jobs[0]
        await asyncio.sleep(0.01)  # the lease has expired: both moves are now legal
        done, recovered = await asyncio.gather(
            backend.complete("default", [Completion(job.id, claimed.token, b"1")]),
            backend.recover_expired("default"),
        )
        after = await backend.get_job(job.id)
        assert after is not None
        if done == [True]:
            assert after.status is S.DONE and job.id not in recovered.requeued
            outcomes.add("completed")
        else:
            assert after.status is S.PENDING and recovered.requeued == [job.id]
            outcomes.add("recovered")
            batch = await backend.claim("default", 1, 30_000)
            await backend.complete("default", [Completion(job.id, batch.jobs[0].token, b"1")])
        await check_invariants(backend, ["default"])
    assert outcomes  # at least one path taken, each one consistent


async def test_rq_1716_worker_killed_between_pop_and_bookkeeping_on_several_queues(
    make_backend: MakeBackend,
) -> None:
    """rq#1716: a worker listening on several queues died after popping a job and before its
    bookkeeping, and the job vanished. Here popping IS the bookkeeping (one script)."""
    backend = await make_backend()
    names = ["default", "q2", "q3"]
    for name in names[1:]:
        await backend.create_queue(name)
    ids = {name: (await backend.enqueue(NewJob.build("t", None, queue=name))).job.id for name in names}
    for name in names:  # the "killed" worker claims one job from each queue and is never heard of again
        assert [c.job.id for c in (await backend.claim(name, 1, 5)).jobs] == [ids[name]]
    await asyncio.sleep(0.02)
    for name in names:
        assert (await backend.recover_expired(name)).requeued == [ids[name]]
        job = await backend.get_job(ids[name])
        assert job is not None and job.status is S.PENDING and job.attempts == 1
    await check_invariants(backend, names)


async def test_rq_2289_succeeded_job_is_not_left_in_the_running_set(make_backend: MakeBackend) -> None:
    """rq#2289: a job that succeeded stayed in the started registry. Completing a batch leaves
    nothing running, and a later recovery pass does not touch the DONE jobs."""
    backend = await make_backend()
    for i in range(30):
        await backend.enqueue(NewJob.build("t", {"i": i}))
    batch = await backend.claim("default", 30, 5)
    assert (
        await backend.complete("default", [Completion(c.job.id, c.token, b"null") for c in batch.jobs]) == [True] * 30
    )
    assert (await backend.queue_info("default")).running == 0
    await asyncio.sleep(0.02)
    assert (await backend.recover_expired("default")).requeued == []
    for c in batch.jobs:
        job = await backend.get_job(c.job.id)
        assert job is not None and job.status is S.DONE
    await check_invariants(backend, ["default"])


@pytest.mark.parametrize("lease", [0.5])
async def test_arq_343_sidekiq_4635_a_killed_long_job_is_recovered_within_about_one_lease(
    make_backend: MakeBackend, lease: float
) -> None:
    """arq#343, sidekiq#4635: a job whose worker died mid-run was retried only after hours (or
    never). Here a live worker re-runs it after about one lease plus one recovery interval."""
    backend = await make_backend(visibility_timeout=lease, recovery_interval=0.1)
    app = App(Settings(visibility_timeout=lease, recovery_interval=0.1), backend, builtins=False)
    runs: list[float] = []

    @app.task("long")
    async def long_job(job: Job) -> None:
        runs.append(time.monotonic())

    job = (await backend.enqueue(NewJob.build("long", None))).job
    assert (await backend.claim("default", 1, int(lease * 1000))).jobs  # the worker that dies mid-job
    killed_at = time.monotonic()
    await run_until_done(app.worker(2), backend, job.id)
    assert len(runs) == 1
    assert runs[0] - killed_at < lease + 0.1 + 1.0, "recovery took far longer than one lease"
    final = await backend.get_job(job.id)
    assert final is not None and final.attempts == 2


@pytest.mark.redis
async def test_bull_1873_a_worker_waiting_for_work_resumes_after_redis_restarts(
    redis_server: RedisServer,
) -> None:
    """bull#1873: a worker blocked waiting for jobs hung forever after Redis restarted. The
    idle worker here reconnects (and re-subscribes) on its own and runs the next job."""
    redis_server.flushall()
    settings = Settings(redis_url=redis_server.url, num_workers=2, recovery_interval=0.1)
    backend = RedisBackend(settings)
    app = App(settings, backend, builtins=False)
    ran: list[str] = []

    @app.task("t")
    async def handler(job: Job) -> None:
        ran.append(job.id)

    worker = app.worker()
    task = asyncio.create_task(worker.run())
    try:
        first = await app.enqueue("t")

        async def ran_job(job_id: str) -> bool:
            return job_id in ran

        await wait_for(lambda: ran_job(first.id))
        await asyncio.sleep(0.3)  # the worker is idle, waiting for work
        redis_server.restart()  # no persistence in the test server: everything is gone
        second: Job | None = None
        deadline = time.monotonic() + DEADLINE_S
        while second is None and time.monotonic() < deadline:
            try:
                second = await app.enqueue("t")  # recreates the default queue
            except Exception:
                await asyncio.sleep(0.1)
        assert second is not None
        await wait_for(lambda: ran_job(second.id))
    finally:
        await worker.stop()
        await task
        await app.close()


async def test_a_stale_claim_finishing_does_not_drop_the_fresh_claim_of_the_same_job(
    make_backend: MakeBackend,
) -> None:
    """Found by the chaos run: after a blip a worker held attempt 1 (stale) and attempt 2 of one
    job; when attempt 1 finished, the bookkeeping dropped attempt 2 from the heartbeats, so its
    lease expired too and the job ran again and again. Each claim is tracked by its token."""
    lease = 0.3
    backend = await make_backend(visibility_timeout=lease, recovery_interval=0.05)
    app = App(Settings(visibility_timeout=lease, recovery_interval=0.05), backend, builtins=False)
    starts: list[int] = []

    @app.task("slow")
    async def slow(job: Job) -> None:
        starts.append(job.attempts)
        await asyncio.sleep(1.0 if job.attempts == 1 else 1.2)  # both far longer than the lease

    real_extend = backend.extend_leases

    async def skip_first_attempt(queue: str, leases: list[tuple[str, int]], lease_ms: int) -> list[bool]:
        # attempt 1 (token 1) silently loses its lease, as during a Redis stall
        kept = [(jid, token) for jid, token in leases if token != 1]
        held = dict(zip(kept, await real_extend(queue, kept, lease_ms), strict=True)) if kept else {}
        return [held.get((jid, token), True) for jid, token in leases]

    worker = app.worker(4)
    worker.backend = _Patched(backend, skip_first_attempt)  # type: ignore[assignment]
    job = (await backend.enqueue(NewJob.build("slow", None))).job
    await run_until_done(worker, backend, job.id)
    assert starts == [1, 2], f"attempt 2 lost its heartbeat: attempts started {starts}"


class _Patched:
    """The backend with one method replaced, for one worker only."""

    def __init__(self, inner: object, extend_leases: object) -> None:
        self._inner = inner
        self.extend_leases = extend_leases

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)
