#!/usr/bin/env python3
"""Enqueue -> handler-start latency of gotaskq UNDER LOAD, with a real `gotaskq worker` process.

Per offered rate R (``--rate``, jobs/s; several as 10000,5000) and run (``--runs``):

1. a fresh store (FLUSHALL) and a fresh ``python -m gotaskq worker`` process (REDIS_URL,
   NUM_WORKERS ``--concurrency``, GOTASKQ_HANDLERS = a no-op handler module this script writes
   into its temp dir), waited for until it is registered and idle;
2. ``--producers`` asyncio tasks in this process (one App) offer R jobs/s together for
   ``--seconds``: each enqueues the jobs due by now with ONE ``submit_many`` (at most 1000 a
   call, so a producer that fell behind catches up in bigger batches), and sleeps to the next
   10 ms tick only when none are due. Under load a call takes longer than the time between two
   jobs, so the producers send back to back in small batches (~8 jobs a call at 10,000 jobs/s).
   Each job's payload carries ``time.time()`` taken when its batch is built (~50-byte payload);
3. the handler records (enqueue time, start time) per job in memory and appends them to a file
   (every 1000 jobs and at exit); after the queue is empty the worker is stopped (SIGTERM, by
   pid) and the records are read back: exactly one per enqueued job, or the run fails.

Figures per run: offered and achieved enqueue rate; processed jobs/s while the load was offered
(handler starts inside the load window / its length) and overall (jobs / first enqueue -> last
start); the backlog's drain time after the load ended; enqueue->start p50/p90/p99/max in ms over
every job; the longest gap between two handler starts during the load and the first job's
enqueue->start (where to look for a stall: a GC pause, a cold start); CPU µs per job of the
worker process, of redis-server and of this producer process (/proc/<pid>/stat, from load
start until the queue is empty), and the machine's busy cores (with
the share of programs other than these three: on a shared machine they slow every figure). If
the machine cannot keep up with R, the latency grows with the backlog: read processed_per_s and
run a lower --rate too. Then a summary per rate: min/median/max over the runs.

Its own redis-server on a free loopback port in a temp dir (bench_core's helpers); every
process it starts is stopped by pid, also on error. ONE JSON line on stdout, progress on stderr.

    .venv/bin/python scripts/bench_load_latency.py [--rate 10000] [--seconds 10] [--runs 1]
    .venv/bin/python scripts/bench_load_latency.py --rate 10000,5000,2000 --seconds 10
"""

from __future__ import annotations

import argparse
import array
import asyncio
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import ROOT, flushall, git_sha, log, pct, redis_pid, redis_server, stop_process

from gotaskq import App
from gotaskq.config import Settings

CLK_TCK = os.sysconf("SC_CLK_TCK")
TICK_S = 0.01
MAX_BATCH = 1000
JOB_TYPE = "loadlat"
QUEUE = "default"
PAD = "x" * 20  # {"t":1764590000.123456,"pad":"xxxxxxxxxxxxxxxxxxxx"}: ~50 bytes, as bench_core's
HANDLERS_MODULE = "loadlat_handlers"
HANDLERS_SOURCE = '''"""No-op handler of bench_load_latency.py: records (enqueue time, start time) per job."""

import array
import atexit
import os
import time

OUT = os.path.join(os.environ["LOADLAT_DIR"], f"starts-{os.getpid()}.bin")
FLUSH_EVERY = 1000
_buf = array.array("d")


def _flush():
    if _buf:
        with open(OUT, "ab") as f:
            _buf.tofile(f)
        del _buf[:]


async def loadlat(job):
    _buf.append(job.payload["t"])
    _buf.append(time.time())
    if len(_buf) >= 2 * FLUSH_EVERY:
        _flush()


def register(app):
    app.registry.register("loadlat", loadlat)


atexit.register(_flush)
'''


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> float:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


def us_per_job(seconds: float, jobs: int) -> float:
    return round(seconds * 1e6 / max(jobs, 1), 1)


def spread(xs: list[float]) -> dict[str, float] | None:
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"min": round(min(xs), 1), "median": round(statistics.median(xs), 1), "max": round(max(xs), 1)}


