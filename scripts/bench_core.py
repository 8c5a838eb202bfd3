#!/usr/bin/env python3
"""Core benchmark of gotaskq, and (``--peers``) the same workload on arq, RQ, Dramatiq and BullMQ.

Starts its own redis-server (loopback, free port, temp dir, no persistence) and stops it by pid
at the end, even on error. Prints ONE JSON line per run (per system with --peers, plus a ratio
line) to stdout; progress goes to stderr.

    .venv/bin/python scripts/bench_core.py [--n 20000] [--concurrency 50] [--skip-memory]
                                           [--backends memory,redis]
    .venv/bin/python scripts/bench_core.py --peers arq,rq,dramatiq,bullmq [--n 20000] [--concurrency 50]
    .venv/bin/python scripts/bench_core.py --peers all          # the same four

Processing (Redis) also reports the CPU each system spends per processed job over the drain:
``worker_cpu_us_per_job`` (utime+stime of the process the worker runs in, /proc/<pid>/stat: this
script's for gotaskq, the peer's own process for the others) and ``redis_cpu_us_per_job`` (the
redis-server's). BullMQ runs under node with bullmq + ioredis from npm, installed once into
``<peer-cache>/bullmq``; without node, npm or the registry it is skipped with a message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import redis

from gotaskq import App
from gotaskq.config import Settings
from gotaskq.job import Job

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = Path(__file__).resolve().parent / "peers"
PAYLOAD_BYTES = 50  # keep equal to peers/peer_common.PAYLOAD_BYTES
BULK_CHUNK = 1000
HTTP_BATCH_CALLERS = 4
HTTP_BATCH_MIN_REQUESTS = 100
QUEUE = "default"
LATENCY_SAMPLES = 200
LATE_SAMPLES = 100
LATE_DELAY_S = 0.2
MEMORY_JOBS = 100_000
TTL_JOBS = 10_000
TTL_S = 1.0
TTL_SLACK_S = 1.5
PEER_PACKAGES = {"arq": ["arq", "hiredis"], "rq": ["rq", "hiredis"], "dramatiq": ["dramatiq[redis]", "hiredis"]}
NODE_PEER_PACKAGES = {"bullmq": ["bullmq", "ioredis"]}  # npm packages, into <peer-cache>/bullmq
ALL_PEERS = [*PEER_PACKAGES, *NODE_PEER_PACKAGES]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def payload(i: int) -> dict[str, object]:
    base = len(json.dumps({"i": i, "pad": ""}, separators=(",", ":")))
    return {"i": i, "pad": "x" * max(0, PAYLOAD_BYTES - base)}


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))], 3)


def rate(n: int, seconds: float) -> float:
    return round(n / max(seconds, 1e-9), 1)


# -- redis-server ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], grace_s: float) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``: only a process this script started."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextmanager
def redis_server(
    wrapper: Sequence[str] = (), extra: Sequence[str] = (), start_s: float = 10.0, stop_grace_s: float = 5.0
) -> Iterator[str]:
    """A redis-server on a free loopback port, without persistence, stopped by pid. ``wrapper``
    runs it under another program (bench_redis_instructions: valgrind, which needs a longer
    ``start_s``); ``extra`` are more server arguments."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with tempfile.TemporaryDirectory(prefix="gotaskq-bench-") as tmp:
        port = free_port()
        proc = subprocess.Popen(
            [
                *wrapper,
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
                "--daemonize",
                "no",
                "--logfile",
                str(Path(tmp) / "redis.log"),
                *extra,
            ],
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url, socket_timeout=1)
            deadline = time.monotonic() + start_s
            while True:
                try:
                    client.ping()
                    break
                except (redis.ConnectionError, redis.TimeoutError):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
            client.close()
            log(f"redis-server pid {proc.pid} on {url}")
            yield url
        finally:
            stop_process(proc, grace_s=stop_grace_s)
            log(f"redis-server pid {proc.pid} stopped")


