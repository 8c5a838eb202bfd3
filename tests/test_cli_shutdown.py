"""Stopping `gotaskq serve` and `gotaskq worker` by signal: the first says how many jobs it
finishes and for how long, the second stops now and hands the running jobs back."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from test_cli_e2e import Served, start

if TYPE_CHECKING:
    from conftest import RedisServer

pytestmark = pytest.mark.e2e

DB_SHUTDOWN = 12  # a database of its own on the shared test redis-server
FAST = {"VISIBILITY_TIMEOUT": "3s", "NUM_WORKERS": "2", "SHUTDOWN_GRACE": "30s"}


def _wait(check: object, what: str, served: Served, deadline_s: float = 15.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{served.tail()}")
        time.sleep(0.05)


def _running_sleep_job(api_url: str, served: Served, type: str = "sleep") -> str:
    with httpx.Client(base_url=api_url, timeout=10.0) as c:
        job_id: str = c.post("/jobs", json={"type": type, "payload": {"seconds": 120}}).json()["id"]
        _wait(lambda: c.get(f"/jobs/{job_id}").json()["status"] == "RUNNING", "the job to run", served)
    return job_id


def _stop_twice(served: Served, first: signal.Signals, expect: list[str]) -> float:
    """Send ``first``, check the message and that the job is given its grace, then Ctrl+C."""
    served.popen.send_signal(first)
    _wait(lambda: "press Ctrl+C again to stop now" in served.tail(), "the first message", served)
    line = next(x for x in served.tail().splitlines() if "press Ctrl+C again" in x)
    for part in expect:
        assert part in line, line
    time.sleep(1.0)
    assert served.popen.poll() is None, f"exited within the grace period:\n{served.tail()}"
    started = time.monotonic()
    served.popen.send_signal(signal.SIGINT)
    served.popen.wait(timeout=15)
    return time.monotonic() - started


BLOCKING = """
import time

def register(app):
    app.registry.register("block", lambda job: time.sleep(job.payload["seconds"]))
"""


def test_serve_ctrl_c_twice_stops_now_in_memory_mode(tmp_path: Path) -> None:
    """A synchronous handler (a thread Python would wait for at exit) does not hold it either."""
    (tmp_path / "blocking.py").write_text(BLOCKING)
    served = start("serve", tmp_path, {**FAST, "GOTASKQ_HANDLERS": "blocking"})
    try:
        _running_sleep_job(served.url, served, "block")
        took = _stop_twice(
            served,
            signal.SIGINT,
            ["finishing 1 job, up to 30 s (SHUTDOWN_GRACE)", "in-memory mode (no REDIS_URL)", "waiting jobs are lost"],
        )
    finally:
        served.stop()
    assert took < 8.0, f"the second Ctrl+C took {took:.1f}s:\n{served.tail()}"
    assert "stopping now: 1 running job lost" in served.tail()
    assert "1 handler still running in their thread" in served.tail()
    assert "Traceback" not in served.tail()


@pytest.mark.redis
def test_worker_sigterm_then_ctrl_c_releases_the_job(redis_server: RedisServer, tmp_path: Path) -> None:
    import redis

    url = f"redis://127.0.0.1:{redis_server.port}/{DB_SHUTDOWN}"
    redis.Redis.from_url(url).flushdb()
    env = {**FAST, "REDIS_URL": url}
    api = start("api", tmp_path, env)
    worker = start("worker", tmp_path, env)
    try:
        job_id = _running_sleep_job(api.url, worker)
        took = _stop_twice(
            worker,
            signal.SIGTERM,
            ["finishing 1 job, up to 30 s (SHUTDOWN_GRACE)", "go back to their queue"],
        )
        assert took < 8.0, f"the second signal took {took:.1f}s:\n{worker.tail()}"
        assert "stopping now: 1 running job released" in worker.tail()
        assert "in-memory" not in worker.tail()
        with httpx.Client(base_url=api.url, timeout=10.0) as c:
            assert c.get(f"/jobs/{job_id}").json()["status"] == "PENDING"  # released, not left RUNNING
    finally:
        worker.stop()
        api.stop()


@pytest.mark.redis
def test_serve_with_redis_says_jobs_go_back(redis_server: RedisServer, tmp_path: Path) -> None:
    import redis

    url = f"redis://127.0.0.1:{redis_server.port}/{DB_SHUTDOWN + 1}"
    redis.Redis.from_url(url).flushdb()
    served = start("serve", tmp_path, {**FAST, "REDIS_URL": url})
    try:
        job_id = _running_sleep_job(served.url, served)
        took = _stop_twice(served, signal.SIGTERM, ["finishing 1 job", "go back to their queue"])
    finally:
        served.stop()
    assert took < 8.0, f"the second signal took {took:.1f}s:\n{served.tail()}"
    assert "stopping now: 1 running job released" in served.tail()
    assert "released 1 unfinished job(s) of queue default" in served.tail(), job_id
