#!/usr/bin/env python3
"""Scaling benchmark: no-op jobs through P `gotaskq api` and P `gotaskq worker` processes (P in
1, 2, 4) on one redis-server and on a 3-primary Redis Cluster (3 replicas) with the queues spread
over the primaries; where the CPU goes per job, so the bottleneck and a bigger machine's figures
can be read off.

For each topology, run and P:

1. enqueue: P `gotaskq api` processes; after one warm-up batch per queue and API (counted in
   the jobs processed), ``--n`` jobs as ``POST /jobs/batch`` of 1000 jobs (one queue per batch,
   queues and APIs in turn, ``--callers`` keep-alive connections per API): enqueue jobs/s, API
   CPU µs/job, Redis CPU µs/job on each node.
2. drain: the queues are paused, P `gotaskq worker` processes (NUM_WORKERS ``--concurrency``,
   the built-in ``noop`` job type) start and go idle, the queues are resumed, and the time until
   nothing is pending, scheduled or running gives processed jobs/s; worker CPU µs/job (each
   process) and Redis CPU µs/job (each primary, the replicas summed) from /proc/<pid>/stat.
   The DONE count (per-minute stats, summed) must equal the jobs enqueued.

Redis CPU is per job of the whole run, not per job of that node: on the cluster each primary
serves about a third of the jobs. The whole machine's busy CPU during each phase (/proc/stat)
is reported next to what our processes used, so load from other programs shows.

``single`` is bench_core's redis-server (no persistence); ``--single-aof`` gives it the cluster
nodes' AOF (everysec) for a like-for-like Redis CPU figure. The cluster is tests/cluster_support's
RedisClusterSet (3 primaries + 3 replicas, AOF everysec). Everything is on 127.0.0.1; every process
this script starts is stopped by its pid, also on error or SIGTERM.

Prints ONE JSON line per (topology, P, run) and a summary line (min/median/max over runs,
and the ceilings the CPU figures predict); progress to stderr.

    .venv/bin/python scripts/bench_scale.py [--n 20000] [--procs 1,2,4] [--topologies single,cluster]
                                            [--runs 1] [--concurrency 50] [--callers 2]
                                            [--queues-per-primary 1] [--single-aof]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path.insert(0, str(SCRIPTS))
# The Cluster (and the queue names that land on each primary) is the test suite's own harness,
# tests/cluster_support.py; tests/ is not a package, so it is imported from its directory.
sys.path.insert(0, str(ROOT / "tests"))
from bench_core import _http_ok, flushall, free_port, git_sha, log, payload, redis_server, stop_process  # noqa: E402
from cluster_support import RedisClusterSet, RedisProcess, free_ports, queue_names_on_every_primary  # noqa: E402

from gotaskq import App  # noqa: E402
from gotaskq.config import Settings  # noqa: E402

BATCH = 1000  # jobs per POST /jobs/batch (the API's maximum)
CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 30.0
IDLE_TIMEOUT_S = 30.0  # a started process's CPU settling (imports, connections)
REQUEST_TIMEOUT_S = 60.0
POLL_S = 0.025
STOP_GRACE_S = 10.0


# -- /proc -----------------------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds every core spent on anything but idle and iowait since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


class CpuMeter:
    """CPU seconds of named pids (and of the whole machine) between ``start`` and ``stop``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.machine = 0.0

    def start(self) -> None:
        self.machine = -machine_busy_s()
        self.before = {name: cpu_s(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.used = {name: cpu_s(pid) - self.before[name] for name, pid in self.pids.items()}
        self.machine += machine_busy_s()


def us_per_job(seconds: float, jobs: int) -> float:
    return round(seconds * 1e6 / max(jobs, 1), 1)


# -- topologies ------------------------------------------------------------------------------
@dataclass
class Topology:
    name: str
    url: str
    cluster: bool
    primaries: dict[str, int]  # "p<port>" -> pid
    replicas: dict[str, int] = field(default_factory=dict)
    queues: list[str] = field(default_factory=list)
    queue_owner: dict[str, str] = field(default_factory=dict)  # queue -> primary name
    persistence: str = "none"
    cluster_set: RedisClusterSet | None = None

    def flush(self) -> None:
        if self.cluster_set is not None:
            self.cluster_set.flushall()
        else:
            flushall(self.url)

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.url, "REDIS_CLUSTER": "true" if self.cluster else "false"}


def redis_pid(url: str) -> int:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        return int(r.info("server")["process_id"])


@contextmanager
def single_topology(queues: int, aof: bool) -> Iterator[Topology]:
    names = [f"q-{chr(ord('a') + i)}" for i in range(queues)]
    if not aof:
        with redis_server() as url:  # bench_core's: no persistence
            pid = redis_pid(url)
            server_port = url.rsplit(":", 1)[1].split("/")[0]
            yield Topology("single", url, False, {f"p{server_port}": pid}, queues=names)
        return
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with tempfile.TemporaryDirectory(prefix="gotaskq-scale-single-") as tmp:
        (port,) = free_ports(1)
        args = [
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            tmp,
            "--daemonize",
            "no",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ]  # fmt: skip  (RedisClusterSet's persistence, without the cluster)
        node = RedisProcess(binary, port, Path(tmp), args)
        try:
            node.spawn()
            node.wait_for_ping()
            log(f"redis-server (AOF everysec) pid {node.pid} on port {port}")
            url = f"redis://127.0.0.1:{port}/0"
            yield Topology("single", url, False, {f"p{port}": node.pid}, queues=names, persistence="aof-everysec")
        finally:
            node.terminate()
            node.reap(time.monotonic() + STOP_GRACE_S)


@contextmanager
def cluster_topology(per_primary: int) -> Iterator[Topology]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with tempfile.TemporaryDirectory(prefix="gotaskq-scale-cluster-") as tmp:
        cluster = RedisClusterSet(binary, Path(tmp))
        try:
            cluster.start()
            primaries = cluster.primaries()
            primary_ports = {port for port, _ in primaries}
            replicas = {f"r{port}": p.pid for port, p in cluster.nodes_by_port.items() if port not in primary_ports}
            names = queue_names_on_every_primary(cluster, per_primary)
            # queue_names_on_every_primary groups names by primary in slot order, as primaries() is.
            owner = {name: f"p{primaries[i // per_primary][0]}" for i, name in enumerate(names)}
            log(f"cluster up in {cluster.startup_s:.1f}s: primaries {primaries}, queues {owner}")
            yield Topology(
                "cluster",
                cluster.url,
                True,
                {f"p{port}": pid for port, pid in primaries},
                replicas,
                names,
                owner,
                "aof-everysec",
                cluster,
            )
        finally:
            cluster.stop()
            log("cluster stopped")


# -- gotaskq processes -----------------------------------------------------------------------
class Procs:
    """gotaskq child processes, logs in ``logdir``; ``stop_all`` stops each by its pid."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, cmd: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        base = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "ADMIN_TOKEN", "GOTASKQ_HANDLERS")}
        base |= {"HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", "MAX_QUEUE_DEPTH": "0", "SHUTDOWN_GRACE": "5s"}
        with (self.logdir / f"{name}.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gotaskq", cmd], env=base | env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} (pid {proc.pid}) exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 1500) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop_all(self) -> None:
        for _, proc in self.procs:  # SIGTERM to all first, so the graceful stops overlap
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.procs:
            stop_process(proc, grace_s=STOP_GRACE_S)
        self.procs = []

    def error_logs(self) -> dict[str, str]:
        """Log tails of the processes that logged anything (LOG_LEVEL=WARNING: only trouble)."""
        out = {}
        for path in sorted(self.logdir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()
            text = "\n".join(ln for ln in lines if "neither API_TOKEN nor ADMIN_TOKEN" not in ln).strip()
            if text:
                out[path.stem] = text[-600:]
        return out


def wait_settled(procs: Procs, pids: list[int], timeout: float = IDLE_TIMEOUT_S) -> None:
    """Until started processes stop burning CPU (imports, connecting): two quiet 0.3 s samples."""
    deadline = time.monotonic() + timeout
    time.sleep(0.5)
    last, quiet = [cpu_s(p) for p in pids], 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {pids} still busy after {timeout:g}s")
        time.sleep(0.3)
        procs.check_alive()
        now = [cpu_s(p) for p in pids]
        quiet = quiet + 1 if all(b - a <= 0.02 for a, b in zip(last, now, strict=True)) else 0
        last = now


def post_batches(port: int, bodies: list[bytes], callers: int) -> None:
    """POST each body to /jobs/batch of the API on ``port``, ``callers`` keep-alive connections."""
    todo = list(reversed(bodies))
    lock = threading.Lock()
    errors: list[str] = []

    def caller() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
        try:
            while True:
                with lock:
                    if not todo or errors:
                        return
                    body = todo.pop()
                conn.request("POST", "/jobs/batch", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 201:
                    with lock:
                        errors.append(f"HTTP {resp.status}: {data[:300]!r}")
        except Exception as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(REQUEST_TIMEOUT_S * (len(bodies) + 1))
    if errors or any(t.is_alive() for t in threads):
        raise RuntimeError(f"POST /jobs/batch to port {port}: {errors[:3] or 'timed out'}")


def batch_body(queue: str, start: int, size: int) -> bytes:
    jobs = [{"type": "noop", "queue": queue, "payload": payload(start + i)} for i in range(size)]
    return orjson.dumps({"jobs": jobs})


# -- one measurement -------------------------------------------------------------------------
async def monitor_app(topo: Topology) -> App:
    settings = Settings(
        redis_url=topo.url, redis_cluster="true" if topo.cluster else "false", num_workers=0, max_queue_depth=0
    )
    app = App(settings, builtins=False)
    await app.start()
    return app


async def totals(app: App, queues: list[str]) -> dict[str, int]:
    out = {"pending": 0, "scheduled": 0, "running": 0, "dead": 0}
    for q in queues:
        info = await app.queue_info(q)
        for k in out:
            out[k] += getattr(info, k)
    return out


async def done_total(app: App, queues: list[str]) -> int:
    total = 0
    for q in queues:  # (an await inside a generator expression would make it an async generator)
        total += sum(m.done for m in await app.queue_stats(q, 15))
    return total


def redis_split(topo: Topology, used: dict[str, float], jobs: int) -> dict[str, Any]:
    primaries = {name: us_per_job(used[name], jobs) for name in topo.primaries}
    out: dict[str, Any] = {
        "redis_cpu_us_per_job_by_primary": primaries,
        "redis_cpu_us_per_job_primaries_sum": round(sum(primaries.values()), 1),
        "redis_cpu_us_per_job_busiest_primary": max(primaries.values()),
    }
    if topo.replicas:
        out["redis_cpu_us_per_job_replicas_sum"] = us_per_job(sum(used[n] for n in topo.replicas), jobs)
    return out


def machine_split(meter: CpuMeter, seconds: float) -> dict[str, Any]:
    """Cores busy on average: the whole machine, the gotaskq and Redis processes, this script
    (HTTP client threads, the 25 ms drain poll), and the rest (other programs)."""
    ours = sum(meter.used.values())
    return {
        "machine_busy_cores": round(meter.machine / seconds, 2),
        "gotaskq_and_redis_cores": round((ours - meter.used["bench"]) / seconds, 2),
        "bench_script_cores": round(meter.used["bench"] / seconds, 2),
        "other_programs_cores": round(max(0.0, meter.machine - ours) / seconds, 2),
    }


async def measure(topo: Topology, procs_n: int, args: argparse.Namespace, logdir: Path) -> dict[str, Any]:
    topo.flush()
    app = await monitor_app(topo)
    procs = Procs(logdir)
    queues = topo.queues
    redis_pids = topo.primaries | topo.replicas
    result: dict[str, Any] = {
        "bench": "scale",
        "topology": topo.name,
        "procs": procs_n,
        "n": args.n,
        "queues": queues,
        "loadavg_before": loadavg(),
    }
    try:
        for q in queues:
            await app.create_queue(q)
        # -- enqueue through P API processes
        ports = [free_port() for _ in range(procs_n)]
        apis = [procs.spawn(f"api-{i}", "api", topo.env() | {"PORT": str(port)}) for i, port in enumerate(ports)]
        deadline = time.monotonic() + START_TIMEOUT_S
        for port in ports:
            while not _http_ok(f"http://127.0.0.1:{port}/healthz"):
                procs.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gotaskq api on {port} did not answer /healthz in {START_TIMEOUT_S:g}s")
                await asyncio.sleep(0.05)
        warm = [batch_body(q, -1, 1) for q in queues]
        await asyncio.gather(*(asyncio.to_thread(post_batches, port, warm, 1) for port in ports))
        await asyncio.to_thread(wait_settled, procs, [p.pid for p in apis])
        warmups = procs_n * len(queues)
        per_api: list[list[bytes]] = [[] for _ in ports]
        for k, start in enumerate(range(0, args.n, BATCH)):
            per_api[k % procs_n].append(batch_body(queues[k % len(queues)], start, min(BATCH, args.n - start)))
        meter = CpuMeter({f"api-{i}": p.pid for i, p in enumerate(apis)} | redis_pids | {"bench": os.getpid()})
        log(f"{topo.name} P={procs_n}: enqueue {args.n} jobs through {procs_n} API process(es)")
        meter.start()
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                asyncio.to_thread(post_batches, port, bodies, args.callers)
                for port, bodies in zip(ports, per_api, strict=True)
            )
        )
        dt = time.perf_counter() - t0
        meter.stop()
        expected = args.n + warmups
        if (got := await totals(app, queues))["pending"] != expected:
            raise RuntimeError(f"{expected} jobs accepted, queues hold {got}")
        api_used = {k: v for k, v in meter.used.items() if k.startswith("api-")}
        result["enqueue"] = {
            "jobs_per_s": round(args.n / dt, 1),
            "seconds": round(dt, 3),
            "api_cpu_us_per_job": us_per_job(sum(api_used.values()), args.n),
            "api_cpu_us_per_job_by_proc": [us_per_job(api_used[f"api-{i}"], args.n) for i in range(procs_n)],
            **redis_split(topo, meter.used, args.n),
            **machine_split(meter, dt),
        }
        procs.stop_all()

        # -- drain with P worker processes
        for q in queues:
            await app.pause(q)
        workers = [
            procs.spawn(f"worker-{i}", "worker", topo.env() | {"NUM_WORKERS": str(args.concurrency)})
            for i in range(procs_n)
        ]
        await asyncio.to_thread(wait_settled, procs, [p.pid for p in workers])
        meter = CpuMeter({f"worker-{i}": p.pid for i, p in enumerate(workers)} | redis_pids | {"bench": os.getpid()})
        log(f"{topo.name} P={procs_n}: drain {expected} jobs with {procs_n} worker process(es)")
        meter.start()
        t0 = time.perf_counter()
        for q in queues:
            await app.resume(q)
        deadline = time.monotonic() + 60 + expected / 200
        while True:
            left = await totals(app, queues)
            if left["pending"] + left["scheduled"] + left["running"] == 0:
                break
            procs.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"drain not finished in {60 + expected / 200:g}s: {left}")
            await asyncio.sleep(POLL_S)
        dt = time.perf_counter() - t0
        meter.stop()
        done = await done_total(app, queues)
        if done != expected or left["dead"]:
            raise RuntimeError(f"{expected} jobs enqueued, {done} DONE, {left['dead']} dead")
        worker_used = {k: v for k, v in meter.used.items() if k.startswith("worker-")}
        result["drain"] = {
            "jobs": expected,
            "jobs_per_s": round(expected / dt, 1),
            "seconds": round(dt, 3),
            "worker_cpu_us_per_job": us_per_job(sum(worker_used.values()), expected),
            "worker_cpu_us_per_job_by_proc": [us_per_job(worker_used[f"worker-{i}"], expected) for i in range(procs_n)],
            **redis_split(topo, meter.used, expected),
            **machine_split(meter, dt),
        }
        procs.stop_all()
        if errs := procs.error_logs():
            result["process_logs"] = errs
    except BaseException:
        for name, text in procs.error_logs().items():
            log(f"--- {name} log tail ---\n{text}")
        raise
    finally:
        procs.stop_all()
        await app.close()
    return result


# -- summary ---------------------------------------------------------------------------------
def spread(xs: list[float]) -> dict[str, float] | float:
    if len(xs) == 1:
        return xs[0]
    return {"min": min(xs), "median": round(statistics.median(xs), 1), "max": max(xs)}


def summarize(rows: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "scale-summary", "runs_ok": sum(1 for r in rows if "error" not in r)}
    for r in rows:
        if "error" in r:
            out.setdefault("errors", []).append(f"{r['topology']} P={r['procs']}: {r['error']}")
            continue
        key = f"{r['topology']}_p{r['procs']}"
        cell = out.setdefault(key, {k: [] for k in ("enqueue_per_s", "processed_per_s", "worker_us", "redis_us")})
        cell["enqueue_per_s"].append(r["enqueue"]["jobs_per_s"])
        cell["processed_per_s"].append(r["drain"]["jobs_per_s"])
        cell["worker_us"].append(r["drain"]["worker_cpu_us_per_job"])
        cell["redis_us"].append(r["drain"]["redis_cpu_us_per_job_busiest_primary"])
    ceilings: dict[str, Any] = {}
    for key, cell in list(out.items()):
        if not isinstance(cell, dict) or "worker_us" not in cell:
            continue
        worker_us = statistics.median(cell["worker_us"])
        redis_us = statistics.median(cell["redis_us"])
        # With enough cores for the workers, the busiest primary's single thread is the limit;
        # with enough Redis, each core running a worker adds 1e6 / worker_us jobs/s.
        ceilings[key] = {
            "drain_jobs_per_s_busiest_primary_saturated": round(1e6 / redis_us) if redis_us else None,
            "drain_jobs_per_s_per_worker_core": round(1e6 / worker_us) if worker_us else None,
        }
        out[key] = {
            "enqueue_per_s": spread(cell["enqueue_per_s"]),
            "processed_per_s": spread(cell["processed_per_s"]),
            "worker_cpu_us_per_job": spread(cell["worker_us"]),
            "busiest_primary_cpu_us_per_job": spread(cell["redis_us"]),
        }
    out["predicted_ceilings"] = ceilings
    return out | meta


def print_table(rows: list[dict[str, Any]]) -> None:
    log(f"{'topology':<9}{'P':>2}{'enq/s':>10}{'proc/s':>10}{'wrk µs/j':>10}{'redis µs/j (each primary)':>30}")
    for r in rows:
        if "error" in r:
            log(f"{r['topology']:<9}{r['procs']:>2}  error: {r['error'][:100]}")
            continue
        d = r["drain"]
        each = "/".join(f"{v:g}" for v in d["redis_cpu_us_per_job_by_primary"].values())
        log(
            f"{r['topology']:<9}{r['procs']:>2}{r['enqueue']['jobs_per_s']:>10}{d['jobs_per_s']:>10}"
            f"{d['worker_cpu_us_per_job']:>10}{each:>30}"
        )


# -- main ------------------------------------------------------------------------------------
async def run_topology(topo: Topology, args: argparse.Namespace, meta: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="gotaskq-scale-logs-") as tmp:
        for run in range(1, args.runs + 1):
            for procs_n in args.procs:
                logdir = Path(tmp) / f"{topo.name}-p{procs_n}-r{run}"
                logdir.mkdir()
                head = {"run": run, "persistence": topo.persistence, "concurrency": args.concurrency}
                try:
                    row = await measure(topo, procs_n, args, logdir)
                    if topo.queue_owner:
                        row["queue_primary"] = topo.queue_owner
                    row |= head | meta
                except Exception as exc:
                    log(f"{topo.name} P={procs_n} run {run} failed:\n{traceback.format_exc()}")
                    row = {"bench": "scale", "topology": topo.name, "procs": procs_n, "n": args.n}
                    row |= head | {"error": f"{type(exc).__name__}: {exc}"} | meta
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="jobs enqueued and drained per measurement (default 20000)")
    p.add_argument("--procs", default="1,2,4", help="API and worker process counts (default 1,2,4)")
    p.add_argument("--topologies", default="single,cluster", help="single and/or cluster (default both)")
    p.add_argument("--runs", type=int, default=1, help="repeat every (topology, P) this often (default 1)")
    p.add_argument("--concurrency", type=int, default=50, help="NUM_WORKERS of each worker process (default 50)")
    p.add_argument("--callers", type=int, default=2, help="concurrent POST /jobs/batch per API process (default 2)")
    p.add_argument("--queues-per-primary", type=int, default=1, help="queues on each cluster primary (default 1)")
    p.add_argument("--single-aof", action="store_true", help="single redis-server with AOF everysec, as the cluster")
    args = p.parse_args()
    try:
        args.procs = [int(x) for x in args.procs.split(",") if x.strip()]
    except ValueError:
        p.error("--procs: comma-separated integers")
    topologies = [t.strip() for t in args.topologies.split(",") if t.strip()]
    if unknown := set(topologies) - {"single", "cluster"}:
        p.error(f"unknown topologies {sorted(unknown)} (single, cluster)")
    if args.n < 1 or args.runs < 1 or not args.procs or min(args.procs) < 1 or args.concurrency < 1:
        p.error("--n, --runs, --procs and --concurrency must be positive")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks stop every process
    meta = {
        "cores": os.cpu_count(),
        "python_version": platform.python_version(),
        "redis_version": subprocess.run(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--version"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        .stdout.split()[2]
        .removeprefix("v="),
        **git_sha(),
    }
    queues = 3 * args.queues_per_primary  # as many on the single server as on the cluster
    rows: list[dict[str, Any]] = []
    for name in topologies:
        if name == "single":
            with single_topology(queues, args.single_aof) as topo:
                rows += asyncio.run(run_topology(topo, args, meta))
        else:
            with cluster_topology(args.queues_per_primary) as topo:
                rows += asyncio.run(run_topology(topo, args, meta))
    print(json.dumps(summarize(rows, {"n": args.n, "runs": args.runs, "loadavg_after": loadavg()} | meta)), flush=True)
    print_table(rows)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