def redis_info(url: str) -> dict[str, Any]:
    with redis.Redis.from_url(url) as r:
        return dict(r.info("memory")) | {"dbsize": r.dbsize()}


def key_names(url: str) -> set[str]:
    with redis.Redis.from_url(url) as r:
        return {k.decode() for k in r.scan_iter(count=1000)}


def redis_pid(url: str) -> int:
    with redis.Redis.from_url(url) as r:
        return int(r.info("server")["process_id"])


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def spread(values: list[float]) -> dict[str, float]:
    """min / median / max of a figure over runs."""
    return {"min": round(min(values), 2), "median": round(statistics.median(values), 2), "max": round(max(values), 2)}


def us_per_job(seconds: float, jobs: int) -> float:
    return round(seconds * 1e6 / max(jobs, 1), 1)


def flushall(url: str) -> None:
    with redis.Redis.from_url(url) as r:
        r.flushall()


# -- gotaskq ---------------------------------------------------------------------------------
async def noop(job: Job) -> None:
    return None


class Probes:
    """Handlers that report when they start, for the latency and lateness figures."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[float]] = {}

    def expect(self, k: int) -> asyncio.Future[float]:
        fut = self.waiting[k] = asyncio.get_running_loop().create_future()
        return fut

    async def started(self, job: Job) -> None:
        fut = self.waiting.pop(job.payload["k"], None)
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())

    async def late(self, job: Job) -> None:
        fut = self.waiting.pop(job.payload["k"], None)
        if fut is not None and not fut.done() and job.run_at is not None:
            fut.set_result(time.time() * 1000 - job.run_at)


async def fresh_app(url: str | None, n: int, c: int, probes: Probes | None = None, **kw: Any) -> App:
    """A started App on an empty store (FLUSHALL for Redis, a new MemoryBackend otherwise)."""
    if url is not None:
        flushall(url)
    settings = Settings(redis_url=url, num_workers=c, max_queue_depth=max(100_000, 2 * n), **kw)
    app = App(settings, builtins=False)
    app.registry.register("noop", noop)
    if probes is not None:
        app.registry.register("probe", probes.started)
        app.registry.register("late", probes.late)
    await app.start()
    return app


async def pending(app: App) -> int:
    info = await app.queue_info(QUEUE)
    return info.pending + info.scheduled + info.running


def done_count(app: App) -> int:
    """Completions the backend accepted, from the worker's own counter (no handler code)."""
    for family in app.metrics.processed.collect():
        for s in family.samples:
            if s.name.endswith("_total") and s.labels == {"queue": QUEUE, "status": "done"}:
                return int(s.value)
    return 0


async def enqueue_one_by_one(app: App, n: int, c: int) -> float:
    payloads = [payload(i) for i in range(n)]

    async def caller(share: list[dict[str, object]]) -> None:
        for p in share:
            await app.enqueue("noop", p)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller(payloads[k::c]) for k in range(c)))
    dt = time.perf_counter() - t0
    if (got := await pending(app)) != n:
        raise RuntimeError(f"expected {n} waiting jobs after enqueue, found {got}")
    return rate(n, dt)


async def enqueue_bulk(app: App, n: int) -> float:
    payloads = [payload(i) for i in range(n)]
    t0 = time.perf_counter()
    for start in range(0, n, BULK_CHUNK):
        await app.submit_many([app.new_job("noop", p) for p in payloads[start : start + BULK_CHUNK]])
    return rate(n, time.perf_counter() - t0)


