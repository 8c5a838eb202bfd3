"""The CLI against a real `gotaskq serve` process (memory store, both tokens set): each verb,
JSON when piped, tables on a terminal, and the errors a newcomer meets."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import httpx
import pytest

from gotaskq.config import Settings

pytestmark = pytest.mark.e2e

HOST = "127.0.0.1"
START_DEADLINE_S = 20.0
TOKENS = {"API_TOKEN": "api-secret", "ADMIN_TOKEN": "admin-secret"}
# The children see only what a test gives them, never the caller's settings.
CONFIG_VARS = {f.name.upper() for f in fields(Settings)} | {
    "USE_REDIS",
    "GOTASKQ_HANDLERS",
    "GOTASKQ_URL",
    "GOTASKQ_OUTPUT",
    "NO_COLOR",
}


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS and k != "PYTHONPATH"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    """A `python -m gotaskq COMMAND` child; its output goes to ``log``."""

    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(command: str, workdir: Path, env: dict[str, str]) -> Served:
    """Start and wait until /healthz answers (``worker`` has no HTTP port: not waited on)."""
    for attempt in range(3):  # the free port may be taken between probing and binding
        port = free_port()
        log = workdir / f"{command}-{port}-{attempt}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "gotaskq", command],
                env=child_env({**env, "HOST": HOST, "PORT": str(port)}),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        served = Served(popen, f"http://{HOST}:{port}", log)
        if command == "worker":
            return served
        deadline = time.monotonic() + START_DEADLINE_S
        while popen.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{served.url}/healthz", timeout=1.0).status_code == 200:
                    return served
            except httpx.HTTPError:
                time.sleep(0.05)
        served.stop()
        if "address already in use" not in served.tail().lower():
            raise RuntimeError(f"gotaskq {command} did not start:\n{served.tail()}")
    raise RuntimeError(f"gotaskq {command} found no free port")


def run(
    url: str, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gotaskq", *args],
        env=child_env({"GOTASKQ_URL": url, **TOKENS, **(env or {})}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(url: str, *args: str, **kw: Any) -> Any:
    """Run a verb that must succeed; its stdout (piped: JSON) parsed."""
    r = run(url, *args, **kw)
    assert r.returncode == 0, f"{args}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start("serve", tmp_path_factory.mktemp("cli"), {**TOKENS, "NUM_WORKERS": "4", "VISIBILITY_TIMEOUT": "3s"})
    yield served
    served.stop()


def test_enqueue_a_file_counts_created_existing_and_refused_lines(server: Served, tmp_path: Path) -> None:
    ok(server.url, "queues", "create", "files")
    lines = [json.dumps({"type": "noop", "queue": "files", "payload": {"i": i}}) for i in range(25)]
    lines[3] = "{not json"
    lines[5] = json.dumps({"type": "noop", "queue": "files", "priority": "high"})
    lines[7] = json.dumps({"type": "noop", "queue": "no-such-queue"})
    lines[9] = json.dumps({"type": "noop", "queue": "files", "idempotency_key": "k9"})
    lines.insert(12, "")  # a blank line is skipped, the numbering still counts it
    path = tmp_path / "jobs.ndjson"
    path.write_text("\n".join(lines) + "\n")
    r = run(server.url, "enqueue", "--file", str(path), "--batch-size", "4", "--delay", "5m")
    assert r.returncode == 1, r.stderr  # some lines were refused
    first = json.loads(r.stdout)
    assert (first["created"], first["existed"]) == (22, 0)
    assert [(x["line"], x["code"]) for x in first["refused"]] == [
        (4, "invalid_json"),
        (6, "validation_error"),
        (8, "queue_not_found"),
    ]
    assert "priority" in first["refused"][1]["reason"] and "no-such-queue" in first["refused"][2]["reason"]
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer api-secret"}) as c:
        job = c.get(f"/jobs/{first['jobs'][0]['id']}").json()
    assert job["status"] == "SCHEDULED"  # --delay 5m filled the lines
    assert 295 <= (_epoch(job["run_at"]) - _epoch(job["created_at"])) <= 301

    # The same keyed line again, from stdin, among new ones: it already exists.
    again = "\n".join([lines[9], json.dumps({"type": "noop", "queue": "files"})]) + "\n"
    second = ok(server.url, "enqueue", "--file", "-", "--delay", "5m", stdin=again)
    assert (second["created"], second["existed"], second["refused"]) == (1, 1, [])
    assert second["jobs"][0]["id"] == next(j["id"] for j in first["jobs"] if j["line"] == 10)

    human = run(server.url, "enqueue", "--file", str(path), "--delay", "5m", "--human")
    assert "already existed" in human.stdout and "line 8: queue_not_found" in human.stdout
    assert human.stdout.splitlines()[0].startswith("21 created, 1 already existed")


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_enqueue_one_job_says_whether_it_existed(server: Served) -> None:
    made = run(server.url, "enqueue", "noop", "--idempotency-key", "once", "--human")
    assert made.returncode == 0 and made.stdout.startswith("created job ")
    again = run(server.url, "enqueue", "noop", "--idempotency-key", "once", "--human")
    assert "already existed" in again.stdout


def test_jobs_get_and_cancel(server: Served) -> None:
    job = ok(server.url, "enqueue", "noop", "--delay", "1h")
    assert ok(server.url, "jobs", "get", job["id"])["status"] == "SCHEDULED"
    shown = run(server.url, "jobs", "get", job["id"], "--human").stdout
    assert "status" in shown and "SCHEDULED" in shown and "in 59 min" in shown
    assert ok(server.url, "jobs", "cancel", job["id"])["status"] == "CANCELLED"
    again = run(server.url, "jobs", "cancel", job["id"])
    assert again.returncode == 1 and json.loads(again.stdout)["error"]["code"] == "invalid_state"
    assert f"DELETE {server.url}/jobs/{job['id']}: 409 invalid_state" in again.stderr


def test_queue_verbs(server: Served) -> None:
    ok(server.url, "queues", "create", "ops")
    info = ok(
        server.url, "queues", "set", "ops", "--concurrency", "2", "--rate-limit", "10/1m", "--paused", "--external"
    )
    assert (info["concurrency"], info["rate_limit"], info["paused"], info["external"]) == (
        2,
        {"max": 10, "per": 60.0},
        True,
        True,
    )
    info = ok(server.url, "queues", "set", "ops", "--resumed", "--no-external", "--concurrency", "none")
    assert (info["concurrency"], info["paused"], info["external"]) == (None, False, False)
    assert run(server.url, "queues", "set", "ops").returncode == 2  # nothing to change
    ok(server.url, "queues", "pause", "ops")
    for _ in range(3):
        ok(server.url, "enqueue", "noop", "--queue", "ops")
    assert ok(server.url, "queues", "get", "ops")["pending"] == 3
    table = run(server.url, "queues", "--human").stdout.splitlines()
    assert table[0].split() == ["QUEUE", "STATE", *"PENDING SCHEDULED RUNNING DEAD CONCURRENCY RATE LIMIT".split()]
    assert next(line for line in table if line.startswith("ops ")).split()[:3] == ["ops", "paused", "3"]
    assert ok(server.url, "queues", "purge", "ops") == {"purged": 3}
    assert ok(server.url, "queues", "rm", "ops") == {"deleted": "ops"}
    gone = run(server.url, "queues", "rm", "ops", "--human")
    assert gone.returncode == 1 and "404 queue_not_found" in gone.stderr and gone.stdout == ""


def test_workers_show_busy_slots_and_running_jobs(server: Served) -> None:
    job = ok(server.url, "enqueue", "sleep", "--payload", '{"seconds": 6}')
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer api-secret"}) as c:
        deadline = time.monotonic() + 10
        while c.get(f"/jobs/{job['id']}").json()["status"] != "RUNNING":
            assert time.monotonic() < deadline, "the sleep job never ran"
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while True:  # the registry is refreshed every lease/3: 1 s
        table = run(server.url, "workers", "--human").stdout.splitlines()
        if table[1].split()[2:4] == ["1/4", "1"]:
            break
        assert time.monotonic() < deadline, table
        time.sleep(0.2)
    assert table[0].split() == ["WORKER", "QUEUES", "BUSY", "RUNNING", "TYPES", "STARTED", "SEEN"]
    assert "ago" in table[1] or "just now" in table[1]


def test_health_and_readiness(server: Served) -> None:
    assert ok(server.url, "health") == {"status": "ok"}
    assert ok(server.url, "health", "--ready") == {"status": "ready"}
    human = run(server.url, "health", "--ready", "--human")
    assert human.stdout.startswith("ready") and server.url in human.stdout


def test_a_missing_token_is_named(server: Served) -> None:
    r = run(server.url, "queues", env={"ADMIN_TOKEN": ""})
    assert r.returncode == 1
    assert f"GET {server.url}/queue: 401 unauthorized" in r.stderr
    assert "ADMIN_TOKEN" in r.stderr and "not set" in r.stderr
    wrong = run(server.url, "enqueue", "noop", env={"API_TOKEN": "nope"})
    assert "API_TOKEN" in wrong.stderr and "refused" in wrong.stderr


def test_tables_and_colours_on_a_terminal(server: Served) -> None:
    coloured = _on_a_terminal(server.url, "queues")
    assert "QUEUE" in coloured and "\x1b[1m" in coloured and not coloured.lstrip().startswith("{")
    plain = _on_a_terminal(server.url, "queues", NO_COLOR="1")
    assert "QUEUE" in plain and "\x1b[" not in plain
    assert _on_a_terminal(server.url, "queues", "--json").lstrip().startswith("{")


def test_enqueue_file_draws_a_progress_bar_on_a_terminal(server: Served, tmp_path: Path) -> None:
    path = tmp_path / "jobs.ndjson"
    path.write_text("".join(json.dumps({"type": "noop"}) + "\n" for _ in range(30)))
    shown = _on_a_terminal(server.url, "enqueue", "--file", str(path), "--batch-size", "10")
    assert "\r[" in shown and "/30 jobs" in shown  # stderr is the terminal too
    assert "30 created, 0 already existed (idempotency key), " in _strip(shown)


def _strip(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[mK]", "", text)


def _on_a_terminal(url: str, *args: str, **env: str) -> str:
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gotaskq", *args],
            env=child_env({"GOTASKQ_URL": url, "TERM": "xterm", **TOKENS, **env}),
            stdout=secondary,
            stderr=secondary,
        )
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=30) == 0, b"".join(chunks).decode()
    finally:
        os.close(primary)
    return b"".join(chunks).decode()


def test_the_python_client_batches_and_cancels(server: Served) -> None:
    from gotaskq.client import ApiError, Client

    with Client(server.url, token="api-secret") as c:
        jobs = c.enqueue_batch([{"type": "noop", "delay": 3600}, {"type": "noop", "delay": 3600}])
        assert [j["status"] for j in jobs] == ["SCHEDULED", "SCHEDULED"]
        assert c.cancel(jobs[0]["id"])["status"] == "CANCELLED"
        with pytest.raises(ApiError) as refused:
            c.enqueue_batch([{"type": "noop"}, {"type": "noop", "priority": "high"}])
        assert refused.value.status == 422 and "jobs[1].priority" in refused.value.fields
