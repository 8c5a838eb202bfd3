#!/usr/bin/env python3
"""Redis instructions per job, phase by phase, counted by callgrind (issue 15): one JSON line.

CPU time on this VM swings by 20-30 % from run to run, more than most single changes to a
script save; an instruction count does not swing. This runs redis-server under valgrind's
callgrind and counts the instructions it executes (Ir) in each phase of a fixed workload, driven
through the Redis backend as ``bench_redis_cost.py`` drives it, so a change to a Lua script or
to what the backend sends can be compared with its parent in one run each:

- enqueue: ``enqueue_many`` (the bulk path, up to 100 jobs a call);
- claim: ``claim`` of 100 jobs a call;
- complete: ``complete`` of ``--complete-batch`` jobs a call;
- flow: with ``--backlog`` jobs waiting, each step enqueues ``--flow-batch`` jobs, claims as many
  and completes the batch claimed two steps before, as a worker that keeps up does.

The single-``POST /jobs`` path is left out: how its calls coalesce depends on timing, and under
valgrind the timing is not the real one. Each phase is zeroed and dumped with
``callgrind_control``; ``--annotate`` also prints each phase's hottest functions to stderr.
Needs valgrind (Debian: ``apt-get install valgrind``); exits 2 with a message without it.
Starts its own redis-server on a free loopback port and stops it by pid.

    .venv/bin/python scripts/bench_redis_instructions.py [--n 2000] [--annotate]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import free_port, stop_process

from gotaskq import App
from gotaskq.backends.base import Completion
from gotaskq.backends.redis import RedisBackend
from gotaskq.config import Settings
from gotaskq.job import NewJob

PAYLOAD = {"i": 0, "pad": "x" * 40}  # ~50 bytes, as bench_core
# the jobs have no idempotency key, and completions say so as the worker's do (a checkout from
# before Completion.has_key, measured for comparison, has no such field)
NO_KEY: dict[str, Any] = {"has_key": False} if "has_key" in Completion.__dataclass_fields__ else {}
START_DEADLINE_S = 120.0  # redis-server starts in seconds under valgrind, not milliseconds
TOTALS = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.M)


class Counted:
    """redis-server under callgrind; ``phase`` returns the instructions a step made it execute."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/cg.out",
                shutil.which("redis-server") or "/usr/bin/redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp),
                "--hz",
                "1",  # its timer's work is not a job's: as little of it as Redis allows
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.raw = redis.Redis.from_url(self.url, socket_timeout=30)
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            try:
                self.raw.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise SystemExit("redis-server did not start under valgrind") from None
                time.sleep(0.2)
        self.dumps = 0

    def _control(self, flag: str) -> None:
        subprocess.run(["callgrind_control", flag, str(self.proc.pid)], check=True, capture_output=True, timeout=120)

    async def phase(self, step: Callable[[], Awaitable[None]]) -> tuple[int, Path]:
        self._control("-z")
        await step()
        self._control("-d")
        self.dumps += 1
        # callgrind names the n-th dump <out>.<n>; the files are written when the command returns
        dump = self.tmp / f"cg.out.{self.dumps}"
        match = TOTALS.search(dump.read_bytes())
        if match is None:
            raise SystemExit(f"no instruction total in {dump}")
        return int(match.group(1)), dump

    def stop(self) -> None:
        stop_process(self.proc, 60)


NAMED = re.compile(r"(c?fn)=\((\d+)\)(?: (.*))?$")


def hottest(dump: Path, top: int) -> str:
    """Each function's own instructions in a dump (callgrind's compressed format: a cost line
    right after ``calls=`` is the callee's inclusive cost, not the caller's own). redis-server
    keeps its exported names; Lua's internal functions show as addresses."""
    names: dict[str, str] = {}
    own: dict[str, int] = {}
    fn, after_call = "?", False
    for line in dump.read_text(errors="replace").splitlines():
        named = NAMED.match(line)
        if named:
            kind, ref, name = named.groups()
            if name:
                names[ref] = name
            if kind == "fn":
                fn = names.get(ref, ref)
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if after_call:
                after_call = False
            elif len(parts := line.split()) > 1:  # position, then Ir
                own[fn] = own.get(fn, 0) + int(parts[1])
    total = sum(own.values()) or 1
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"{100 * n / total:5.1f}% {n:>13,} {name}" for name, n in ranked)


