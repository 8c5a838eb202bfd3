"""Job handlers of the chaos harness: every execution is recorded outside Redis.

Loaded by ``gotaskq worker`` through ``GOTASKQ_HANDLERS=chaos_handlers`` (``scripts/`` on
PYTHONPATH). Each worker process appends JSON lines to ``$CHAOS_EXEC_DIR/exec-<pid>.jsonl``
with one ``write`` on an O_APPEND descriptor and an ``fsync`` per line, so neither kill -9 of
the worker nor a restart of Redis can lose or reorder a record:

    {"ev": "start", "x": <execution id>, "id", "key", "att", "kind", "pid", "t"}
    {"ev": "end",   "x": <execution id>, "id", "att", "pid", "t", "outcome": ok|fail|cancelled}

Payload ``{"key", "kind", "ms", "fail_times"}``: ``kind`` is fast, long, flaky or poison;
flaky fails while ``job.attempts <= fail_times``; poison always fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from gotaskq import App, Job

JOB_TYPE = "chaos"


class ChaosFailure(Exception):
    """The failure a flaky or poison job raises on purpose."""


class ExecLog:
    """One append-only, fsynced file per process; the pid is part of the name."""

    def __init__(self, directory: str) -> None:
        self.pid = os.getpid()
        path = os.path.join(directory, f"exec-{self.pid}.jsonl")
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.fsync = os.environ.get("CHAOS_FSYNC", "1") != "0"
        self.seq = 0
        self.run_id = os.urandom(4).hex()  # execution ids stay unique even if a pid is reused

    def write(self, record: dict[str, Any]) -> None:
        # One write() per line on O_APPEND: a kill -9 leaves whole lines only.
        os.write(self.fd, json.dumps(record, separators=(",", ":")).encode() + b"\n")
        if self.fsync:
            os.fsync(self.fd)

    def next_exec_id(self) -> str:
        self.seq += 1
        return f"{self.pid}-{self.run_id}-{self.seq}"


def register(app: App) -> None:
    directory = os.environ.get("CHAOS_EXEC_DIR")
    if not directory:
        raise RuntimeError("chaos_handlers needs CHAOS_EXEC_DIR")
    log = ExecLog(directory)

    @app.task(JOB_TYPE)
    async def chaos(job: Job) -> dict[str, Any]:
        p = job.payload if isinstance(job.payload, dict) else {}
        kind = str(p.get("kind", "fast"))
        x = log.next_exec_id()
        base = {"x": x, "id": job.id, "att": job.attempts, "pid": log.pid}
        log.write({"ev": "start", **base, "key": p.get("key"), "kind": kind, "q": job.queue, "t": time.time()})
        try:
            await asyncio.sleep(float(p.get("ms", 10)) / 1000)
            if kind == "poison":
                raise ChaosFailure("poison job: always fails")
            if kind == "flaky" and job.attempts <= int(p.get("fail_times", 0)):
                raise ChaosFailure(f"flaky job: attempt {job.attempts} fails")
        except asyncio.CancelledError:
            log.write({"ev": "end", **base, "t": time.time(), "outcome": "cancelled"})
            raise
        except Exception:
            log.write({"ev": "end", **base, "t": time.time(), "outcome": "fail"})
            raise
        log.write({"ev": "end", **base, "t": time.time(), "outcome": "ok"})
        return {"x": x}
