"""The worker registry (GET /workers, gotaskq_workers) and STRICT_TYPES, on every store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from api_support import Api, error_code, error_fields
from conftest import MakeBackend

from gotaskq import App
from gotaskq.errors import InvalidInput
from gotaskq.job import Job

pytest_plugins = ["api_support"]


async def test_a_worker_process_registers_and_leaves(make_backend: MakeBackend) -> None:
    backend = await make_backend(visibility_timeout=0.3, worker_queues=("default", "other"))
    app = App(backend.settings, backend, builtins=False)  # type: ignore[attr-defined]
    started = asyncio.Event()
    release = asyncio.Event()

    @app.task("slow")
    async def slow(job: Job) -> None:
        started.set()
        await release.wait()

    await app.start()
    job = await app.enqueue("slow")
    worker = app.worker(concurrency=3)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 5)
        await asyncio.sleep(0.15)  # a refresh after the job started
        (info,) = await backend.list_workers()
        assert info["id"] == worker.id and info["concurrency"] == 3 and info["busy"] == 1
        assert info["queues"] == ["default", "other"] and info["types"] == ["slow"]
        assert info["jobs"] == [job.id] and isinstance(info["pid"], int) and info["host"]
        assert str(info["last_seen_at"]) >= str(info["started_at"])
        release.set()
    finally:
        await worker.stop()
        await task
    assert await backend.list_workers() == [], "a stopped process leaves the registry"


async def test_a_killed_process_drops_out_after_its_ttl(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    await backend.register_worker({"id": "gone", "started_at": "x", "types": []}, ttl_ms=100)
    await backend.register_worker({"id": "alive", "started_at": "y", "types": []}, ttl_ms=60_000)
    assert [w["id"] for w in await backend.list_workers()] == ["gone", "alive"]
    await asyncio.sleep(0.2)
    assert [w["id"] for w in await backend.list_workers()] == ["alive"]


async def test_strict_types_refuses_a_type_no_live_worker_handles(make_backend: MakeBackend) -> None:
    backend = await make_backend(strict_types=True)
    app = App(backend.settings, backend, builtins=False)  # type: ignore[attr-defined]
    await app.start()
    with pytest.raises(InvalidInput) as refused:
        await app.enqueue("email")
    assert "type" in refused.value.fields
    await backend.register_worker({"id": "w", "started_at": "z", "types": ["email"]}, ttl_ms=60_000)
    app._types_at = float("-inf")  # the registry is read at most once a second
    assert (await app.enqueue("email")).type == "email"


async def test_workers_over_http(make_api: Any) -> None:
    api: Api = await make_api(strict_types=True)
    assert (await api.client.get("/workers")).json() == {"workers": []}
    r = await api.client.post("/jobs", json={"type": "nobody"})
    assert r.status_code == 422 and error_code(r) == "validation_error" and "type" in error_fields(r)
    await api.app.backend.register_worker(
        {"id": "w1", "host": "h", "pid": 1, "queues": ["*"], "concurrency": 2, "busy": 0, "types": ["nobody"],
         "started_at": "2026-12-01T00:00:00.000Z", "last_seen_at": "2026-12-01T00:00:00.000Z", "jobs": []},
        ttl_ms=60_000,
    )  # fmt: skip
    api.app._types_at = float("-inf")
    workers = (await api.client.get("/workers")).json()["workers"]
    assert [w["id"] for w in workers] == ["w1"] and workers[0]["queues"] == ["*"]
    assert (await api.client.post("/jobs", json={"type": "nobody"})).status_code == 201
    metrics = (await api.client.get("/metrics")).text
    assert "gotaskq_workers 1.0" in metrics
