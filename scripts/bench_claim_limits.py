#!/usr/bin/env python3
"""Claim cost in Redis with and without queue limits (issue 12): one JSON line.

Fills a queue with no-op jobs, then claims them all in calls of 100, reading the claim script's
own time from INFO commandstats (EVALSHA usec). "limits" sets a concurrency and a rate limit
that never bind (1,000,000 each), so it measures what checking them costs. Starts its own
redis-server on a free loopback port and stops it by pid.

    .venv/bin/python scripts/bench_claim_limits.py [--n 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import redis_server

from gotaskq.backends.base import QueueSettings, RateLimit
from gotaskq.backends.redis import RedisBackend
from gotaskq.config import Settings
from gotaskq.job import NewJob


def evalsha_usec(raw: redis.Redis) -> tuple[int, int]:
    stats: dict[str, Any] = raw.info("commandstats")  # type: ignore[assignment]
    s = stats.get("cmdstat_evalsha", {"usec": 0, "calls": 0})
    return int(s["usec"]), int(s["calls"])


async def claim_cost(url: str, raw: redis.Redis, n: int, limits: bool) -> float:
    raw.flushall()
    b = RedisBackend(Settings(redis_url=url, max_queue_depth=0))
    await b.connect()
    await b.create_queue("default")
    if limits:
        await b.configure_queue("default", QueueSettings(concurrency=1_000_000, rate_limit=RateLimit(1_000_000, 1)))
    for start in range(0, n, 1000):
        await b.enqueue_many([NewJob.build("noop", {"i": i}) for i in range(start, min(n, start + 1000))])
    before = evalsha_usec(raw)
    claimed = 0
    while claimed < n:
        got = len((await b.claim("default", 100, 60_000)).jobs)
        if got == 0:
            break
        claimed += got
    after = evalsha_usec(raw)
    await b.close()
    assert claimed == n, claimed
    return (after[0] - before[0]) / n


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    out: dict[str, Any] = {"bench": "claim_limits", "n": a.n, "runs": a.runs}
    with redis_server() as url:
        raw = redis.Redis.from_url(url)
        for name, limits in (("no_limits", False), ("limits", True)):
            figures = [await claim_cost(url, raw, a.n, limits) for _ in range(a.runs)]
            out[f"{name}_us_per_job"] = {
                "min": round(min(figures), 2),
                "median": round(statistics.median(figures), 2),
                "max": round(max(figures), 2),
            }
        raw.close()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
