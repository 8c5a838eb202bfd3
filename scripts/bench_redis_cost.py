#!/usr/bin/env python3
"""Redis CPU per job, phase by phase (issue 15): one JSON line.

Drives the Redis backend directly (no HTTP, no handler) so each phase's Redis cost stands alone:
enqueue in bulk (enqueue_many, 1,000 a call), enqueue one by one (``--callers`` concurrent
App.submit, the path of a single POST /jobs), claim (calls of 100, as a busy worker), complete
(calls of ``--complete-batch``). For each phase: redis-server CPU time (utime+stime from
/proc) per job, and where it went (INFO commandstats: usec per job of each command, the commands
a script calls counted under their own names). "processed" = enqueue + claim + complete.

"flow" is a steady flow instead of phases: with ``--backlog`` jobs waiting, each step enqueues
``--flow-batch`` jobs, claims as many and completes the batch claimed two steps before (so about
two batches run), as a worker that keeps up does. Small sets there (waiting, running) are
where their encoding shows: Redis keeps a sorted set of up to 128 members as a listpack.
Starts its own redis-server on a free loopback port and stops it by pid.

    .venv/bin/python scripts/bench_redis_cost.py [--n 20000] [--runs 3] [--callers 50]
                                                 [--backlog 100] [--flow-batch 25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import cpu_s, redis_server, spread

from gotaskq import App
from gotaskq.backends.base import Completion
from gotaskq.backends.redis import RedisBackend
from gotaskq.config import Settings
from gotaskq.job import NewJob

PAYLOAD = {"i": 0, "pad": "x" * 40}  # ~50 bytes, as bench_core


def commandstats(raw: redis.Redis) -> dict[str, tuple[int, int]]:
    stats: dict[str, Any] = raw.info("commandstats")  # type: ignore[assignment]
    return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in stats.items()}


async def measure(raw: redis.Redis, pid: int, n: int, step: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    before_cpu, before = cpu_s(pid), commandstats(raw)
    await step()
    after_cpu, after = cpu_s(pid), commandstats(raw)
    per_cmd = {}
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if usec - u0 > 0:
            per_cmd[name] = {"calls_per_job": round((calls - c0) / n, 3), "us_per_job": round((usec - u0) / n, 3)}
    top = dict(sorted(per_cmd.items(), key=lambda kv: -kv[1]["us_per_job"])[:8])
    return {"cpu_us_per_job": (after_cpu - before_cpu) * 1e6 / n, "commands": top}


# -- the phases, shared with bench_redis_instructions.py -------------------------------------------
LEASE_MS = 60_000
# The jobs have no idempotency key, and completions say so as the worker's do (a checkout from
# before Completion.has_key, measured for comparison, has no such field).
NO_KEY: dict[str, Any] = {"has_key": False} if "has_key" in Completion.__dataclass_fields__ else {}


async def enqueue_bulk(backend: RedisBackend, n: int, per_call: int) -> None:
    for start in range(0, n, per_call):
        await backend.enqueue_many([NewJob.build("noop", PAYLOAD) for _ in range(start, min(n, start + per_call))])


async def claim_all(
    backend: RedisBackend, n: int, leases: list[tuple[str, int]], lease_ms: int, per_call: int = 100
) -> None:
    """Claims of ``per_call`` until ``leases`` holds n (job id, token)."""
    while len(leases) < n:
        batch = await backend.claim("default", per_call, lease_ms)
        if not batch.jobs:
            break
        leases.extend((c.job.id, c.token) for c in batch.jobs)


async def complete_all(backend: RedisBackend, leases: list[tuple[str, int]], per_call: int) -> None:
    for i in range(0, len(leases), per_call):
        await backend.complete("default", [Completion(j, t, b"null", **NO_KEY) for j, t in leases[i : i + per_call]])


async def steady_flow(backend: RedisBackend, n: int, batch_size: int, lease_ms: int) -> None:
    """Each step enqueues ``batch_size`` jobs, claims as many and completes the batch claimed two
    steps before, as a worker that keeps up does."""
    running: list[list[Completion]] = []
    for _ in range(0, n, batch_size):
        await backend.enqueue_many([NewJob.build("noop", PAYLOAD) for _ in range(batch_size)])
        batch = await backend.claim("default", batch_size, lease_ms)
        running.append([Completion(c.job.id, c.token, b"null", **NO_KEY) for c in batch.jobs])
        if len(running) > 2:
            await backend.complete("default", running.pop(0))
    for done in running:
        await backend.complete("default", done)


async def one_run(url: str, raw: redis.Redis, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    raw.flushall()
    settings = Settings(redis_url=url, max_queue_depth=0, num_workers=0)
    app = App(settings, builtins=False)
    await app.start()
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    n = args.n
    out: dict[str, Any] = {}

    async def bulk() -> None:
        await enqueue_bulk(backend, n, 1000)

    async def single() -> None:
        it = iter(range(n))

        async def caller() -> None:
            for _ in it:
                await app.submit(NewJob.build("noop", PAYLOAD))

        await asyncio.gather(*(caller() for _ in range(args.callers)))

    leases: list[tuple[str, int]] = []

    async def claim() -> None:
        await claim_all(backend, n, leases, LEASE_MS)

    async def complete() -> None:
        await complete_all(backend, leases, args.complete_batch)

    async def flow() -> None:
        await steady_flow(backend, n, args.flow_batch, LEASE_MS)

    await enqueue_bulk(backend, args.backlog, 1000)
    steady = await measure(raw, pid, n, flow)
    out["flow"] = {"processed_cpu_us_per_job": steady["cpu_us_per_job"], "phases": {"flow": steady}}
    raw.flushall()
    await app.close()
    app = App(settings, builtins=False)
    await app.start()
    backend = app.backend
    assert isinstance(backend, RedisBackend)

    for path, enqueue in (("bulk", bulk), ("single", single)):
        leases.clear()
        phases = {"enqueue": await measure(raw, pid, n, enqueue)}
        phases["claim"] = await measure(raw, pid, n, claim)
        assert len(leases) == n, (path, len(leases))
        phases["complete"] = await measure(raw, pid, n, complete)
        total = sum(p["cpu_us_per_job"] for p in phases.values())
        out[path] = {"processed_cpu_us_per_job": total, "phases": phases}
    await app.close()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="jobs per run (default 20000)")
    ap.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    ap.add_argument("--callers", type=int, default=50, help="concurrent single enqueues (default 50)")
    ap.add_argument("--complete-batch", type=int, default=50, help="completions per call (default 50)")
    ap.add_argument("--backlog", type=int, default=100, help="jobs waiting during the flow (default 100)")
    ap.add_argument("--flow-batch", type=int, default=25, help="jobs per step of the flow (default 25)")
    args = ap.parse_args()
    with redis_server() as url:
        raw = redis.Redis.from_url(url)
        pid = int(raw.info("server")["process_id"])
        runs = [await one_run(url, raw, pid, args) for _ in range(args.runs)]
        raw.close()
    out: dict[str, Any] = {"bench": "redis_cost", "n": args.n, "runs": args.runs}
    for path in ("bulk", "single"):
        out[f"{path}_processed_cpu_us_per_job"] = spread([r[path]["processed_cpu_us_per_job"] for r in runs])
        for phase in ("enqueue", "claim", "complete"):
            out[f"{path}_{phase}_cpu_us_per_job"] = spread([r[path]["phases"][phase]["cpu_us_per_job"] for r in runs])
    out["flow_processed_cpu_us_per_job"] = spread([r["flow"]["processed_cpu_us_per_job"] for r in runs])
    out["flow"] = {"backlog": args.backlog, "batch": args.flow_batch}
    out["last_run_commands"] = {
        f"{path}_{phase}": runs[-1][path]["phases"][phase]["commands"]
        for path in ("bulk", "single")
        for phase in ("enqueue", "claim", "complete")
    }
    out["last_run_commands"]["flow"] = runs[-1]["flow"]["phases"]["flow"]["commands"]
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
