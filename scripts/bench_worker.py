#!/usr/bin/env python3
"""Worker cost per processed job (issue 15): one `gotaskq worker` process drains no-op jobs.

Starts its own redis-server (loopback, free port, no persistence), enqueues ``--n`` jobs of the
built-in async ``noop`` type into a paused queue, starts ``python -m gotaskq worker``
(NUM_WORKERS ``--concurrency``), resumes the queue and times the drain until nothing is pending
or running. Reports processed jobs/s and the CPU (from /proc: utime + stime) the worker process
and redis-server spent per job during the drain (claim + complete; the enqueue is not counted).
``--root`` measures another checkout of gotaskq (e.g. a ``git worktree`` of an older commit)
with the same Python: the worker and the enqueue import gotaskq from there. Every process it
starts is stopped by pid. Prints ONE JSON line (min/median/max over ``--runs``).

    .venv/bin/python scripts/bench_worker.py [--n 60000] [--runs 3] [--concurrency 50] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import cpu_s, redis_server, spread, stop_process

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "default"
DRAIN_DEADLINE_S = 300.0
ENQUEUE = """
import asyncio, sys
from gotaskq import App
from gotaskq.config import Settings
from gotaskq.job import NewJob
async def main(url, n):
    app = App(Settings(redis_url=url, max_queue_depth=0))
    await app.start()
    await app.pause("default")
    for s in range(0, n, 1000):
        jobs = [NewJob.build("noop", {"i": i, "pad": "x" * 40}) for i in range(s, min(n, s + 1000))]
        await app.backend.enqueue_many(jobs)
    await app.close()
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""
RESUME = """
import asyncio, sys
from gotaskq import App
from gotaskq.config import Settings
async def main(url):
    app = App(Settings(redis_url=url))
    await app.start()
    await app.resume("default")
    await app.close()
asyncio.run(main(sys.argv[1]))
"""


def log(msg: str) -> None:
    print(f"[bench_worker] {msg}", file=sys.stderr, flush=True)


def one_run(url: str, args: argparse.Namespace, env: dict[str, str], cwd: Path) -> dict[str, float]:
    raw = redis.Redis.from_url(url)
    raw.flushall()
    redis_pid = int(raw.info("server")["process_id"])
    subprocess.run([sys.executable, "-c", ENQUEUE, url, str(args.n)], check=True, env=env, cwd=cwd)
    worker_env = {**env, "REDIS_URL": url, "NUM_WORKERS": str(args.concurrency), "LOG_LEVEL": "WARNING"}
    worker = subprocess.Popen([sys.executable, "-m", "gotaskq", "worker"], env=worker_env, cwd=cwd)
    try:
        time.sleep(2.0)  # start-up, subscribed and idle (the queue is paused)
        w0, r0, t0 = cpu_s(worker.pid), cpu_s(redis_pid), time.monotonic()
        subprocess.run([sys.executable, "-c", RESUME, url], check=True, env=env, cwd=cwd)
        p = f"gtq:{{{QUEUE}}}:"
        while time.monotonic() - t0 < DRAIN_DEADLINE_S:
            pipe = raw.pipeline(transaction=False)
            pipe.zcard(p + "ready")
            pipe.zcard(p + "running")
            if sum(pipe.execute()) == 0:
                break
            time.sleep(0.01)
        else:
            raise RuntimeError("the drain did not finish in time")
        w1, r1, t1 = cpu_s(worker.pid), cpu_s(redis_pid), time.monotonic()
    finally:
        stop_process(worker, grace_s=10)
        raw.close()
    return {
        "jobs_per_s": round(args.n / (t1 - t0), 1),
        "worker_cpu_us_per_job": round((w1 - w0) * 1e6 / args.n, 1),
        "redis_cpu_us_per_job": round((r1 - r0) * 1e6 / args.n, 1),
    }


def git_sha(root: Path) -> str:
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60_000, help="jobs drained per run (default 60000)")
    ap.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    ap.add_argument("--concurrency", type=int, default=50, help="NUM_WORKERS of the worker (default 50)")
    ap.add_argument("--root", type=Path, default=ROOT, help="the gotaskq checkout to measure (default: this one)")
    args = ap.parse_args()
    root = args.root.resolve()
    env = {**os.environ, "PYTHONPATH": str(root)}
    runs: list[dict[str, float]] = []
    with redis_server() as url:
        for i in range(args.runs):
            runs.append(one_run(url, args, env, root))
            log(f"run {i + 1}: {runs[-1]}")
    out: dict[str, Any] = {"bench": "worker", "n": args.n, "runs": args.runs, "concurrency": args.concurrency}
    out["git_sha"] = git_sha(root)
    for key in ("jobs_per_s", "worker_cpu_us_per_job", "redis_cpu_us_per_job"):
        out[key] = spread([r[key] for r in runs])
    out["loadavg"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
