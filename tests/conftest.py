"""Shared fixtures: a real redis-server per session, settings and backend factories."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from cluster_support import RedisClusterSet, RedisSentinelSet

from gotaskq.backends.base import Backend
from gotaskq.backends.memory import MemoryBackend
from gotaskq.config import Settings

SETTINGS_DEFAULTS: dict[str, Any] = {
    "priority_aging": 60.0,
    "visibility_timeout": 30.0,
    "complete_job_ttl": 300.0,
    "max_queue_depth": 100_000,
}
BACKEND_KINDS = [
    "memory",
    "fakeredis",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("cluster", marks=[pytest.mark.redis, pytest.mark.cluster]),
]
START_DEADLINE_S = 10.0

MakeSettings = Callable[..., Settings]
MakeBackend = Callable[..., Awaitable[Backend]]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """A redis-server child process on a loopback port, in its own directory."""

    binary: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "redis-server is not running"
        return self.proc.pid

    def start(self) -> None:
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_for_ping()

    def _wait_for_ping(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        try:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self._log_tail()}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    tail = self._log_tail()
                    raise RuntimeError(f"redis-server did not answer PING in {START_DEADLINE_S}s: {tail}")
                time.sleep(0.02)
        finally:
            client.close()

    def _log_tail(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Kill the server (no graceful save) and start a fresh one on the same port."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None
        self.start()

    def flushall(self) -> None:
        with redis.Redis.from_url(self.url) as client:
            client.flushall()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI must run the Redis tests")
        pytest.skip("redis-server is not installed")
    server: RedisServer | None = None
    for _ in range(3):  # the free port may be taken between probing and binding
        server = RedisServer(binary, _free_port(), tmp_path_factory.mktemp("redis"))
        try:
            server.start()
            break
        except RuntimeError:
            server = None
    if server is None:
        pytest.fail("could not start redis-server")
    yield server
    server.stop()


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI must run the Redis tests")
        pytest.skip("redis-server is not installed")
    return binary


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    """A real Redis Cluster: 3 primaries, 3 replicas, AOF on, loopback ports; stopped by pid."""
    cluster = RedisClusterSet(_redis_binary(), tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelSet]:
    """A real Sentinel set-up: a primary, a replica and 3 sentinels; stopped by pid."""
    sentinels = RedisSentinelSet(_redis_binary(), tmp_path_factory.mktemp("sentinel"))
    sentinels.start()
    yield sentinels
    sentinels.stop()


@pytest.fixture
def make_settings() -> MakeSettings:
    """``make_settings(max_queue_depth=2)``: Settings with test-friendly defaults.

    Keys may be given in upper case as in the environment (``MAX_QUEUE_DEPTH=2``).
    """

    def make(**overrides: Any) -> Settings:
        return Settings(**{**SETTINGS_DEFAULTS, **{k.lower(): v for k, v in overrides.items()}})

    return make


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@dataclass
class OpenBackend:
    """A backend and the fakeredis client handed to it (closed by us, not by the backend)."""

    backend: Backend
    client: fakeredis.FakeAsyncRedis | None = None

    async def close(self) -> None:
        await self.backend.close()
        if self.client is not None:
            await self.client.aclose()


def new_backend(kind: str, settings: Settings, redis_url: str | None = None) -> OpenBackend:
    """An unconnected backend of ``kind``: memory, fakeredis (a fresh server), redis or cluster."""
    if kind == "memory":
        return OpenBackend(MemoryBackend(settings))
    # Imported here so that a missing or broken Redis backend fails these params, never skips them.
    from gotaskq.backends.redis import RedisBackend

    if kind == "fakeredis":
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=False)
        return OpenBackend(RedisBackend(settings, client=client), client)
    assert kind in ("redis", "cluster") and redis_url is not None
    mode = "true" if kind == "cluster" else "false"
    return OpenBackend(RedisBackend(replace(settings, redis_url=redis_url, redis_cluster=mode)))


@pytest.fixture
async def make_backend(
    backend_kind: str, make_settings: MakeSettings, request: pytest.FixtureRequest
) -> AsyncIterator[MakeBackend]:
    """``await make_backend(max_queue_depth=2)``: a connected backend with queue "default".

    Every backend it made is closed at teardown; for "redis" the server is flushed first.
    """
    redis_url: str | None = None
    if backend_kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flushall()
        redis_url = server.url
    elif backend_kind == "cluster":
        cluster: RedisClusterSet = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        redis_url = cluster.url
    made: list[OpenBackend] = []

    async def make(**overrides: Any) -> Backend:
        opened = new_backend(backend_kind, make_settings(**overrides), redis_url)
        made.append(opened)
        await opened.backend.connect()
        await opened.backend.create_queue("default")
        return opened.backend

    yield make
    for opened in reversed(made):
        await opened.close()


@pytest.fixture
async def backend(make_backend: MakeBackend) -> Backend:
    return await make_backend()


def redis_settings(url: str, **kw: Any) -> Settings:
    """Settings for a RedisBackend on ``url`` with short leases and retries, for tests."""
    base: dict[str, Any] = {
        "redis_url": url,
        "num_workers": 2,
        "visibility_timeout": 2.0,
        "base_delay": 0.01,
        "max_delay": 0.05,
        "recovery_interval": 0.05,
        "shutdown_grace": 1.0,
    }
    return Settings(**{**base, **kw})


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client on the flushed test server, for looking behind the backend's back."""
    redis_server.flushall()
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
async def make_redis(raw: redis.Redis, redis_server: RedisServer) -> AsyncIterator[Callable[..., Any]]:
    """``await make_redis(**settings)``: a connected RedisBackend on the flushed test server."""
    from gotaskq.backends.redis import RedisBackend

    made: list[Any] = []

    async def make(**kw: Any) -> Any:
        backend = RedisBackend(redis_settings(redis_server.url, **kw))
        made.append(backend)
        await backend.connect()
        await backend.create_queue("default")
        return backend

    yield make
    for backend in made:
        await backend.close()


# -- headless Chromium (the admin UI and /docs browser tests) ------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = None if Path(CHROMIUM).exists() else f"{CHROMIUM} is not installed"
    try:
        from playwright import sync_api
    except ImportError:
        missing = "the playwright package is not installed"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{missing}, and CI must run the browser tests")
        pytest.skip(missing)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
