"""End to end through the real processes: `gotaskq serve`, `api`, `worker` and the CLI on 127.0.0.1 with Redis."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis

from gotaskq.backends.base import QueueInfo
from gotaskq.backends.redis import RedisBackend
from gotaskq.config import Settings
from gotaskq.job import Job

if TYPE_CHECKING:
    from conftest import RedisServer

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
START_DEADLINE_S = 20.0  # two shared cores: a cold Python + uvicorn start can take a few seconds
STOP_DEADLINE_S = 10.0
JOB_DEADLINE_S = 15.0
CLI_DEADLINE_S = 30.0
POLL_S = 0.05
# Every variable Settings reads: the children get only what a test sets, never the caller's.
CONFIG_VARS = frozenset(f.name.upper() for f in fields(Settings)) | {"USE_REDIS", "GOTASKQ_HANDLERS", "GOTASKQ_URL"}
FAST = {
    "BASE_DELAY": "10",
    "MAX_DELAY": "50",
    "VISIBILITY_TIMEOUT": "2s",
    "RECOVERY_INTERVAL": "200ms",
    "NUM_WORKERS": "4",
    "LOG_LEVEL": "INFO",
}
# Separate databases keep servers of different tests from claiming each other's jobs.
DB_MAIN, DB_AUTH, DB_SHUTDOWN, DB_SPLIT, DB_LIMITS, DB_EXTERNAL = 0, 1, 2, 3, 4, 5
ADMIN = {"Authorization": "Bearer admin-secret"}
API = {"Authorization": "Bearer api-secret"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def db_url(server: RedisServer, db: int) -> str:
    return f"redis://{HOST}:{server.port}/{db}"


def child_env(overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **overrides}


def wait_until(check: Callable[[], bool], what: str, deadline_s: float = JOB_DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(POLL_S)


@dataclass
class Proc:
    """A child process these tests started; its stdout and stderr go to ``log``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, cwd=self.log.parent, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )

    def exited(self) -> bool:
        return self.popen is None or self.popen.poll() is not None

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if self.exited():
                raise RuntimeError(f"{self.name} exited with {self.popen and self.popen.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer /healthz in {START_DEADLINE_S}s:\n{self.tail()}")
            time.sleep(POLL_S)

    def signal(self, sig: signal.Signals) -> None:
        if not self.exited():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.popen is not None
        return self.popen.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_DEADLINE_S; by pid, only our own child."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)

    def tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no output)"