# -- the worker process ----------------------------------------------------------------------
def start_worker(url: str, tmp: Path, concurrency: int, max_depth: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "ADMIN_TOKEN", "WORKER_QUEUES")}
    env |= {
        "REDIS_URL": url,
        "NUM_WORKERS": str(concurrency),
        "GOTASKQ_HANDLERS": HANDLERS_MODULE,
        "PYTHONPATH": os.pathsep.join([str(tmp), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "LOADLAT_DIR": str(tmp),
        "LOG_LEVEL": "WARNING",
        "MAX_QUEUE_DEPTH": str(max_depth),
    }
    out = open(tmp / "worker.log", "ab")  # the child keeps its own copy of the descriptor
    try:
        return subprocess.Popen([sys.executable, "-m", "gotaskq", "worker"], env=env, cwd=ROOT, stdout=out, stderr=out)
    finally:
        out.close()


def worker_log(tmp: Path) -> str:
    try:
        return (tmp / "worker.log").read_text(errors="replace")[-1500:]
    except OSError:
        return ""


async def wait_ready(app: App, proc: subprocess.Popen[bytes], tmp: Path, timeout: float = 60) -> None:
    """Until the worker process is registered, then until its CPU settles (imports, connections)."""
    deadline = time.monotonic() + timeout
    while not any(w.get("pid") == proc.pid for w in await app.backend.list_workers()):
        if proc.poll() is not None:
            raise RuntimeError(f"gotaskq worker exited with {proc.returncode}:\n{worker_log(tmp)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gotaskq worker not registered within {timeout:g}s")
        await asyncio.sleep(0.05)
    last, quiet = cpu_s(proc.pid), 0
    while quiet < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        now = cpu_s(proc.pid)
        quiet = quiet + 1 if now - last <= 0.03 else 0
        last = now


def read_records(tmp: Path) -> array.array[float]:
    """(enqueue time, start time) pairs the handler wrote, from every worker process's file."""
    data = array.array("d")
    for f in sorted(tmp.glob("starts-*.bin")):
        data.frombytes(f.read_bytes())
    return data


# -- the load --------------------------------------------------------------------------------
async def producer(app: App, rate_per_s: float, total: int, seconds: float, t0: float) -> int:
    """Offer ``rate_per_s`` until ``total`` jobs are sent or ``seconds`` (+1 s to catch up) passed."""
    sent = 0
    end = t0 + seconds + 1.0
    while sent < total:
        now = time.monotonic()
        if now > end:
            break
        due = min(total, int((now - t0) * rate_per_s))
        if due <= sent:
            await asyncio.sleep(TICK_S - ((now - t0) % TICK_S))
            continue
        k = min(due - sent, MAX_BATCH)
        t = time.time()
        await app.submit_many([app.new_job(JOB_TYPE, {"t": t, "pad": PAD}) for _ in range(k)])
        sent += k
    return sent


async def queue_empty(app: App) -> bool:
    info = await app.queue_info(QUEUE)
    return info.pending + info.scheduled + info.running == 0


async def one_run(url: str, rate_per_s: float, args: argparse.Namespace) -> dict[str, Any]:
    flushall(url)
    total = int(rate_per_s * args.seconds)
    max_depth = max(100_000, 2 * total)
    rpid = redis_pid(url)
    with tempfile.TemporaryDirectory(prefix="gotaskq-loadlat-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / f"{HANDLERS_MODULE}.py").write_text(HANDLERS_SOURCE)
        settings = Settings(redis_url=url, num_workers=0, max_queue_depth=max_depth)
        app = App(settings, builtins=False)
        await app.start()
        proc = start_worker(url, tmp, args.concurrency, max_depth)
        try:
            await wait_ready(app, proc, tmp)
            log(f"rate {rate_per_s:g}/s: offering {total} jobs over {args.seconds:g}s, {args.producers} producers")
            pids = {"worker": proc.pid, "redis": rpid, "producer": os.getpid()}
            cpu0 = {k: cpu_s(p) for k, p in pids.items()}
            busy0 = machine_busy_s()
            wall0, t0 = time.time(), time.monotonic()
            shares = [total // args.producers + (1 if k < total % args.producers else 0) for k in range(args.producers)]
            sent_each = await asyncio.gather(
                *(producer(app, rate_per_s * s / total, s, args.seconds, t0) for s in shares if s)
            )
            sent = sum(sent_each)
            t_load = time.monotonic() - t0
            wall_load_end = time.time()
            drain_deadline = time.monotonic() + 60 + total / 1000
            while not await queue_empty(app):
                if proc.poll() is not None:
                    raise RuntimeError(f"gotaskq worker exited with {proc.returncode}:\n{worker_log(tmp)}")
                if time.monotonic() > drain_deadline:
                    raise TimeoutError("the queue did not empty in time")
                await asyncio.sleep(0.01)
            t_all = time.monotonic() - t0
            cpu = {k: cpu_s(p) - cpu0[k] for k, p in pids.items()}
            busy = machine_busy_s() - busy0
            dead = (await app.queue_info(QUEUE)).dead
        finally:
            stop_process(proc, grace_s=15)
            await app.close()
        data = read_records(tmp)
    flushall(url)
    enq, start = data[0::2], data[1::2]
    if len(start) != sent or dead:
        raise RuntimeError(f"{sent} jobs enqueued, {len(start)} handler starts recorded, {dead} dead")
    lat = [(s - e) * 1000 for e, s in zip(enq, start, strict=True)]
    in_window = sum(1 for s in start if s <= wall_load_end)
    during = sorted(s for s in start if s <= wall_load_end)
    return {
        "offered_per_s": rate_per_s,
        "jobs": sent,
        "enqueued_per_s": round(sent / t_load, 1),
        "load_s": round(t_load, 2),
        "processed_per_s_during_load": round(in_window / t_load, 1),
        "processed_per_s_overall": round(sent / max(max(start) - wall0, 1e-9), 1),
        "backlog_at_load_end": sent - in_window,
        "drain_after_load_s": round(t_all - t_load, 2),
        "latency_ms": {
            "p50": pct(lat, 50),
            "p90": pct(lat, 90),
            "p99": pct(lat, 99),
            "max": round(max(lat), 3),
        },
        # Stall finders: no job started for this long while the load was offered (at 10,000 jobs/s
        # a start comes every 0.1 ms), and how long the first job took (a cold start).
        "longest_start_gap_ms": round(max((b - a for a, b in itertools.pairwise(during)), default=0.0) * 1000, 3),
        "first_start_ms": round((min(start) - min(enq)) * 1000, 3),
        "worker_cpu_us_per_job": us_per_job(cpu["worker"], sent),
        "redis_cpu_us_per_job": us_per_job(cpu["redis"], sent),
        "producer_cpu_us_per_job": us_per_job(cpu["producer"], sent),
        "busy_cores": round(busy / t_all, 2),
        "worker_cores": round(cpu["worker"] / t_all, 2),
        "other_programs_cores": round((busy - sum(cpu.values())) / t_all, 2),
    }


async def bench(url: str, args: argparse.Namespace, rates: list[float]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for r in rates:
        runs = []
        for k in range(args.runs):
            log(f"rate {r:g}/s: run {k + 1} of {args.runs}")
            res = await one_run(url, r, args)
            log(
                f"rate {r:g}/s: processed {res['processed_per_s_during_load']}/s during load, "
                f"p50 {res['latency_ms']['p50']} ms, p99 {res['latency_ms']['p99']} ms, "
                f"worker {res['worker_cpu_us_per_job']} µs/job"
            )
            runs.append(res)
        summary = {
            key: spread([run[key] for run in runs])
            for key in (
                "enqueued_per_s",
                "processed_per_s_during_load",
                "processed_per_s_overall",
                "worker_cpu_us_per_job",
                "redis_cpu_us_per_job",
                "producer_cpu_us_per_job",
                "longest_start_gap_ms",
                "first_start_ms",
            )
        }
        for q in ("p50", "p90", "p99", "max"):
            summary[f"latency_{q}_ms"] = spread([run["latency_ms"][q] for run in runs])
        results[f"{r:g}"] = {"runs": runs, "summary": summary}
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", default="10000", help="offered jobs/s; several as 10000,5000 (default 10000)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long each load is offered (default 10)")
    p.add_argument("--concurrency", type=int, default=50, help="the worker's NUM_WORKERS (default 50)")
    p.add_argument("--producers", type=int, default=2, help="producer tasks sharing the rate (default 2)")
    p.add_argument("--runs", type=int, default=1, help="runs per rate (default 1)")
    args = p.parse_args()
    try:
        rates = [float(x) for x in args.rate.split(",") if x.strip()]
    except ValueError:
        p.error("--rate: numbers, comma-separated")
    if not rates or any(r <= 0 for r in rates) or args.seconds <= 0 or args.runs < 1 or args.producers < 1:
        p.error("--rate, --seconds, --runs and --producers must be positive")
    if any(r * args.seconds < args.producers for r in rates):
        p.error("--rate x --seconds must give every producer at least one job")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks stop our processes
    with redis_server() as url:
        with redis.Redis.from_url(url) as r:
            redis_version = r.info("server")["redis_version"]
        results = asyncio.run(bench(url, args, rates))
    line = {
        "bench": "load_latency",
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "producers": args.producers,
        "runs": args.runs,
        "worker": "python -m gotaskq worker (separate process)",
        "latency": "handler start time.time() - time.time() when the job's submit_many batch was built",
        "cores": os.cpu_count(),
        "redis_version": redis_version,
        "python_version": platform.python_version(),
        **git_sha(),
        "rates": results,
    }
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