async def run(args: argparse.Namespace, server: Counted) -> dict[str, Any]:
    settings = Settings(redis_url=server.url, max_queue_depth=0, num_workers=0)
    app = App(settings, builtins=False)
    await app.start()
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    n = args.n
    leases: list[tuple[str, int]] = []

    async def enqueue() -> None:
        for start in range(0, n, 100):
            await backend.enqueue_many([NewJob.build("noop", PAYLOAD) for _ in range(start, min(n, start + 100))])

    async def claim() -> None:
        while len(leases) < n:
            batch = await backend.claim("default", 100, 600_000)
            if not batch.jobs:
                break
            leases.extend((c.job.id, c.token) for c in batch.jobs)

    async def complete() -> None:
        k = args.complete_batch
        for i in range(0, len(leases), k):
            await backend.complete("default", [Completion(j, t, b"null", **NO_KEY) for j, t in leases[i : i + k]])

    async def flow() -> None:
        b = args.flow_batch
        running: list[list[Completion]] = []
        for _ in range(0, n, b):
            await backend.enqueue_many([NewJob.build("noop", PAYLOAD) for _ in range(b)])
            batch = await backend.claim("default", b, 600_000)
            running.append([Completion(c.job.id, c.token, b"null", **NO_KEY) for c in batch.jobs])
            if len(running) > 2:
                await backend.complete("default", running.pop(0))
        for done in running:
            await backend.complete("default", done)

    counts: dict[str, int] = {}
    try:
        for name, step in (("enqueue", enqueue), ("claim", claim), ("complete", complete)):
            counts[name], dump = await server.phase(step)
            if args.annotate:
                print(f"--- {name}: hottest functions (own instructions)\n{hottest(dump, 25)}", file=sys.stderr)
        assert len(leases) == n, len(leases)
        await backend.enqueue_many([NewJob.build("noop", PAYLOAD) for _ in range(args.backlog)])
        counts["flow"], dump = await server.phase(flow)
        if args.annotate:
            print(f"--- flow: hottest functions (own instructions)\n{hottest(dump, 25)}", file=sys.stderr)
    finally:
        await app.close()
    per_job = {k: round(v / n) for k, v in counts.items()}
    per_job["processed"] = per_job["enqueue"] + per_job["claim"] + per_job["complete"]
    return per_job


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="jobs per phase (default 2000)")
    ap.add_argument("--complete-batch", type=int, default=50, help="completions per call (default 50)")
    ap.add_argument("--backlog", type=int, default=100, help="jobs waiting during the flow (default 100)")
    ap.add_argument("--flow-batch", type=int, default=25, help="jobs per flow step (default 25)")
    ap.add_argument("--keep", action="store_true", help="keep the callgrind dumps (callgrind_annotate reads them)")
    ap.add_argument("--annotate", action="store_true", help="print each phase's hottest functions to stderr")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            print(f"missing: {tool} (Debian: apt-get install valgrind redis-server)", file=sys.stderr)
            raise SystemExit(2)
    tmp = Path(tempfile.mkdtemp(prefix="gotaskq-instr-"))
    server = Counted(tmp)
    try:
        per_job = asyncio.run(run(args, server))
    finally:
        server.stop()
        if args.keep:
            print(f"callgrind dumps kept in {tmp} (one per phase, in order)", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(json.dumps({"bench": "redis_instructions", "n": args.n, "git_sha": sha, "instructions_per_job": per_job}))


if __name__ == "__main__":
    main()