class Processes:
    """Starts gotaskq and redis-server children in ``workdir`` and stops every one of them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Proc] = []

    def _proc(self, name: str, argv: list[str], env: dict[str, str], port: int | None) -> Proc:
        log = self.workdir / f"{len(self.started):02d}-{name}.log"
        proc = Proc(name, argv, env, log, port)
        self.started.append(proc)
        proc.start()
        return proc

    def gotaskq(self, command: str, env: dict[str, str]) -> Proc:
        """``python -m gotaskq COMMAND``; HTTP commands get a free port and are waited on."""
        argv = [sys.executable, "-m", "gotaskq", command]
        if command == "worker":
            return self._proc(command, argv, child_env(env), None)
        for _ in range(3):  # the free port may be taken between probing and binding
            port = free_port()
            proc = self._proc(command, argv, child_env({**env, "HOST": HOST, "PORT": str(port)}), port)
            try:
                proc.wait_healthy()
                return proc
            except RuntimeError:
                proc.stop()
                if "address already in use" not in proc.tail().lower():
                    raise
        raise RuntimeError(f"gotaskq {command} found no free port")

    def redis(self, port: int, datadir: Path) -> Proc:
        """redis-server with AOF fsynced on every write, so a kill -9 loses no acknowledged job."""
        binary = shutil.which("redis-server")
        assert binary is not None
        datadir.mkdir(exist_ok=True)
        argv = [
            binary, "--bind", HOST, "--port", str(port), "--dir", str(datadir), "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
        ]  # fmt: skip
        proc = self._proc("redis", argv, dict(os.environ), port)
        client = redis.Redis(host=HOST, port=port, socket_timeout=1.0)
        try:

            def answers() -> bool:
                if proc.exited():
                    raise RuntimeError(f"redis-server exited:\n{proc.tail()}")
                try:
                    return bool(client.ping())
                except redis.RedisError:
                    return False

            wait_until(answers, "redis-server to answer PING", START_DEADLINE_S)
        finally:
            client.close()
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()

    def report(self) -> str:
        return "\n".join(f"----- {p.name} (pid {p.popen and p.pid}) {p.log.name}\n{p.tail()}" for p in self.started)


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def module_procs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    procs = Processes(tmp_path_factory.mktemp("e2e"))
    yield procs
    procs.stop_all()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    yield procs
    procs.stop_all()


@pytest.fixture(autouse=True)
def _output_on_failure(request: pytest.FixtureRequest, module_procs: Processes, procs: Processes) -> Iterator[None]:
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:  # the call phase was reported before this teardown
        print(module_procs.report())
        print(procs.report())


@pytest.fixture(
    scope="module",
    params=[
        "redis",
        pytest.param("cluster", marks=pytest.mark.cluster),
        pytest.param("sentinel", marks=pytest.mark.slow),
    ],
)
def server(request: pytest.FixtureRequest, module_procs: Processes) -> Proc:
    """The shared `gotaskq serve`: small queue depth and body limit for the 429 and 413 cases;
    on one Redis, on a real Cluster found from one node's address (REDIS_CLUSTER=auto), and
    through Sentinel."""
    topology: dict[str, str] = {}
    if request.param == "sentinel":
        sentinels = request.getfixturevalue("redis_sentinel")
        sentinels.flushall()
        topology = sentinels.env()
    elif request.param == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        topology = {"REDIS_URL": cluster.url}
    else:
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flushall()
        topology = {"REDIS_URL": db_url(redis_server, DB_MAIN)}
    module_procs.stop_all()  # the other store's server
    env = {**FAST, **topology, "MAX_QUEUE_DEPTH": "5", "MAX_BODY_BYTES": "2048"}
    return module_procs.gotaskq("serve", env)


@pytest.fixture(scope="module")
def client(server: Proc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10.0) as c:
        yield c


# -- helpers -----------------------------------------------------------------------------------
def error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


def submit(c: httpx.Client, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    r = c.post("/jobs", json={"type": "noop", **body}, headers=headers)
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


def make_queue(c: httpx.Client, name: str, *, paused: bool = False) -> None:
    assert c.post(f"/queue/{name}").status_code in (200, 201)
    if paused:
        assert c.post(f"/queue/{name}/pause").json()["paused"] is True


def wait_status(c: httpx.Client, job_id: str, status: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        r = c.get(f"/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        seen.update(r.json())
        return bool(seen["status"] == status)

    try:
        wait_until(reached, f"job {job_id} to be {status}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen}") from None
    return seen


def queue_info(c: httpx.Client, name: str) -> dict[str, Any]:
    r = c.get(f"/queue/{name}")
    assert r.status_code == 200, r.text
    info: dict[str, Any] = r.json()
    return info


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gotaskq", *args],
        env=child_env(env or {}),
        capture_output=True,
        text=True,
        timeout=CLI_DEADLINE_S,
        check=False,
    )


def read_from_redis(url: str, job_id: str, queue: str) -> tuple[Job | None, QueueInfo]:
    """A job and its queue's counts, read by a fresh RedisBackend (no server running)."""

    async def read() -> tuple[Job | None, QueueInfo]:
        backend = RedisBackend(Settings(redis_url=url))
        await backend.connect()
        try:
            return await backend.get_job(job_id), await backend.queue_info(queue)
        finally:
            await backend.close()

    return asyncio.run(read())


# -- jobs --------------------------------------------------------------------------------------
def test_builtin_jobs_run_to_done(client: httpx.Client) -> None:
    make_queue(client, "runs")
    jobs = [
        submit(client, queue="runs"),
        submit(client, type="logger", queue="runs", payload={"msg": "hello"}),
        submit(client, type="sleep", queue="runs", payload={"seconds": 0.2}),
    ]
    for job in jobs:
        assert job["status"] == "PENDING" and job["attempts"] == 0
        done = wait_status(client, job["id"], "DONE")
        assert done["attempts"] == 1
        assert done["started_at"] and done["finished_at"] and done["last_error"] is None


