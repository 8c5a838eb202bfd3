#!/usr/bin/env python3
"""Worker instructions per processed no-op job, counted by callgrind (issue 15): one JSON line.

The worker's CPU time per job (``bench_worker.py``) swings on this VM far more than one change
saves: the same commit drained at 28-30 us a job at 07:45 and at 17-22 half an hour later. An
instruction count does not swing. This runs ``python -m gotaskq worker`` under valgrind's
callgrind, enqueues ``--n`` jobs of the built-in async ``noop`` type into a paused queue (as
bench_worker does), waits until the worker is registered and idle, zeroes the counters, resumes
the queue, waits until nothing is pending or running, dumps, and divides the instructions the
worker process executed (Ir, user space) by ``--n``. Under valgrind the worker runs ~50x slower
than Redis, so its claims come back full, as in a drain the worker cannot keep up with.
``--root`` measures another checkout (e.g. a ``git worktree`` of an older commit) with the same
Python. Needs valgrind (Debian: ``apt-get install valgrind``); exits 2 with a message without
it. Its own redis-server on a free loopback port; both processes are stopped by pid.

    .venv/bin/python scripts/bench_worker_instructions.py [--n 3000] [--concurrency 50] [--root DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import redis_server, stop_process
from bench_redis_instructions import TOTALS, callgrind_control, require_callgrind
from bench_worker import ENQUEUE, QUEUE, RESUME, ROOT, git_sha

START_S = 240.0  # imports under valgrind take ~20 s here; a slower machine gets room
DRAIN_S = 900.0
IDLE_S = 3.0  # after registering: the first claims find the queue paused and back off


def wait_for(what: str, done: Callable[[], bool], limit_s: float, alive: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + limit_s
    while not done():
        if alive.poll() is not None:
            raise RuntimeError(f"the worker exited ({alive.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {limit_s:.0f} s")
        time.sleep(0.05)


def measure(url: str, args: argparse.Namespace, out: Path) -> int:
    env = {**os.environ, "PYTHONPATH": str(args.root)}
    subprocess.run([sys.executable, "-c", ENQUEUE, url, str(args.n)], check=True, env=env, cwd=args.root)
    worker_env = {**env, "REDIS_URL": url, "NUM_WORKERS": str(args.concurrency), "LOG_LEVEL": "WARNING"}
    cmd = ["valgrind", "--quiet", "--tool=callgrind", f"--callgrind-out-file={out}"]
    worker = subprocess.Popen([*cmd, sys.executable, "-m", "gotaskq", "worker"], env=worker_env, cwd=args.root)
    raw = redis.Redis.from_url(url)
    p = f"gtq:{{{QUEUE}}}:"
    try:
        wait_for("the worker to register", lambda: bool(raw.exists("gtq:workers")), START_S, worker)
        time.sleep(IDLE_S)
        callgrind_control("-z", worker.pid)
        subprocess.run([sys.executable, "-c", RESUME, url], check=True, env=env, cwd=args.root)
        wait_for("the drain", lambda: raw.zcard(p + "ready") + raw.zcard(p + "running") == 0, DRAIN_S, worker)
        callgrind_control("-d", worker.pid)  # written when the command returns: <out>.1
    finally:
        stop_process(worker, grace_s=60)
        raw.close()
    found = TOTALS.search(out.with_name(out.name + ".1").read_bytes())
    if found is None:
        raise RuntimeError("no totals in the callgrind dump")
    return int(found.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="jobs drained (default 3000)")
    ap.add_argument("--concurrency", type=int, default=50, help="NUM_WORKERS of the worker (default 50)")
    ap.add_argument("--root", type=Path, default=ROOT, help="the gotaskq checkout to measure (default: this one)")
    args = ap.parse_args()
    require_callgrind()
    tmp = Path(tempfile.mkdtemp(prefix="gotaskq-winstr-"))
    try:
        with redis_server() as url:
            total = measure(url, args, tmp / "cg.out")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "bench": "worker_instructions",
                "n": args.n,
                "concurrency": args.concurrency,
                "git_sha": git_sha(args.root),
                "instructions_per_job": round(total / args.n),
            }
        )
    )


if __name__ == "__main__":
    main()
