#!/usr/bin/env python3
"""End to end, as issue 15 measured gotaskq from outside: single ``POST /jobs`` to a ``gotaskq
api`` process while a ``gotaskq worker`` process runs them; CPU per processed job of each.

One redis-server (no persistence), one ``python -m gotaskq api`` (NUM_WORKERS=0) and one
``python -m gotaskq worker`` (NUM_WORKERS ``--c``, the built-in ``noop`` type), all on
127.0.0.1. Per run (``--runs``, default 3): a warm-up of ``--warmup`` requests, drained; then
``hey -n N -c C`` POSTs ``{"type":"noop","payload":{}}`` while the worker drains. The run
ends when the queue holds nothing waiting or running (polled in Redis: polling the worker's
/metrics would cost the worker CPU); then the worker's DONE count
(``gotaskq_jobs_processed_total{status="done"}``) must have grown by N: every 201 was a job
run to DONE, or the run fails. Figures per run:

- ``jobs_per_s``: N / (hey's start to the last job DONE); ``requests_per_s``: hey's own;
- CPU µs per processed job (utime+stime from /proc/<pid>/stat over the run) of redis-server,
  the worker and the API;
- ``script_calls_per_job``: EVALSHA calls / N (INFO commandstats): how many jobs a script call
  carries here, where calls are as small as the traffic makes them (bench_redis_cost measures
  the Redis work of each phase in batches of fixed size).

Then min/median/max of each over the runs. Every process is stopped by pid, also on error.
ONE JSON line on stdout, progress on stderr.

    .venv/bin/python scripts/bench_e2e.py [--n 20000] [--c 50] [--runs 3] [--warmup 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import ROOT, free_port, git_sha, log, redis_pid, redis_server, stop_process
from bench_http import cpu_s, hey, parse_hey, plain_env, ready_for_hey, script_calls, spread, start_server, us_per

from gotaskq import keys

DRAIN_TIMEOUT_S = 120.0
DONE = re.compile(r'^gotaskq_jobs_processed_total\{[^}]*status="done"[^}]*\}\s+([0-9.e+]+)$', re.M)


def done_total(metrics_url: str) -> int:
    """The worker's DONE count, summed over its queues."""
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    return int(sum(float(v) for v in DONE.findall(text)))


def drained(r: redis.Redis, worker: subprocess.Popen[bytes], what: str) -> float:
    """Poll Redis (not the worker: its /metrics would cost the worker CPU) until the default
    queue holds no waiting or running job; the monotonic time then."""
    prefix = keys.queue_prefix("default")
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while int(r.zcard(prefix + "ready")) or int(r.zcard(prefix + "running")):
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not drain in {DRAIN_TIMEOUT_S} s")
        time.sleep(0.01)
    return time.monotonic()


def settled_done(metrics_url: str) -> int:
    """The worker's DONE count once it stops moving: it counts a completion when the reply comes
    back, a moment after the job left the running set."""
    last = done_total(metrics_url)
    for _ in range(100):
        time.sleep(0.05)
        now = done_total(metrics_url)
        if now == last:
            return now
        last = now
    raise RuntimeError("the worker's DONE count kept moving with nothing left to run")


def wait_metrics(metrics_url: str, worker: subprocess.Popen[bytes], logfile: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            done_total(metrics_url)
            return
        except OSError:
            if worker.poll() is not None or time.monotonic() > deadline:
                stop_process(worker, grace_s=5)
                tail = logfile.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"the worker did not start:\n{tail}") from None
            time.sleep(0.05)


