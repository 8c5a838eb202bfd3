"""Per-queue limits, purge and delete (issue 12), on every store through the one contract."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from api_support import Api, error_code, error_fields
from conftest import MakeBackend

from gotaskq import App
from gotaskq.backends.base import Backend, Completion, QueueSettings, RateLimit
from gotaskq.errors import QueueBusy, QueueNotFound
from gotaskq.job import Job, NewJob
from gotaskq.states import JobStatus

pytest_plugins = ["api_support"]
S = JobStatus
LEASE_MS = 30_000


def spec(**kw: Any) -> NewJob:
    return NewJob.build("t", {"n": 1}, **kw)


async def fill(backend: Backend, n: int, **kw: Any) -> list[Job]:
    return [e.job for e in await backend.enqueue_many([spec(**kw) for _ in range(n)])]


# -- concurrency ---------------------------------------------------------------------------------
async def test_concurrency_limits_running_jobs_across_claims(backend: Backend) -> None:
    info = await backend.configure_queue("default", QueueSettings(concurrency=2))
    assert info.concurrency == 2 and info.to_dict()["concurrency"] == 2
    await fill(backend, 5)
    first = await backend.claim("default", 10, LEASE_MS)
    assert len(first.jobs) == 2 and first.limited == "concurrency"
    again = await backend.claim("default", 10, LEASE_MS)
    assert again.jobs == [] and again.limited == "concurrency" and again.next_due_ms is not None
    info = await backend.queue_info("default")
    assert (info.pending, info.running) == (3, 2)
    waiting = await backend.list_jobs("default", S.PENDING, 10, None)
    assert all(j.attempts == 0 for j in waiting.jobs), "a job held back by a limit counts no attempt"
    done = first.jobs[0]
    assert await backend.complete("default", [Completion(done.job.id, done.token, b"1")]) == [True]
    third = await backend.claim("default", 10, LEASE_MS)
    assert len(third.jobs) == 1
    cleared = await backend.configure_queue("default", QueueSettings(concurrency=None))
    assert cleared.concurrency is None
    assert len((await backend.claim("default", 10, LEASE_MS)).jobs) == 2


# -- rate limit ----------------------------------------------------------------------------------
async def test_rate_limit_caps_starts_per_window(backend: Backend) -> None:
    info = await backend.configure_queue("default", QueueSettings(rate_limit=RateLimit(3, 0.5)))
    assert info.rate_limit == RateLimit(3, 0.5) and info.to_dict()["rate_limit"] == {"max": 3, "per": 0.5}
    await fill(backend, 8)
    started = 0
    t0 = time.monotonic()
    first = await backend.claim("default", 10, LEASE_MS)
    assert 1 <= len(first.jobs) <= 3
    assert first.limited == "rate_limit" and first.next_due_ms is not None
    assert 0 < first.next_due_ms - first.now_ms <= 500, "retry at the next window"
    started += len(first.jobs)
    while started < 8 and time.monotonic() - t0 < 5:
        await asyncio.sleep(0.05)
        started += len((await backend.claim("default", 10, LEASE_MS)).jobs)
    elapsed = time.monotonic() - t0
    assert started == 8
    assert elapsed >= 0.5, f"8 starts at 3 per 0.5 s took only {elapsed:.2f} s"
    assert (await backend.configure_queue("default", QueueSettings(rate_limit=None))).rate_limit is None


async def test_settings_of_an_unknown_queue(backend: Backend) -> None:
    with pytest.raises(QueueNotFound):
        await backend.configure_queue("nope", QueueSettings(concurrency=1))
    with pytest.raises(QueueNotFound):
        await backend.purge_queue("nope")
    with pytest.raises(QueueNotFound):
        await backend.delete_queue("nope")


async def test_pause_through_settings(backend: Backend) -> None:
    await fill(backend, 1)
    assert (await backend.configure_queue("default", QueueSettings(paused=True))).paused
    assert (await backend.claim("default", 1, LEASE_MS)).jobs == []
    assert not (await backend.configure_queue("default", QueueSettings(paused=False))).paused
    assert len((await backend.claim("default", 1, LEASE_MS)).jobs) == 1


# -- purge and delete ----------------------------------------------------------------------------
async def test_purge_removes_waiting_jobs_only(backend: Backend) -> None:
    running = await fill(backend, 1)
    await backend.claim("default", 1, LEASE_MS)
    dead = (await fill(backend, 1, max_retries=0))[0]
    c = (await backend.claim("default", 1, LEASE_MS)).jobs[0]
    await backend.fail(c.job, c.token, "boom", 0)
    pending = await fill(backend, 230, idempotency_key=None)
    keyed = (await backend.enqueue(spec(idempotency_key="K"))).job
    scheduled = await fill(backend, 2, delay=60)
    assert await backend.purge_queue("default") == len(pending) + 1 + len(scheduled)
    info = await backend.queue_info("default")
    assert (info.pending, info.scheduled, info.running, info.dead) == (0, 0, 1, 1)
    assert await backend.get_job(keyed.id) is None
    assert await backend.get_job(running[0].id) is not None and await backend.get_job(dead.id) is not None
    again = await backend.enqueue(spec(idempotency_key="K"))
    assert again.created, "a purged job's idempotency key is free again"


async def test_delete_refuses_a_busy_queue_then_removes_everything(backend: Backend) -> None:
    await backend.create_queue("gone")
    jobs = await fill(backend, 3, queue="gone", idempotency_key=None)
    c = (await backend.claim("gone", 1, LEASE_MS)).jobs[0]
    with pytest.raises(QueueBusy):
        await backend.delete_queue("gone")
    assert await backend.complete("gone", [Completion(c.job.id, c.token, b"1")]) == [True]
    await backend.delete_queue("gone")
    assert "gone" not in await backend.list_queues()
    with pytest.raises(QueueNotFound):
        await backend.queue_info("gone")
    assert [await backend.get_job(j.id) for j in jobs] == [None, None, None]
    await backend.create_queue("gone")  # a new queue of that name starts empty
    info = await backend.queue_info("gone")
    assert (info.pending, info.running, info.dead, info.concurrency) == (0, 0, 0, None)


async def test_deleting_default_recreates_it_empty(backend: Backend) -> None:
    await fill(backend, 3)
    await backend.configure_queue("default", QueueSettings(concurrency=4))
    await backend.delete_queue("default")
    info = await backend.queue_info("default")
    assert (info.pending, info.concurrency) == (0, None)


# -- a worker respects the limits ---------------------------------------------------------------
async def test_a_worker_never_runs_more_than_the_queue_concurrency(make_backend: MakeBackend) -> None:
    backend = await make_backend(recovery_interval=0.05)
    app = App(backend.settings, backend, builtins=False)  # type: ignore[attr-defined]
    await backend.configure_queue("default", QueueSettings(concurrency=2))
    running = peak = 0

    @app.task("t")
    async def t(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1

    await app.start()
    jobs = await fill(backend, 12)
    worker = app.worker(concurrency=10)
    task = asyncio.create_task(worker.run())

    async def statuses() -> set[JobStatus]:
        return {((await backend.get_job(j.id)) or j).status for j in jobs}

    try:
        for _ in range(500):
            if await statuses() == {S.DONE}:
                break
            await asyncio.sleep(0.02)
    finally:
        await worker.stop()
        await task
    assert await statuses() == {S.DONE}
    assert peak == 2, f"{peak} jobs ran at once with concurrency 2"
    assert app.metrics.limited.labels("default", "concurrency")._value.get() > 0


# -- HTTP ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": "2"}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": 2.5}, "concurrency"),
        ({"rate_limit": {"max": 0, "per": 1}}, "rate_limit"),
        ({"rate_limit": {"max": 1}}, "rate_limit"),
        ({"rate_limit": {"max": 1, "per": 0}}, "rate_limit"),
        ({"rate_limit": {"max": 1, "per": 1, "burst": 2}}, "rate_limit"),
        ({"rate_limit": 5}, "rate_limit"),
        ({"paused": "yes"}, "paused"),
        ({"workers": 3}, "workers"),
    ],
)
async def test_patch_refuses_bad_settings_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    r = await api.client.patch("/queue/default", json=body)
    assert r.status_code == 422, r.text
    assert error_code(r) == "validation_error" and field in error_fields(r)


async def test_queue_settings_over_http(api: Api) -> None:
    r = await api.client.post("/queue/limited", json={"concurrency": 3, "rate_limit": {"max": 10, "per": 1}})
    assert r.status_code == 201, r.text
    assert (r.json()["concurrency"], r.json()["rate_limit"]) == (3, {"max": 10, "per": 1.0})
    r = await api.client.patch("/queue/limited", json={"concurrency": None, "paused": True})
    assert r.status_code == 200 and r.json()["concurrency"] is None and r.json()["paused"] is True
    assert r.json()["rate_limit"] == {"max": 10, "per": 1.0}, "a field left out keeps its value"
    assert (await api.client.get("/queue/limited")).json()["paused"] is True
    assert (await api.client.patch("/queue/nope", json={})).status_code == 404
    assert (await api.client.patch("/queue/limited", content=b"null")).status_code == 422
    for _ in range(3):
        await api.job("limited")
    r = await api.client.post("/queue/limited/purge")
    assert r.status_code == 200 and r.json() == {"purged": 3}
    r = await api.client.delete("/queue/limited")
    assert r.status_code == 204 and r.content == b""
    assert error_code(await api.client.get("/queue/limited")) == "queue_not_found"
    assert (await api.client.delete("/queue/limited")).status_code == 404


async def test_delete_a_queue_with_a_running_job_is_409_queue_busy(api: Api) -> None:
    await api.job()
    await api.app.backend.claim("default", 1, 30_000)
    r = await api.client.delete("/queue/default")
    assert r.status_code == 409 and error_code(r) == "queue_busy"


async def test_worker_queues_dedicates_a_process(make_backend: MakeBackend) -> None:
    backend = await make_backend(worker_queues=("mine",), recovery_interval=0.05)
    app = App(backend.settings, backend, builtins=False)  # type: ignore[attr-defined]
    ran: list[str] = []

    @app.task("t")
    async def t(job: Job) -> None:
        ran.append(job.queue)

    await app.start()
    for q in ("mine", "theirs"):
        await backend.create_queue(q)
    await fill(backend, 1, queue="mine")
    theirs = await fill(backend, 1, queue="theirs")
    worker = app.worker()
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            if ran:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
    finally:
        await worker.stop()
        await task
    assert ran == ["mine"]
    assert ((await backend.get_job(theirs[0].id)) or theirs[0]).status is S.PENDING