def test_default_queue_exists(client: httpx.Client) -> None:
    job = submit(client, payload={"n": 1})
    assert job["queue"] == "default"
    wait_status(client, job["id"], "DONE")


def test_idempotency_key_replays_then_conflicts(client: httpx.Client) -> None:
    body = {"type": "noop", "queue": "default", "payload": {"n": 1}, "idempotency_key": "e2e-once"}
    first = client.post("/jobs", json=body)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = client.post("/jobs", json=body)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/jobs", json={**body, "payload": {"n": 2}})
    assert other.status_code == 409, other.text
    assert error_code(other) == "idempotency_conflict"
    assert first.json()["id"] in other.json()["error"]["message"]


def test_malformed_json_is_400(client: httpx.Client) -> None:
    r = client.post("/jobs", content=b'{"type": "noop",', headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert error_code(r) == "invalid_json"


def test_invalid_fields_are_422_and_named(client: httpx.Client) -> None:
    r = client.post("/jobs", json={"type": "noop", "priority": 11, "delay": -1, "colour": "red"})
    assert r.status_code == 422, r.text
    assert error_code(r) == "validation_error"
    assert {"priority", "delay", "colour"} <= set(r.json()["error"]["fields"])
    missing = client.post("/jobs", json={"payload": {}})
    assert missing.status_code == 422 and "type" in missing.json()["error"]["fields"]


def test_unknown_queue_is_404(client: httpx.Client) -> None:
    r = client.post("/jobs", json={"type": "noop", "queue": "no-such-queue"})
    assert r.status_code == 404, r.text
    assert error_code(r) == "queue_not_found"


def test_body_over_max_body_bytes_is_413(client: httpx.Client) -> None:
    big = {"type": "noop", "payload": {"blob": "x" * 4000}}
    r = client.post("/jobs", json=big)
    assert r.status_code == 413, r.text
    assert error_code(r) == "payload_too_large"
    # Without a Content-Length (chunked), the limit holds while reading.
    chunks = iter([b'{"type": "noop", "payload": {"blob": "', b"x" * 3000, b'"}}'])
    chunked = client.post("/jobs", content=chunks, headers={"content-type": "application/json"})
    assert chunked.status_code == 413, chunked.text
    assert client.post("/jobs", json={"type": "noop", "payload": {"blob": "x" * 1500}}).status_code == 201


def test_full_queue_is_429_with_retry_after(client: httpx.Client) -> None:
    make_queue(client, "full", paused=True)  # paused: the five jobs stay waiting
    for i in range(5):
        submit(client, queue="full", payload={"i": i})
    r = client.post("/jobs", json={"type": "noop", "queue": "full"})
    assert r.status_code == 429, r.text
    assert error_code(r) == "queue_full"
    assert int(r.headers["retry-after"]) >= 1
    batch = client.post("/jobs/batch", json={"jobs": [{"type": "noop", "queue": "full"}]})
    assert batch.status_code == 429, batch.text
    assert queue_info(client, "full")["pending"] == 5


def test_batch_201_and_all_or_nothing_422(client: httpx.Client) -> None:
    make_queue(client, "batchq")
    r = client.post("/jobs/batch", json={"jobs": [{"type": "noop", "queue": "batchq", "payload": i} for i in range(3)]})
    assert r.status_code == 201, r.text
    jobs = r.json()["jobs"]
    assert len(jobs) == 3 and len({j["id"] for j in jobs}) == 3
    for job in jobs:
        wait_status(client, job["id"], "DONE")

    make_queue(client, "batchbad", paused=True)
    bad = {"jobs": [{"type": "noop", "queue": "batchbad"}, {"type": "noop", "queue": "batchbad", "priority": 99}]}
    r = client.post("/jobs/batch", json=bad)
    assert r.status_code == 422, r.text
    assert "jobs[1].priority" in r.json()["error"]["fields"]
    assert queue_info(client, "batchbad")["pending"] == 0
    assert client.post("/jobs/batch", json={"jobs": []}).status_code == 422


def test_get_and_cancel(client: httpx.Client) -> None:
    make_queue(client, "cancelq")
    delayed = submit(client, queue="cancelq", delay=60)
    assert delayed["status"] == "SCHEDULED"
    got = client.get(f"/jobs/{delayed['id']}")
    assert got.status_code == 200 and got.json()["id"] == delayed["id"]
    cancelled = client.delete(f"/jobs/{delayed['id']}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    assert queue_info(client, "cancelq")["scheduled"] == 0
    twice = client.delete(f"/jobs/{delayed['id']}")
    assert twice.status_code == 409 and error_code(twice) == "invalid_state"

    done = submit(client, queue="cancelq")
    wait_status(client, done["id"], "DONE")
    r = client.delete(f"/jobs/{done['id']}")
    assert r.status_code == 409, r.text
    assert error_code(r) == "invalid_state"

    for missing in ("123456789", "not-an-id"):
        assert client.get(f"/jobs/{missing}").status_code == 404
        r = client.delete(f"/jobs/{missing}")
        assert r.status_code == 404 and error_code(r) == "job_not_found"


# -- queues ------------------------------------------------------------------------------------
def test_queue_routes(client: httpx.Client) -> None:
    first = client.post("/queue/e2e-q.1")
    assert first.status_code == 201, first.text
    assert first.json()["name"] == "e2e-q.1"
    assert client.post("/queue/e2e-q.1").status_code == 200
    for bad in ("bad*name", "x" * 65):
        r = client.post(f"/queue/{bad}")
        assert r.status_code == 422, r.text
        assert "queue" in r.json()["error"]["fields"]
    info = queue_info(client, "e2e-q.1")
    assert info == {
        "name": "e2e-q.1",
        "paused": False,
        "pending": 0,
        "scheduled": 0,
        "running": 0,
        "dead": 0,
        "concurrency": None,
        "rate_limit": None,
        "external": False,
    }
    for path in ("/queue/nope", "/queue/nope/pause", "/queue/nope/resume"):
        r = client.get(path) if path == "/queue/nope" else client.post(path)
        assert r.status_code == 404, (path, r.text)
        assert error_code(r) == "queue_not_found"
    names = {q["name"] for q in client.get("/queue").json()["queues"]}
    assert {"default", "e2e-q.1"} <= names


def test_paused_queue_holds_jobs_until_resume(client: httpx.Client) -> None:
    make_queue(client, "hold", paused=True)
    job = submit(client, queue="hold")
    time.sleep(1.2)  # longer than the idle workers' one-second poll
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "PENDING"
    assert queue_info(client, "hold")["pending"] == 1
    resumed = client.post("/queue/hold/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    wait_status(client, job["id"], "DONE")


# -- dead-letter queue -------------------------------------------------------------------------
def dead_job(c: httpx.Client, queue: str, max_retries: int) -> dict[str, Any]:
    job = submit(c, type="fail", queue=queue, max_retries=max_retries)
    return wait_status(c, job["id"], "DEAD")


def dlq_ids(c: httpx.Client, queue: str | None = None) -> list[str]:
    r = c.get("/dlq", params={"queue": queue} if queue else None)
    assert r.status_code == 200, r.text
    return [j["id"] for j in r.json()["jobs"]]


def test_dlq_one_job(client: httpx.Client) -> None:
    make_queue(client, "dlqq")
    dead = dead_job(client, "dlqq", max_retries=1)
    jid = dead["id"]
    assert dead["attempts"] == 2 and "always fails" in dead["last_error"]
    assert jid in dlq_ids(client, "dlqq") and jid in dlq_ids(client)
    got = client.get(f"/dlq/{jid}")
    assert got.status_code == 200 and got.json()["status"] == "DEAD"

    client.post("/queue/dlqq/pause")  # the replayed job stays PENDING, so a second replay is refused
    replayed = client.post(f"/dlq/{jid}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["status"] == "PENDING" and replayed.json()["attempts"] == 0
    again = client.post(f"/dlq/{jid}/replay")
    assert again.status_code == 409 and error_code(again) == "invalid_state"
    assert client.get(f"/dlq/{jid}").status_code == 404  # not dead now
    assert client.delete(f"/dlq/{jid}").status_code == 409
    client.post("/queue/dlqq/resume")
    wait_status(client, jid, "DEAD")

    assert client.delete(f"/dlq/{jid}").status_code == 204
    gone = client.delete(f"/dlq/{jid}")
    assert gone.status_code == 404 and error_code(gone) == "job_not_found"
    assert client.get(f"/jobs/{jid}").status_code == 404
    assert client.post(f"/dlq/{jid}/replay").status_code == 404


def test_dlq_replay_all_and_purge(client: httpx.Client) -> None:
    make_queue(client, "dlqall")
    ids = {dead_job(client, "dlqall", max_retries=0)["id"] for _ in range(2)}
    assert set(dlq_ids(client, "dlqall")) == ids
    client.post("/queue/dlqall/pause")
    r = client.post("/dlq/replay", params={"queue": "dlqall"})
    assert r.status_code == 200 and r.json() == {"replayed": 2}, r.text
    assert queue_info(client, "dlqall")["pending"] == 2 and dlq_ids(client, "dlqall") == []
    client.post("/queue/dlqall/resume")
    for jid in ids:
        wait_status(client, jid, "DEAD")
    r = client.delete("/dlq", params={"queue": "dlqall"})
    assert r.status_code == 200 and r.json() == {"deleted": 2}, r.text
    assert dlq_ids(client, "dlqall") == []
    assert queue_info(client, "dlqall")["dead"] == 0


def test_dlq_errors(client: httpx.Client) -> None:
    for r in (client.post("/dlq/replay"), client.delete("/dlq"), client.get("/dlq", params={"limit": "0"})):
        assert r.status_code == 422, r.text
    for r in (client.get("/dlq", params={"queue": "nope"}), client.post("/dlq/replay", params={"queue": "nope"})):
        assert r.status_code == 404, r.text
    assert client.get("/dlq/42").status_code == 404


# -- operations --------------------------------------------------------------------------------
def test_metrics(client: httpx.Client) -> None:
    make_queue(client, "metq")
    job = submit(client, queue="metq")
    wait_status(client, job["id"], "DONE")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert re.search(r'^gotaskq_jobs_enqueued_total\{queue="metq"\} 1\.0$', text, re.M), text
    assert re.search(r'^gotaskq_queue_depth\{queue="metq",state="pending"\} 0\.0$', text, re.M), text
    done = re.search(r'^gotaskq_jobs_processed_total\{queue="metq",status="done"\} ([0-9.e+]+)$', text, re.M)
    assert done and float(done.group(1)) >= 1, text


def test_health_ready_openapi(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"/jobs", "/jobs/batch", "/jobs/{id}", "/queue", "/dlq", "/metrics"} <= set(doc["paths"])


def test_cli_verbs_against_the_server(server: Proc, client: httpx.Client) -> None:
    enq = run_cli("enqueue", "noop", "--payload", '{"from": "cli"}', "--url", server.url)
    assert enq.returncode == 0, enq.stderr
    refused = run_cli("enqueue", "noop", "--queue", "no-such-queue", "--url", server.url)
    assert refused.returncode == 1 and json.loads(refused.stdout)["error"]["code"] == "queue_not_found"
    job = json.loads(enq.stdout)
    assert job["payload"] == {"from": "cli"}
    wait_status(client, job["id"], "DONE")
    queues = run_cli("queues", "--url", server.url)
    assert queues.returncode == 0, queues.stderr
    assert "default" in {q["name"] for q in json.loads(queues.stdout)["queues"]}
    dlq = run_cli("dlq", "ls", "--url", server.url)
    assert dlq.returncode == 0, dlq.stderr
    assert "jobs" in json.loads(dlq.stdout)
    health = run_cli("health", "--url", server.url)
    assert health.returncode == 0, health.stderr
    assert run_cli("health", "--url", f"http://{HOST}:{free_port()}").returncode == 1


def test_cli_schedules_and_the_running_scheduler(server: Proc, client: httpx.Client) -> None:
    make_queue(client, "ticks")
    made = run_cli(
        "schedules", "set", "tick", "--every", "0.5", "--type", "noop", "--payload", '{"s": 1}',
        "--queue", "ticks", "--url", server.url,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["every"] == 0.5 and json.loads(made.stdout)["job"]["queue"] == "ticks"
    wait_until(lambda: bool(client.get("/schedules/tick").json()["last_job_id"]), "the scheduler to run a tick")
    listed = run_cli("schedules", "ls", "--url", server.url)
    assert [s["name"] for s in json.loads(listed.stdout)["schedules"]] == ["tick"]
    job_id = client.get("/schedules/tick").json()["last_job_id"]
    assert client.get(f"/jobs/{job_id}").json()["idempotency_key"].startswith("schedule:tick:")
    removed = run_cli("schedules", "rm", "tick", "--url", server.url)
    assert removed.returncode == 0 and json.loads(removed.stdout) == {"deleted": "tick"}
    assert run_cli("schedules", "rm", "tick", "--url", server.url).returncode == 1
    bad = run_cli("schedules", "set", "x", "--cron", "99 * * * *", "--type", "noop", "--url", server.url)
    assert bad.returncode == 1 and "cron" in bad.stdout


def test_cli_queue_settings_purge_and_delete(server: Proc, client: httpx.Client) -> None:
    make_queue(client, "cliq", paused=True)
    limits = run_cli("queues", "--set", "cliq", "--concurrency", "2", "--rate-limit", "10/60", "--url", server.url)
    assert limits.returncode == 0, limits.stderr
    assert json.loads(limits.stdout)["concurrency"] == 2
    assert json.loads(limits.stdout)["rate_limit"] == {"max": 10, "per": 60.0}
    cleared = run_cli("queues", "--set", "cliq", "--concurrency", "none", "--url", server.url)
    assert json.loads(cleared.stdout)["concurrency"] is None and json.loads(cleared.stdout)["rate_limit"]
    for _ in range(2):
        submit(client, queue="cliq")
    purged = run_cli("queues", "--purge", "cliq", "--url", server.url)
    assert purged.returncode == 0 and json.loads(purged.stdout) == {"purged": 2}
    deleted = run_cli("queues", "--delete", "cliq", "--url", server.url)
    assert deleted.returncode == 0 and json.loads(deleted.stdout) == {"deleted": "cliq"}
    assert run_cli("queues", "--delete", "cliq", "--url", server.url).returncode == 1


# -- servers of their own ----------------------------------------------------------------------
def test_tokens(redis_server: RedisServer, procs: Processes) -> None:
    env = {**FAST, "REDIS_URL": db_url(redis_server, DB_AUTH), "API_TOKEN": "api-secret", "ADMIN_TOKEN": "admin-secret"}
    srv = procs.gotaskq("serve", env)
    with httpx.Client(base_url=srv.url, timeout=10.0) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic api-secret"}):
            r = c.post("/jobs", json={"type": "noop"}, headers=headers)
            assert r.status_code == 401, r.text
            assert error_code(r) == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
        job = submit(c, headers=API)
        wait_status(c, job["id"], "DONE", headers=API)
        assert c.get(f"/jobs/{job['id']}").status_code == 401
        for method, path in (("GET", "/queue"), ("POST", "/queue/authq"), ("GET", "/dlq"), ("GET", "/queue/default")):
            assert c.request(method, path).status_code == 401, path
            assert c.request(method, path, headers=API).status_code == 401, path  # the API token is not enough
            assert c.request(method, path, headers=ADMIN).status_code in (200, 201), path
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert c.get(path).status_code == 200, path
    queues = run_cli("queues", "--url", srv.url, env={"ADMIN_TOKEN": "admin-secret"})
    assert queues.returncode == 0, queues.stderr
    assert run_cli("queues", "--url", srv.url).returncode == 1


def test_sigterm_releases_the_running_job(redis_server: RedisServer, procs: Processes) -> None:
    url = db_url(redis_server, DB_SHUTDOWN)
    srv = procs.gotaskq("serve", {**FAST, "REDIS_URL": url, "SHUTDOWN_GRACE": "0.5s"})
    with httpx.Client(base_url=srv.url, timeout=10.0) as c:
        job = submit(c, type="sleep", payload={"seconds": 5})
        wait_status(c, job["id"], "RUNNING")
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    code = srv.wait(timeout=STOP_DEADLINE_S)
    elapsed = time.monotonic() - started
    # uvicorn re-raises the SIGTERM it caught once its shutdown is complete.
    assert code in (0, -signal.SIGTERM), srv.tail()
    assert "Application shutdown complete" in srv.tail()
    assert elapsed < 4.0, f"took {elapsed:.1f}s: the 5 s job was waited for, not released"
    stored, info = read_from_redis(url, job["id"], "default")
    assert stored is not None
    assert (stored.status.value, stored.attempts) == ("PENDING", 0)
    assert (info.pending, info.running) == (1, 0)


def test_redis_down_is_503_and_a_retry_does_not_duplicate(procs: Processes, tmp_path: Path) -> None:
    port = free_port()
    rds = procs.redis(port, tmp_path / "redis")
    # No workers: the jobs stay PENDING, so the queue counts show any duplicate.
    srv = procs.gotaskq("serve", {**FAST, "REDIS_URL": f"redis://{HOST}:{port}/0", "NUM_WORKERS": "0"})
    with httpx.Client(base_url=srv.url, timeout=10.0) as c:
        acked = {"type": "noop", "idempotency_key": "acked-before-crash"}
        lost = {"type": "noop", "idempotency_key": "sent-while-down"}
        first = c.post("/jobs", json=acked)
        assert first.status_code == 201, first.text

        rds.signal(signal.SIGKILL)
        rds.wait(timeout=5)
        for body in (acked, lost):
            r = c.post("/jobs", json=body)
            assert r.status_code == 503, r.text
            assert error_code(r) == "backend_unavailable"
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200

        rds = procs.redis(port, tmp_path / "redis")  # same port, same AOF
        wait_until(lambda: c.get("/readyz").status_code == 200, "/readyz to recover")
        replay = c.post("/jobs", json=acked)
        assert replay.status_code == 200, replay.text
        assert replay.headers["idempotent-replayed"] == "true" and replay.json()["id"] == first.json()["id"]
        retried = c.post("/jobs", json=lost)
        assert retried.status_code == 201, retried.text
        assert c.post("/jobs", json=lost).json()["id"] == retried.json()["id"]
        assert queue_info(c, "default")["pending"] == 2


def test_api_and_worker_processes_share_one_redis(redis_server: RedisServer, procs: Processes) -> None:
    env = {**FAST, "REDIS_URL": db_url(redis_server, DB_SPLIT)}
    api = procs.gotaskq("api", env)
    with httpx.Client(base_url=api.url, timeout=10.0) as c:
        job = submit(c, payload={"via": "api"})
        time.sleep(0.5)
        assert c.get(f"/jobs/{job['id']}").json()["status"] == "PENDING"  # the api process runs no jobs
        worker = procs.gotaskq("worker", env)
        done = wait_status(c, job["id"], "DONE")
        assert done["attempts"] == 1
    worker.stop()
    assert worker.popen is not None and worker.popen.returncode == 0, worker.tail()


@pytest.mark.slow
def test_limits_and_schedules_hold_across_worker_processes(redis_server: RedisServer, procs: Processes) -> None:
    """Three real `gotaskq worker` processes of 10 slots each share one Redis: a queue's
    concurrency of 2 and rate limit of 10/s hold across them, and an `every: 1` schedule that
    all three run makes one job a second, not three."""
    env = {**FAST, "REDIS_URL": db_url(redis_server, DB_LIMITS), "NUM_WORKERS": "10"}
    api = procs.gotaskq("api", env)
    with httpx.Client(base_url=api.url, timeout=10.0) as c:
        assert c.post("/queue/conc", json={"concurrency": 2}).status_code == 201
        assert c.post("/queue/rate", json={"rate_limit": {"max": 10, "per": 1}}).status_code == 201
        make_queue(c, "cron", paused=True)  # its jobs stay PENDING: they count the ticks
        slow = [submit(c, type="sleep", payload={"seconds": 0.3}, queue="conc")["id"] for _ in range(12)]
        quick = [submit(c, queue="rate")["id"] for _ in range(40)]
        workers = [procs.gotaskq("worker", env) for _ in range(3)]
        wait_until(lambda: len(c.get("/workers").json()["workers"]) == 3, "three registered workers")
        every_second = {"every": 1, "job": {"type": "noop", "queue": "cron"}}
        assert c.put("/schedules/each-second", json=every_second).status_code == 201
        t0 = time.monotonic()
        peak = 0
        while time.monotonic() - t0 < 10.5:
            peak = max(peak, c.get("/queue/conc").json()["running"])
            time.sleep(0.02)
        assert c.delete("/schedules/each-second").status_code == 204
        ticks = c.get("/queue/cron").json()["pending"]
        listed = run_cli("workers", "--url", api.url)
        assert listed.returncode == 0 and len(json.loads(listed.stdout)["workers"]) == 3
        for jid in slow + quick:
            wait_status(c, jid, "DONE")
        starts = [c.get(f"/jobs/{jid}").json()["started_at"] for jid in quick]
        assert "gotaskq_workers 3.0" in c.get("/metrics").text
    for w in workers:
        w.stop()
    assert peak == 2, f"{peak} jobs of a queue with concurrency 2 ran at once"
    per_second: dict[str, int] = {}
    for at in starts:
        per_second[at[:19]] = per_second.get(at[:19], 0) + 1  # fixed windows of one second
    assert max(per_second.values()) <= 10, per_second
    assert 9 <= ticks <= 11, f"an every-1s schedule run by 3 processes for 10 s made {ticks} jobs"


# -- external workers: the shell, Node.js and Python reference workers against a real API process
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_reference_workers_run_jobs_over_http(redis_server: RedisServer, procs: Processes, tmp_path: Path) -> None:
    from gotaskq.client import Client, LeaseLost

    if shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed, and CI must run the Node.js worker")
        pytest.skip("node is not installed (bash scripts/test installs Debian's nodejs)")
    env = {**FAST, "REDIS_URL": db_url(redis_server, DB_EXTERNAL), "WORKER_TOKEN": "w-secret"}
    api = procs.gotaskq("api", env)
    with Client(api.url) as c, Client(api.url, token="w-secret") as worker:
        for q in ("shell", "shfail", "node", "py"):
            assert c.create_queue(q, external=True)["external"] is True
        ok = [c.enqueue("any", {"n": i}, queue="shell")["id"] for i in range(2)]
        bad = c.enqueue("any", queue="shfail", max_retries=0)["id"]
        summed = c.enqueue("sum", {"numbers": [1, 2, 3]}, queue="node")["id"]
        broken = c.enqueue("sum", {"numbers": "x"}, queue="node", max_retries=0)["id"]
        wenv = {**os.environ, "GOTASKQ_URL": api.url, "WORKER_TOKEN": "w-secret"}
        runs = [
            subprocess.Popen(
                ["sh", str(EXAMPLES / "worker.sh"), "sh", "-c", "cat >/dev/null; echo 42"],
                env={**wenv, "QUEUE": "shell", "MAX_JOBS": "2"},
            ),
            subprocess.Popen(
                ["sh", str(EXAMPLES / "worker.sh"), "false"], env={**wenv, "QUEUE": "shfail", "MAX_JOBS": "1"}
            ),
            subprocess.Popen(
                ["node", str(EXAMPLES / "worker_node.mjs")], env={**wenv, "QUEUE": "node", "MAX_JOBS": "2"}
            ),
        ]
        try:
            for run in runs:
                run.wait(timeout=60)
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.wait(timeout=5)
        assert [run.returncode for run in runs] == [0, 0, 0]
        for jid in ok:
            job = c.get_job(jid)
            assert job is not None and (job["status"], job["result"]) == ("DONE", 42)
        dead = c.get_job(bad)
        assert dead is not None and dead["status"] == "DEAD" and dead["last_error"] == "CommandFailed: exit status 1"
        node_ok, node_bad = c.get_job(summed), c.get_job(broken)
        assert node_ok is not None and node_ok["result"] == {"sum": 6}
        assert node_bad is not None and node_bad["status"] == "DEAD"
        assert node_bad["errors"][-1]["error"].startswith("TypeError") and node_bad["errors"][-1]["traceback"]
        # the Python client as a worker, and a late write refused
        py = c.enqueue("t", queue="py")["id"]
        (job,) = worker.claim("py", max=5, lease=5)
        assert job["id"] == py and worker.heartbeat(py, job["lease_token"])
        assert worker.complete(py, job["lease_token"], result="done")["status"] == "DONE"
        with pytest.raises(LeaseLost):
            worker.complete(py, job["lease_token"])