def http_batch_enqueue(url: str, n: int) -> dict[str, Any]:
    """POST /jobs/batch of BULK_CHUNK jobs each, HTTP_BATCH_CALLERS at once, with `hey` against
    a `gotaskq api` process on the same redis-server: jobs/s, status codes, p99 per request."""
    hey = shutil.which("hey")
    if hey is None:
        return {"error": "hey is not installed (apt-get install hey)"}
    flushall(url)
    callers = HTTP_BATCH_CALLERS
    batches = -(-max(HTTP_BATCH_MIN_REQUESTS, n // BULK_CHUNK) // callers) * callers  # hey: a multiple of -c
    body = orjson.dumps({"jobs": [{"type": "noop", "payload": payload(i)} for i in range(BULK_CHUNK)]})
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "ADMIN_TOKEN", "GOTASKQ_HANDLERS")}
    env |= {"REDIS_URL": url, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING", "MAX_QUEUE_DEPTH": "0"}
    with tempfile.TemporaryDirectory(prefix="gotaskq-bench-http-") as tmp:
        body_file = Path(tmp) / "batch.json"
        body_file.write_bytes(body)
        api = subprocess.Popen([sys.executable, "-m", "gotaskq", "api"], env=env, cwd=ROOT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while not _http_ok(f"{base}/healthz"):
                if api.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gotaskq api did not start")
                time.sleep(0.05)
            # One warm-up request (script load, connections), not counted.
            warm = [hey, "-n", "1", "-c", "1", "-m", "POST", "-T", "application/json", "-D", str(body_file)]
            subprocess.run([*warm, f"{base}/jobs/batch"], capture_output=True, timeout=60, check=True)
            cmd = [hey, "-n", str(batches), "-c", str(callers), "-m", "POST", "-T", "application/json"]
            out = subprocess.run(
                [*cmd, "-D", str(body_file), f"{base}/jobs/batch"], capture_output=True, text=True, timeout=600
            ).stdout
        finally:
            stop_process(api, grace_s=15)
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p99 = re.search(r"^\s+99%+ in ([0-9.]+) secs", out, re.M)
    codes = {k: int(v) for k, v in re.findall(r"^\s+\[(\d{3})\]\s+(\d+) responses", out, re.M)}
    stored = redis_info(url)["dbsize"]
    flushall(url)
    if rps is None or codes != {"201": batches}:
        return {"error": f"hey: codes {codes}", "hey_output": out[-1500:]}
    if stored < (batches + 1) * BULK_CHUNK:
        return {"error": f"{stored} keys in Redis after {(batches + 1) * BULK_CHUNK} jobs were accepted"}
    return {
        "jobs_per_s": round(float(rps.group(1)) * BULK_CHUNK, 1),
        "requests": batches,
        "jobs_per_request": BULK_CHUNK,
        "callers": callers,
        "p99_request_ms": round(float(p99.group(1)) * 1000, 1) if p99 else None,
        "status_codes": codes,
    }


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


async def wait_for(cond: Callable[[], Awaitable[bool]], timeout: float, what: str, guard: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        if guard is not None and guard.done():
            guard.result()
            raise RuntimeError(f"worker stopped before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g}s")
        await asyncio.sleep(0.005)


async def process_all(app: App, n: int, c: int, timeout: float, url: str | None) -> tuple[float, dict[str, Any]]:
    """Start a worker on N waiting jobs; time until N are DONE and nothing waits or runs.
    Also the CPU per job over that time of this process (the worker runs in it) and of Redis."""
    rpid = redis_pid(url) if url is not None else None
    worker = app.worker(concurrency=c)
    cpu0 = (cpu_s(os.getpid()), cpu_s(rpid) if rpid else 0.0)
    t0 = time.perf_counter()
    task = asyncio.create_task(worker.run())
    try:

        async def all_done() -> bool:
            return done_count(app) >= n

        async def drained() -> bool:
            return await pending(app) == 0

        await wait_for(all_done, timeout, f"{n} completions", task)
        await wait_for(drained, timeout, "an empty queue", task)
        dt = time.perf_counter() - t0
        cpu1 = (cpu_s(os.getpid()), cpu_s(rpid) if rpid else 0.0)
    finally:
        await worker.stop()
        await task
    if (done := done_count(app)) != n:
        raise RuntimeError(f"expected {n} completions, counted {done}")
    cpu = {
        "worker_cpu_us_per_job": us_per_job(cpu1[0] - cpu0[0], n),
        "redis_cpu_us_per_job": us_per_job(cpu1[1] - cpu0[1], n) if rpid else None,
        "cpu_measured_over": "drain; worker = this process (in-process App worker, /proc/self/stat)",
    }
    return rate(n, dt), cpu


async def idle_latency(app: App, probes: Probes, c: int, rng: random.Random) -> dict[str, float]:
    worker = app.worker(concurrency=c)
    task = asyncio.create_task(worker.run())
    samples: list[float] = []
    try:
        await asyncio.sleep(0.3)  # let the fetch loop reach its idle wait
        for k in range(LATENCY_SAMPLES):
            await asyncio.sleep(rng.uniform(0.005, 0.025))
            fut = probes.expect(k)
            t0 = time.perf_counter()
            await app.enqueue("probe", {"k": k})
            samples.append((await asyncio.wait_for(fut, 5) - t0) * 1000)
    finally:
        await worker.stop()
        await task
    return {"p50": pct(samples, 50), "p99": pct(samples, 99), "samples": len(samples)}


async def delayed_lateness(app: App, probes: Probes, c: int, rng: random.Random) -> dict[str, float]:
    """100 producers, each after a random 0-300 ms pause, enqueue one job with delay=0.2 s."""
    worker = app.worker(concurrency=c)
    task = asyncio.create_task(worker.run())

    async def one(k: int, pause: float) -> float:
        await asyncio.sleep(pause)
        fut = probes.expect(k)
        await app.enqueue("late", {"k": k}, delay=LATE_DELAY_S)
        return await asyncio.wait_for(fut, 5)

    try:
        await asyncio.sleep(0.3)
        samples = await asyncio.gather(*(one(k, rng.uniform(0, 0.3)) for k in range(LATE_SAMPLES)))
    finally:
        await worker.stop()
        await task
    return {"p50": pct(samples, 50), "p99": pct(samples, 99), "samples": len(samples)}


async def bench_backend(name: str, url: str | None, n: int, c: int) -> dict[str, Any]:
    timeout = 60 + n / 100
    out: dict[str, Any] = {}
    log(f"{name}: enqueue {n} one by one from {c} callers")
    app = await fresh_app(url, n, c)
    out["enqueue_per_s"] = await enqueue_one_by_one(app, n, c)
    await app.close()
    log(f"{name}: bulk enqueue {n} in chunks of {BULK_CHUNK}")
    app = await fresh_app(url, n, c)
    out["bulk_enqueue_per_s"] = await enqueue_bulk(app, n)
    log(f"{name}: process {n} with concurrency {c}")
    out["processed_per_s"], cpu = await process_all(app, n, c, timeout, url)
    out |= cpu
    await app.close()
    if url is not None:
        log(f"{name}: POST /jobs/batch to `gotaskq api`, {BULK_CHUNK} jobs a request, {HTTP_BATCH_CALLERS} callers")
        out["http_batch_enqueue"] = http_batch_enqueue(url, n)
    if name == "gotaskq":
        return out
    rng = random.Random(20240101)
    probes = Probes()
    log(f"{name}: idle enqueue->handler-start latency, {LATENCY_SAMPLES} samples")
    app = await fresh_app(url, n, c, probes)
    out["idle_latency_ms"] = await idle_latency(app, probes, c, rng)
    log(f"{name}: delayed-job lateness, {LATE_SAMPLES} samples")
    out["delayed_lateness_ms"] = await delayed_lateness(app, probes, c, rng)
    await app.close()
    return out


# -- Redis memory ----------------------------------------------------------------------------
async def memory_per_job(url: str, jobs: int) -> dict[str, Any]:
    app = await fresh_app(url, jobs, 1)
    await app.submit_many([app.new_job("noop", payload(-1))])  # loads the script, makes the zset
    await asyncio.sleep(0.2)
    before = redis_info(url)["used_memory"]
    for start in range(0, jobs, BULK_CHUNK):
        await app.submit_many([app.new_job("noop", payload(i)) for i in range(start, min(jobs, start + BULK_CHUNK))])
    await asyncio.sleep(0.2)
    after = redis_info(url)["used_memory"]
    await app.close()
    flushall(url)
    return {
        "jobs": jobs,
        "payload_bytes": PAYLOAD_BYTES,
        "used_memory_delta": after - before,
        "bytes_per_waiting_job": round((after - before) / jobs, 1),
    }


async def done_ttl_cleanup(url: str, jobs: int, c: int) -> dict[str, Any]:
    """DONE jobs expire after COMPLETE_JOB_TTL: used_memory and the key set return to the baseline."""
    app = await fresh_app(url, jobs, c, complete_job_ttl=TTL_S)
    worker = app.worker(concurrency=c)
    task = asyncio.create_task(worker.run())

    async def run_batch(count: int) -> None:
        base = done_count(app)
        for start in range(0, count, BULK_CHUNK):
            size = min(BULK_CHUNK, count - start)
            await app.submit_many([app.new_job("noop", payload(start + i)) for i in range(size)])

        async def done() -> bool:
            return done_count(app) >= base + count and await pending(app) == 0

        await wait_for(done, 60 + count / 100, f"{count} completions", task)

    try:
        await run_batch(200)  # warm-up: scripts loaded, connection pools at their working size
        await asyncio.sleep(TTL_S + TTL_SLACK_S)
        base, base_keys = redis_info(url), key_names(url)
        await run_batch(jobs)
        peak = redis_info(url)
        await asyncio.sleep(TTL_S + TTL_SLACK_S)
        after, after_keys = redis_info(url), key_names(url)
    finally:
        await worker.stop()
        await task
        await app.close()
    flushall(url)
    drift = (after["used_memory"] - base["used_memory"]) / base["used_memory"] * 100
    # complete.lua also counts into one per-minute stats hash (2 h TTL): a minute boundary
    # during the run leaves one more of those, by design; every other new key is a leak.
    new_keys = sorted(k for k in after_keys - base_keys if ":stats:" not in k)
    return {
        "jobs": jobs,
        "complete_job_ttl_s": TTL_S,
        "waited_s": TTL_S + TTL_SLACK_S,
        "used_memory_baseline": base["used_memory"],
        "used_memory_peak": peak["used_memory"],
        "used_memory_after": after["used_memory"],
        "used_memory_drift_pct": round(drift, 2),
        "dbsize_baseline": base["dbsize"],
        "dbsize_peak": peak["dbsize"],
        "dbsize_after": after["dbsize"],
        "leftover_keys": new_keys[:10],
        "ok": abs(drift) <= 5.0 and not new_keys,
    }


# -- peers -----------------------------------------------------------------------------------
def peer_python(peer: str, cache: Path) -> Path:
    """The peer's own venv (created and filled from PyPI once, reused after); never the project's."""
    venv = cache / peer
    py = venv / "bin" / "python"
    if venv.resolve() == Path(sys.prefix).resolve():
        raise RuntimeError("refusing to install a peer into the project's own venv")
    check = [str(py), "-c", f"import {peer}, redis"]
    if py.exists() and subprocess.run(check, capture_output=True, timeout=120).returncode == 0:
        return py
    log(f"{peer}: creating {venv} and installing {' '.join(PEER_PACKAGES[peer])}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", *PEER_PACKAGES[peer]], check=True, timeout=900, stdout=sys.stderr
    )
    return py


class PeerSkipped(Exception):
    """A peer that cannot run on this machine (no node, no npm, no registry): a message, not a crash."""


def node_peer_dir(peer: str, cache: Path) -> Path:
    """The npm folder holding the peer's packages (installed from the npm registry once, reused
    after): <cache>/<peer>/node_modules."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None:
        raise PeerSkipped("node is not installed (apt-get install -y nodejs npm)")
    folder = cache / peer
    mods = NODE_PEER_PACKAGES[peer]
    check = [node, "-e", "".join(f"require({m!r});" for m in mods)]
    env = os.environ | {"NODE_PATH": str(folder / "node_modules")}
    if subprocess.run(check, capture_output=True, timeout=60, env=env).returncode == 0:
        return folder
    if npm is None:
        raise PeerSkipped("npm is not installed (apt-get install -y npm)")
    log(f"{peer}: installing {' '.join(mods)} from npm into {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "package.json").exists():
        (folder / "package.json").write_text('{"name": "gotaskq-bench-peer", "private": true}\n')
    try:
        res = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-update-notifier", "--prefix", str(folder), *mods],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        raise PeerSkipped("npm install timed out after 300 s (is the npm registry reachable?)") from None
    if res.returncode != 0 or subprocess.run(check, capture_output=True, timeout=60, env=env).returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise PeerSkipped(f"npm could not install {' '.join(mods)} (registry unreachable?): {' | '.join(tail)}")
    return folder


def peer_command(peer: str, cache: Path, args: list[str]) -> tuple[list[str], dict[str, str]]:
    if peer in NODE_PEER_PACKAGES:
        folder = node_peer_dir(peer, cache)
        node = shutil.which("node") or "node"
        env = os.environ | {"NODE_PATH": str(folder / "node_modules")}
        return [node, str(PEERS_DIR / f"{peer}_peer.cjs"), *args, "--clk-tck", str(CLK_TCK)], env
    py = peer_python(peer, cache)
    return [str(py), "-m", f"{peer}_peer", *args], os.environ | {"PYTHONPATH": str(PEERS_DIR)}


def run_peer(peer: str, url: str, n: int, c: int, cache: Path) -> dict[str, Any]:
    try:
        timeout = 60 + n * 0.03
        args = ["--redis-url", url, "--n", str(n), "--concurrency", str(c), "--timeout", str(timeout)]
        cmd, env = peer_command(peer, cache, [*args, "--redis-pid", str(redis_pid(url))])
        proc = subprocess.run(
            cmd, env=env, stdout=subprocess.PIPE, stderr=sys.stderr, text=True, timeout=3 * timeout + 30
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            return {"system": peer, "error": f"exit {proc.returncode}, no result line"}
        return dict(json.loads(lines[-1]))
    except PeerSkipped as exc:
        log(f"{peer}: SKIPPED: {exc}")
        return {"system": peer, "skipped": str(exc)}
    except (subprocess.SubprocessError, OSError, RuntimeError, ValueError) as exc:
        return {"system": peer, "error": f"{type(exc).__name__}: {exc}"}


def ratios(ours: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ratio": "gotaskq / peer",
        "note": "rates: above 1 = gotaskq faster; *_cpu_per_job: below 1 = gotaskq spends less CPU per job",
    }
    for peer in others:
        name = peer["system"]
        for key, label in (
            ("processed_per_s", "processed"),
            ("enqueue_per_s", "enqueue"),
            ("bulk_enqueue_per_s", "bulk_enqueue"),
            ("worker_cpu_us_per_job", "worker_cpu_per_job"),
            ("redis_cpu_us_per_job", "redis_cpu_per_job"),
        ):
            a, b = ours.get(key), peer.get(key)
            if a and b:
                out[f"gotaskq_{label}_vs_{name}"] = round(a / b, 2)
            elif label != "bulk_enqueue":
                out[f"gotaskq_{label}_vs_{name}"] = None
    return out


TABLE = (
    ("enqueue/s", "enqueue_per_s", 12),
    ("bulk/s", "bulk_enqueue_per_s", 12),
    ("processed/s", "processed_per_s", 13),
    ("worker µs/job", "worker_cpu_us_per_job", 15),
    ("redis µs/job", "redis_cpu_us_per_job", 14),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    log(f"{'system':<10}" + "".join(f"{title:>{w}}" for title, _, w in TABLE))
    for r in rows:
        text = "".join(f"{'-' if r.get(k) is None else r[k]:>{w}}" for _, k, w in TABLE)
        note = f"  error: {r['error']}" if "error" in r else f"  skipped: {r['skipped']}" if "skipped" in r else ""
        log(f"{r['system']:<10}{text}{note}")


async def bench_gotaskq_as_peer(url: str, n: int, c: int) -> dict[str, Any]:
    try:
        fig = await bench_backend("gotaskq", url, n, c)
        return {
            "system": "gotaskq",
            "n": n,
            "concurrency": c,
            **fig,
            "counted_by": "gotaskq_jobs_processed_total{status=done} + queue_info empty",
        }
    except Exception as exc:
        return {"system": "gotaskq", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        flushall(url)


def peers_mode(url: str, args: argparse.Namespace, meta: dict[str, Any]) -> None:
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if peers == ["all"]:
        peers = list(ALL_PEERS)
    unknown = sorted(set(peers) - set(ALL_PEERS))
    if unknown:
        raise SystemExit(f"unknown peer(s): {', '.join(unknown)} (choose from {', '.join(ALL_PEERS)}, or all)")
    flushall(url)
    ours = asyncio.run(bench_gotaskq_as_peer(url, args.n, args.concurrency))
    print(json.dumps(ours | meta), flush=True)
    rows = [ours]
    for peer in peers:
        log(f"{peer}: running the same workload")
        flushall(url)
        row = run_peer(peer, url, args.n, args.concurrency, Path(args.peer_cache).expanduser())
        flushall(url)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(json.dumps(ratios(ours, rows[1:]) | {"n": args.n, "concurrency": args.concurrency} | meta), flush=True)
    print_table(rows)


# -- main ------------------------------------------------------------------------------------
def git_sha() -> dict[str, Any]:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            != ""
        )
        return {"git_sha": sha or None, "git_dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": None, "git_dirty": None}


async def default_mode(url: str, args: argparse.Namespace) -> dict[str, Any]:
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    result: dict[str, Any] = {}
    for name in backends:
        if name not in ("memory", "redis"):
            raise SystemExit(f"unknown backend {name!r} (memory, redis)")
        result[name] = await bench_backend(name, url if name == "redis" else None, args.n, args.concurrency)
    if "redis" in backends and not args.skip_memory:
        log(f"redis: memory per waiting job ({args.memory_jobs} jobs)")
        result["redis"]["memory_per_waiting_job"] = await memory_per_job(url, args.memory_jobs)
        log(f"redis: DONE jobs leave nothing behind ({TTL_JOBS} jobs, COMPLETE_JOB_TTL={TTL_S:g}s)")
        result["redis"]["done_ttl_cleanup"] = await done_ttl_cleanup(url, TTL_JOBS, args.concurrency)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="jobs per phase (default 20000)")
    p.add_argument("--concurrency", type=int, default=50, help="callers and worker concurrency (default 50)")
    p.add_argument("--skip-memory", action="store_true", help="skip the Redis memory and TTL-cleanup checks")
    p.add_argument("--memory-jobs", type=int, default=MEMORY_JOBS, help="jobs for the memory-per-job figure")
    p.add_argument("--backends", default="memory,redis", help="gotaskq backends to measure (default memory,redis)")
    p.add_argument(
        "--peers", default=None, help=f"compare with peers instead: some of {','.join(ALL_PEERS)}, or all (every one)"
    )
    p.add_argument(
        "--peer-cache",
        default=os.environ.get("GOTASKQ_BENCH_CACHE", "~/.cache/gotaskq-bench"),
        help="where each peer's own venv (npm folder for bullmq) lives (default ~/.cache/gotaskq-bench/<peer>)",
    )
    args = p.parse_args()
    if args.n < args.concurrency or args.concurrency < 1:
        p.error("--n must be at least --concurrency, which must be at least 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks stop redis-server
    with redis_server() as url:
        with redis.Redis.from_url(url) as r:
            redis_version = r.info("server")["redis_version"]
        meta = {"redis_version": redis_version, "python_version": platform.python_version(), **git_sha()}
        if args.peers:
            peers_mode(url, args, meta)
            return 0
        figures = asyncio.run(default_mode(url, args))
    line = {"bench": "core", "n": args.n, "concurrency": args.concurrency, **meta, **figures}
    print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
