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
- (``--batch B``: B jobs a call in all three; with B = 1 each figure is one call's whole cost);
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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import redis_pid, redis_server
from bench_redis_cost import claim_all, complete_all, enqueue_bulk, steady_flow

from gotaskq import App
from gotaskq.backends.redis import RedisBackend
from gotaskq.config import Settings

LEASE_MS = 600_000
START_S = 120.0  # redis-server starts in seconds under valgrind, not milliseconds
STOP_GRACE_S = 60.0  # and writes its last dump before it exits
TOTALS = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.M)


def require_callgrind() -> None:
    """Exit 2 with a message unless valgrind and redis-server are installed."""
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if shutil.which(tool) is None:
            print(f"missing: {tool} (Debian: apt-get install valgrind redis-server)", file=sys.stderr)
            raise SystemExit(2)


def callgrind_control(flag: str, pid: int) -> None:
    """``-z`` zeroes the counters of callgrind's process ``pid``, ``-d`` dumps them (written when this returns)."""
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True, timeout=120)


class Counted:
    """callgrind's control of a redis-server it runs: ``phase`` returns the instructions a step
    made the server execute, and the dump of that step."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out  # callgrind names the n-th dump <out>.<n>
        self.dumps = 0

    def _control(self, flag: str) -> None:
        callgrind_control(flag, self.pid)

    async def phase(self, step: Callable[[], Awaitable[None]]) -> tuple[int, Path]:
        self._control("-z")
        await step()
        self._control("-d")  # the dump is written when the command returns
        self.dumps += 1
        dump = self.out.with_name(f"{self.out.name}.{self.dumps}")
        match = TOTALS.search(dump.read_bytes())
        if match is None:
            raise SystemExit(f"no instruction total in {dump}")
        return int(match.group(1)), dump


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


async def run(args: argparse.Namespace, url: str, server: Counted) -> dict[str, Any]:
    app = App(Settings(redis_url=url, max_queue_depth=0, num_workers=0), builtins=False)
    await app.start()
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    n = args.n
    leases: list[tuple[str, int]] = []

    async def enqueue() -> None:
        await enqueue_bulk(backend, n, args.batch or 100)

    async def claim() -> None:
        await claim_all(backend, n, leases, LEASE_MS, args.batch or 100)

    async def complete() -> None:
        await complete_all(backend, leases, args.batch or args.complete_batch)

    async def flow() -> None:
        await steady_flow(backend, n, args.flow_batch, LEASE_MS)

    counts: dict[str, int] = {}
    try:
        for name, step in (("enqueue", enqueue), ("claim", claim), ("complete", complete)):
            counts[name], dump = await server.phase(step)
            if args.annotate:
                print(f"--- {name}: hottest functions (own instructions)\n{hottest(dump, 25)}", file=sys.stderr)
        assert len(leases) == n, len(leases)
        await enqueue_bulk(backend, args.backlog, 1000)
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
    ap.add_argument(
        "--batch",
        type=int,
        default=0,
        help="jobs per enqueue, claim and complete call (default: 100, 100, --complete-batch);"
        " --batch 1 shows what a call costs whatever it carries",
    )
    ap.add_argument("--backlog", type=int, default=100, help="jobs waiting during the flow (default 100)")
    ap.add_argument("--flow-batch", type=int, default=25, help="jobs per flow step (default 25)")
    ap.add_argument("--keep", action="store_true", help="keep the callgrind dumps (callgrind_annotate reads them)")
    ap.add_argument("--annotate", action="store_true", help="print each phase's hottest functions to stderr")
    args = ap.parse_args()
    if args.batch < 0 or args.n < 1:
        ap.error("--batch must be 0 (the defaults) or more, and --n at least 1")
    require_callgrind()
    tmp = Path(tempfile.mkdtemp(prefix="gotaskq-instr-"))
    out = tmp / "cg.out"
    valgrind = ["valgrind", "--quiet", "--tool=callgrind", f"--callgrind-out-file={out}"]
    try:  # --hz 1: the server's timer work is not a job's, as little of it as Redis allows
        with redis_server(valgrind, ("--hz", "1"), START_S, STOP_GRACE_S) as url:
            per_job = asyncio.run(run(args, url, Counted(redis_pid(url), out)))
    finally:
        if args.keep:
            print(f"callgrind dumps kept in {tmp} (one per phase, in order)", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    line = {"bench": "redis_instructions", "n": args.n, "batch": args.batch or None, "git_sha": sha}
    print(json.dumps(line | {"instructions_per_job": per_job}))


if __name__ == "__main__":
    main()
