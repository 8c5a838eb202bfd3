"""Fixtures of the API tests: a gotaskq App on a chosen backend, served through the real ASGI app.

Test modules load the fixtures with ``pytest_plugins = ["api_support"]`` and import the
helpers; because they import it first, pytest cannot rewrite its asserts: PYTEST_DONT_REWRITE.
To run the API suite on another store, parametrise ``backend_factory`` (memory, fakeredis, ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any

import fakeredis
import httpx
import pytest
from starlette.applications import Starlette

from gotaskq import App, Backend, Settings
from gotaskq.api import create_app
from gotaskq.backends.memory import MemoryBackend
from gotaskq.backends.redis import RedisBackend

BackendFactory = Callable[[Settings], Backend]
MakeApp = Callable[..., App]


@dataclass
class Api:
    """One served App: the library object, the Starlette app and a client bound to it."""

    app: App
    web: Starlette
    client: httpx.AsyncClient

    async def job(self, queue: str = "default", **fields: Any) -> dict[str, Any]:
        """Submit a job through the API (asserting 201) and return its JSON."""
        r = await self.client.post("/jobs", json={"type": "t", "queue": queue, **fields})
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    async def dead_job(self, queue: str = "default") -> str:
        """A DEAD job without a worker: enqueue with no retries, claim it, fail it.

        Top priority so that the claim takes this job even when others are waiting.
        """
        job = await self.job(queue, max_retries=0, priority=10)
        batch = await self.app.backend.claim(queue, 1, 30_000)
        claimed = batch.jobs[0]
        assert claimed.job.id == job["id"]
        await self.app.backend.fail(claimed.job, claimed.token, "boom", 0)
        return str(job["id"])


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture(params=["memory", "fakeredis", "redis", pytest.param("cluster", marks=pytest.mark.cluster)])
def backend_factory(request: pytest.FixtureRequest) -> BackendFactory:
    """How each test's store is made from its Settings: the API suite runs on every store."""
    if request.param == "memory":
        return MemoryBackend
    if request.param == "fakeredis":
        return lambda s: RedisBackend(s, client=fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()))
    if request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        return lambda s: RedisBackend(replace(s, redis_url=cluster.url, redis_cluster="true"))
    server = request.getfixturevalue("redis_server")
    server.flushall()
    return lambda s: RedisBackend(replace(s, redis_url=server.url))


@pytest.fixture
def make_app(backend_factory: BackendFactory) -> MakeApp:
    """Factory: ``make_app(**settings_overrides)`` → an App (not started) on the chosen backend."""

    def make(**overrides: Any) -> App:
        settings = Settings(**overrides)
        return App(settings, backend_factory(settings), builtins=False)

    return make


@pytest.fixture
async def make_api(make_app: MakeApp) -> AsyncIterator[MakeApi]:
    """Factory: ``await make_api(**settings_overrides)`` → a started Api; all closed at teardown."""
    async with AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Api:
            return await serve(stack, make_app(**overrides))

        yield make


async def serve(stack: AsyncExitStack, app: App, *, run_workers: bool = False) -> Api:
    """Run ``create_app(app)``'s lifespan and a client on ``stack``."""
    web = create_app(app, run_workers=run_workers)
    await stack.enter_async_context(web.router.lifespan_context(web))
    transport = httpx.ASGITransport(app=web)
    client = await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://test"))
    return Api(app, web, client)


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """An Api with default settings (no tokens, MemoryBackend unless parametrised)."""
    return await make_api()


def error_code(r: httpx.Response) -> str:
    """The ``error.code`` of a JSON error response (asserting the error shape)."""
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) <= {"code", "message", "fields"}, body
    assert isinstance(body["error"]["message"], str)
    code: str = body["error"]["code"]
    return code


def error_fields(r: httpx.Response) -> dict[str, str]:
    fields: dict[str, str] = r.json()["error"].get("fields", {})
    return fields