def one_run(
    api_url: str, metrics_url: str, procs: dict[str, subprocess.Popen[bytes]], r: redis.Redis, args: argparse.Namespace
) -> dict[str, Any]:
    worker = procs["worker"]
    out, _ = hey(api_url, args.warmup, min(args.c, args.warmup), timeout=120)
    if parse_hey(out)["status_codes"] != {"201": args.warmup}:
        raise RuntimeError(f"warm-up: status codes {parse_hey(out)['status_codes']}")
    drained(r, worker, "the warm-up")  # its jobs (and the start-up probe's) are not the run's
    base = settled_done(metrics_url)
    pids = {name: p.pid for name, p in procs.items()} | {"redis": redis_pid(args.redis_url)}
    calls0 = script_calls(args.redis_url)
    before = {name: cpu_s(pid) for name, pid in pids.items()}
    t0 = time.monotonic()
    out, _ = hey(api_url, args.n, args.c, timeout=600)
    res = parse_hey(out)
    if res["status_codes"] != {"201": args.n}:
        raise RuntimeError(f"status codes {res['status_codes']}, errors {res['errors']}\n{out[-1500:]}")
    t1 = drained(r, worker, "the run")
    after = {name: cpu_s(pid) for name, pid in pids.items()}
    calls = script_calls(args.redis_url) - calls0
    done = settled_done(metrics_url) - base
    if done != args.n:
        raise RuntimeError(f"{args.n} jobs answered 201 but the worker ran {done} to DONE")
    return {
        "jobs_per_s": round(args.n / (t1 - t0), 1),
        "requests_per_s": res["rps"],
        "redis_cpu_us_per_job": us_per(after["redis"] - before["redis"], args.n),
        "worker_cpu_us_per_job": us_per(after["worker"] - before["worker"], args.n),
        "api_cpu_us_per_job": us_per(after["api"] - before["api"], args.n),
        "script_calls_per_job": round(calls / args.n, 3),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="POST /jobs per run (default 20000)")
    p.add_argument("--c", type=int, default=50, help="hey's callers and the worker's NUM_WORKERS (default 50)")
    p.add_argument("--runs", type=int, default=3, help="runs (default 3)")
    p.add_argument("--warmup", type=int, default=1000, help="requests before each run, drained, not counted")
    args = p.parse_args()
    ready_for_hey(p, args)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    runs: list[dict[str, Any]] = []
    with redis_server() as redis_url, tempfile.TemporaryDirectory(prefix="gotaskq-bench-e2e-") as tmp:
        args.redis_url = redis_url
        env = plain_env() | {"REDIS_URL": redis_url, "LOG_LEVEL": "WARNING", "MAX_QUEUE_DEPTH": "0"}
        port = free_port()
        mport = free_port()
        while mport == port:
            mport = free_port()
        api_url = f"http://127.0.0.1:{port}/jobs"
        metrics_url = f"http://127.0.0.1:{mport}/metrics"
        try:
            procs["api"] = start_server(
                "api",
                [sys.executable, "-m", "gotaskq", "api"],
                env | {"NUM_WORKERS": "0", "HOST": "127.0.0.1", "PORT": str(port)},
                api_url,
                Path(tmp),
            )
            wlog = Path(tmp) / "worker.log"
            with open(wlog, "wb") as out:
                procs["worker"] = subprocess.Popen(
                    [sys.executable, "-m", "gotaskq", "worker"],
                    cwd=ROOT,  # as the API (start_server): `-m gotaskq` loads this checkout's code
                    env=env | {"NUM_WORKERS": str(args.c), "METRICS_PORT": str(mport)},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            wait_metrics(metrics_url, procs["worker"], wlog)
            log(f"api pid {procs['api'].pid}, worker pid {procs['worker'].pid}, redis {redis_url}")
            with redis.Redis.from_url(redis_url) as r:
                redis_version = r.info("server")["redis_version"]
                for k in range(args.runs):
                    log(f"run {k + 1} of {args.runs}: hey -n {args.n} -c {args.c} POST /jobs, worker draining")
                    runs.append(one_run(api_url, metrics_url, procs, r, args))
                    log(json.dumps(runs[-1]))
        finally:
            for proc in procs.values():
                stop_process(proc, grace_s=15)
    figures = (
        "jobs_per_s",
        "requests_per_s",
        "redis_cpu_us_per_job",
        "worker_cpu_us_per_job",
        "api_cpu_us_per_job",
        "script_calls_per_job",
    )
    line = {
        "bench": "e2e",
        "n": args.n,
        "c": args.c,
        "cores": os.cpu_count(),
        "redis_version": redis_version,
        "python_version": platform.python_version(),
        **git_sha(),
        "runs": runs,
        "summary": {k: spread([run[k] for run in runs]) for k in figures},
    }
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
