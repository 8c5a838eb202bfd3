#!/usr/bin/env python3
"""Idle cost and lookup cost of gotaskq on Redis (issue 10, items 6 and 10): prints one JSON line.

- ``idle_calls_per_s``: Redis commands per second of one idle worker (NUM_WORKERS=10) with 1,
  100 and 2,000 empty queues, measured with INFO commandstats over ``--seconds``.
- ``lookup_calls``: commands one ``get_job`` of an unknown id costs, from a fresh process.
- ``slowlog_max``: the longest single command (SLOWLOG with threshold 0 and room for every
  entry) while one worker with NUM_WORKERS=10000 claims, heartbeats and completes 20,000 jobs;
  and the p99 of the script calls. SLOWLOG is wall time: on a busy machine it includes the time
  the Redis process waited for a core, so measure on a quiet one.

Starts its own redis-server on a free loopback port and stops it by pid.

    .venv/bin/python scripts/idle_cost.py [--seconds 3] [--queues 1,100,2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import redis_server

from gotaskq import App
from gotaskq.config import Settings
from gotaskq.job import Job


def calls(raw: redis.Redis) -> int:
    stats: dict[str, Any] = raw.info("commandstats")  # type: ignore[assignment]
    return sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_slowlog"))


async def idle_rate(url: str, raw: redis.Redis, queues: int, seconds: float) -> float:
    raw.flushall()
    app = App(Settings(redis_url=url, num_workers=10), builtins=False)
    await app.start()
    for i in range(queues - 1):
        await app.backend.create_queue(f"empty-{i}")
    worker = app.worker()
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(1.5)  # past start-up
        before = calls(raw)
        await asyncio.sleep(seconds)
        return round((calls(raw) - before) / seconds, 1)
    finally:
        await worker.stop()
        await task
        await app.close()


async def lookup_calls(url: str, raw: redis.Redis) -> int:
    app = App(Settings(redis_url=url), builtins=False)
    await app.start()
    try:
        before = calls(raw)
        assert await app.backend.get_job("386102431366250496") is None
        return calls(raw) - before
    finally:
        await app.close()


async def slowlog_max(url: str, raw: redis.Redis, jobs: int) -> dict[str, Any]:
    raw.flushall()
    app = App(Settings(redis_url=url, num_workers=10_000, visibility_timeout=3.0, max_queue_depth=0), builtins=False)
    done = 0
    all_done = asyncio.Event()

    @app.task("sleepy")
    async def sleepy(job: Job) -> None:
        nonlocal done
        await asyncio.sleep(1.2)  # held across a heartbeat (every VISIBILITY_TIMEOUT / 3)
        done += 1
        if done >= jobs:
            all_done.set()

    await app.start()
    for start in range(0, jobs, 1000):
        await app.submit_many([app.new_job("sleepy", {"i": i}) for i in range(start, start + 1000)])
    raw.config_set("slowlog-log-slower-than", 0)
    raw.config_set("slowlog-max-len", 1_000_000)  # every command of the run: none may drop out
    raw.slowlog_reset()
    worker = app.worker()
    task = asyncio.create_task(worker.run())
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_done.wait(), 120)
    finally:
        await worker.stop()
        await task
        await app.close()
    entries = raw.slowlog_get(-1)
    top = max(entries, key=lambda e: e["duration"])
    scripts = sorted(e["duration"] for e in entries if e["command"].startswith(b"EVALSHA"))
    return {
        "us": top["duration"],
        "command": top["command"][:40].decode(errors="replace"),
        "script_calls": len(scripts),
        "script_p99_us": scripts[int(len(scripts) * 0.99)] if scripts else None,
        "done": done,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--queues", default="1,100,2000")
    ap.add_argument("--slow-jobs", type=int, default=20_000)
    a = ap.parse_args()
    with redis_server() as url:
        raw = redis.Redis.from_url(url)
        out: dict[str, Any] = {"idle_calls_per_s": {}}
        for n in (int(x) for x in a.queues.split(",")):
            out["idle_calls_per_s"][str(n)] = await idle_rate(url, raw, n, a.seconds)
            print(f"[idle] {n} queues: {out['idle_calls_per_s'][str(n)]} calls/s", file=sys.stderr)
        out["lookup_calls"] = await lookup_calls(url, raw)
        out["slowlog_max"] = await slowlog_max(url, raw, a.slow_jobs)
        raw.close()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
