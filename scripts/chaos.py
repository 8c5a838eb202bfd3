#!/usr/bin/env python3
"""Chaos harness: gotaskq under kill -9, SIGSTOP, SIGTERM, Redis restarts and network blips.

Starts, on 127.0.0.1 and in a temp dir, a redis-server with AOF (appendfsync always), one
``gotaskq api`` and W ``gotaskq worker`` processes. A client submits jobs over HTTP at a steady
rate across three queues, first in a short fault-free phase, then while faults are injected on
a seeded schedule. Workers record every execution in their own fsynced file
(``chaos_handlers.py``). At the end it drains the queues, checks the history and the final
Redis state, prints ONE JSON line on stdout (progress goes to stderr) and exits 1 on any
violation (2 when the harness itself failed). The temp dir, kept with --keep or after a failed
run, holds every process's log, the AOF, the execution records, submissions.jsonl and
history.json (faults with their times, crashes, the result).

    .venv/bin/python scripts/chaos.py --n 3000 --workers 3 --worker-kills 4 --seed 7
    .venv/bin/python scripts/chaos.py --n 20000 --worker-kills 20 --api-kills 5 \\
        --redis-restarts 3 --stops 3                      # the big run

Failover experiments: --cluster (3 primaries + 3 replicas) or --sentinel (a primary, a replica, 3
sentinels), all on loopback, AOF, with REDIS_MIN_REPLICAS_ACK=--min-replicas-ack (default 1) for
every gotaskq process. --primary-kills N kill -9s a primary N times under the load: on the Cluster
one that owns test queues, then restarts it once a replica took over, so it rejoins as a replica;
under Sentinel the current primary, then restarts it as a replica of the new one. The other faults
default to 0 in these modes (worker and API faults can be added; Redis restarts and blips cannot).
The JSON line gets "failover": per kill and per queue the job-start gap and the 503 window.

    .venv/bin/python scripts/chaos.py --cluster --n 3000 --workers 2 --rate 150 --primary-kills 2
    .venv/bin/python scripts/chaos.py --sentinel --n 2000 --primary-kills 1 --min-replicas-ack 0

External workers: --external N creates the queues with "external": true and runs the jobs in N
``scripts/chaos_external_worker.py`` processes (claim/heartbeat/complete/fail over HTTP, the same
execution records), plus one ``gotaskq worker`` (NUM_WORKERS=1, no faults) whose recovery pass
requeues expired leases of the external queues. Faults: --worker-kills (kill -9 an external worker,
restart it), --stops (SIGSTOP past the lease, SIGCONT: its late writes must get 409 lease_lost,
reported as "late_writes_refused"), --redis-restarts; --api-kills and --blips may be added;
--sigterms and --term-kills are not available (default 0).

    .venv/bin/python scripts/chaos.py --external 3 --n 3000 --worker-kills 5 --stops 2 \
        --redis-restarts 1 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from gotaskq import keys

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
# The Cluster and Sentinel topologies are the tests' own (tests/cluster_support.py): one
# implementation of starting, failing over and stopping them by pid, not a copy that drifts.
sys.path.insert(0, str(ROOT / "tests"))
from cluster_support import (  # noqa: E402
    RedisClusterSet,
    RedisSentinelSet,
    queue_names_on_every_primary,
)

QUEUES = ("chaos-a", "chaos-b", "chaos-c")
PLACED = {"ready": "PENDING", "delayed": "SCHEDULED", "running": "RUNNING", "dead": "DEAD"}
POISON_RETRIES = 2
NORMAL_RETRIES = 25  # kills count attempts too: a normal job must never die of bad luck
START_TIMEOUT_S = 20.0
SUBMIT_DEADLINE_S = 60.0
EXAMPLES = 5
# Settings a caller's environment could carry into the children and change the experiment.
DROPPED_ENV = (
    "API_TOKEN",
    "ADMIN_TOKEN",
    "ADMIN_READONLY",
    "AUTO_CREATE_QUEUES",
    "USE_REDIS",
    "MAX_QUEUE_DEPTH",
    "METRICS_PORT",
    "MAX_RETRIES",
    "PRIORITY_AGING",
    "IDEMPOTENCY_TTL",
    "MAX_BODY_BYTES",
    "NUM_WORKERS",
    "REDIS_URL",
    "REDIS_CLUSTER",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "REDIS_MIN_REPLICAS_ACK",
    "REDIS_REPLICA_ACK_TIMEOUT",
)
TOPOLOGIES = ("single", "cluster", "sentinel")
QUEUES_PER_PRIMARY = 2  # --cluster: test queues whose keys land on each primary


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- configuration ---------------------------------------------------------------------------
STALE_WRITE_WINDOW_S = 1.0  # a SIGCONTed worker sends its refused writes within this


@dataclass(frozen=True)
class Config:
    n: int = 2000
    workers: int = 3
    concurrency: int = 16
    rate: float = 100.0
    faultfree: int = -1  # jobs of the fault-free phase; -1 = n // 10 (at least 30); 0 = none
    worker_kills: int = 4
    api_kills: int = 2
    redis_restarts: int = 1
    stops: int = 1
    sigterms: int = 2
    term_kills: int = 1
    blips: int = 1
    blip_s: float = 3.0
    lease: float = 2.0
    grace: float = 1.0
    seed: int = 0
    drain_timeout: float = 120.0
    max_time: float = 1800.0
    inflight: int = 64
    keep: bool = False
    topology: str = "single"  # single | cluster | sentinel
    primary_kills: int = 0
    min_replicas_ack: int = 0
    external: int = 0  # > 0: external queues, served by this many chaos_external_worker.py processes
    external_lease: float = 5.0  # the lease external workers claim with (and heartbeat to)

    @property
    def job_lease(self) -> float:
        """The lease a job is held under: the claim's with --external, else VISIBILITY_TIMEOUT."""
        return self.external_lease if self.external else self.lease

    @property
    def faultfree_jobs(self) -> int:
        return max(30, self.n // 10) if self.faultfree < 0 else self.faultfree

    def fault_seconds(self) -> float:
        """About how long the plan takes: the faults run one after another."""
        each = {
            "worker_kill": 0.3, "api_kill": 2.0, "redis_restart": 0.5, "sigstop": 2 * self.job_lease + 0.2,
            "sigterm": self.grace + 1.5, "sigterm_kill": self.grace / 2 + 0.3, "blip": self.blip_s / 2 + 0.2,
            "primary_kill": 9.0,  # failover (~3-5 s) and the killed node rejoining (~2-4 s)
        }  # fmt: skip
        return sum(each[k] for k in self.fault_plan())

    def effective_rate(self) -> float:
        """The rate, lowered when needed so that every fault lands while jobs are submitted."""
        need = 1.3 * self.fault_seconds() + 1.0
        return min(self.rate, self.n / need) if need > 1.0 else self.rate

    def fault_plan(self) -> list[str]:
        return (
            ["worker_kill"] * self.worker_kills
            + ["api_kill"] * self.api_kills
            + ["redis_restart"] * self.redis_restarts
            + ["sigstop"] * self.stops
            + ["sigterm"] * self.sigterms
            + ["sigterm_kill"] * self.term_kills
            + ["blip"] * self.blips
            + ["primary_kill"] * self.primary_kills
        )


# Faults of the one-server mode; with --cluster/--sentinel they default to 0 (the failover alone).
SINGLE_FAULTS = ("worker_kills", "api_kills", "redis_restarts", "stops", "sigterms", "term_kills", "blips")
# Faults that default to 0 with --external (the API and blips may be asked for; SIGTERMs not at all).
EXTERNAL_OFF = ("api_kills", "sigterms", "term_kills", "blips")


def parse_args(argv: list[str] | None) -> Config:
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--cluster", dest="topology", action="store_const", const="cluster", help="a 3x2 Redis Cluster")
    mode.add_argument(
        "--sentinel", dest="topology", action="store_const", const="sentinel", help="a primary+replica, 3 sentinels"
    )
    a("--primary-kills", type=int, default=None, help="kill -9 a Redis primary (--cluster/--sentinel; default 1)")
    a("--min-replicas-ack", type=int, default=None, help="REDIS_MIN_REPLICAS_ACK (--cluster/--sentinel; default 1)")
    a("--external", type=int, default=0, help="N external worker processes over HTTP (external queues)")
    a("--external-lease", type=float, default=d.external_lease, help="--external: the claims' lease, seconds")
    a("--n", type=int, default=d.n, help="jobs of the chaos phase")
    a("--workers", "-w", type=int, default=d.workers, help="gotaskq worker processes (W)")
    a("--concurrency", type=int, default=d.concurrency, help="NUM_WORKERS of each worker process")
    a("--rate", type=float, default=d.rate, help="submissions per second")
    a("--faultfree", type=int, default=d.faultfree, help="jobs of the fault-free phase (-1: n/10, 0: skip)")
    a("--worker-kills", type=int, default=None, help="kill -9 a worker, then restart it")
    a("--api-kills", type=int, default=None, help="kill -9 the API, then restart it")
    a("--redis-restarts", type=int, default=None, help="kill -9 Redis, restart from its AOF")
    a("--stops", type=int, default=None, help="SIGSTOP a worker for 2 leases, then SIGCONT")
    a("--sigterms", type=int, default=None, help="SIGTERM a worker with long jobs in flight")
    a("--term-kills", type=int, default=None, help="SIGTERM then SIGKILL inside the grace period")
    a("--blips", type=int, default=None, help="network blips (DEBUG SLEEP, then CLIENT KILL, alternating)")
    a("--blip-s", type=float, default=d.blip_s, help="DEBUG SLEEP seconds")
    a("--lease", type=float, default=d.lease, help="VISIBILITY_TIMEOUT seconds")
    a("--grace", type=float, default=d.grace, help="SHUTDOWN_GRACE seconds")
    a("--seed", type=int, default=None, help="seed of the job mix and the fault schedule (default: random)")
    a("--drain-timeout", type=float, default=d.drain_timeout, help="seconds to wait for the queues to drain")
    a("--max-time", type=float, default=d.max_time, help="hard limit on the whole run, seconds")
    a("--inflight", type=int, default=d.inflight, help="concurrent HTTP submissions at most")
    a("--keep", action="store_true", help="keep the temp dir (logs, AOF, execution records)")
    ns = p.parse_args(argv)
    seed = ns.seed if ns.seed is not None else random.SystemRandom().randrange(1, 2**31)
    if ns.n < 1 or ns.workers < 1 or ns.rate <= 0:
        p.error("--n, --workers and --rate must be positive")
    v = vars(ns)
    v["topology"] = v["topology"] or "single"
    replicated = v["topology"] != "single"
    external = v["external"]
    if external < 0:
        p.error("--external must be >= 0")
    if external and replicated:
        p.error("--external runs on one server: not with --cluster/--sentinel")
    if external and (v["sigterms"] or v["term_kills"]):
        p.error("--sigterms and --term-kills are not available with --external")
    if external:
        v["workers"] = external  # the worker slots are the external workers
    for k in SINGLE_FAULTS:
        if v[k] is None:
            v[k] = 0 if replicated or (external and k in EXTERNAL_OFF) else getattr(d, k)
    if v["primary_kills"] is None:
        v["primary_kills"] = 1 if replicated else 0
    if v["min_replicas_ack"] is None:
        v["min_replicas_ack"] = 1 if replicated else 0
    if not replicated and (v["primary_kills"] or v["min_replicas_ack"]):
        p.error("--primary-kills and --min-replicas-ack need --cluster or --sentinel (one server has no replica)")
    if replicated and (v["redis_restarts"] or v["blips"]):
        p.error("--redis-restarts and --blips act on one server: not with --cluster/--sentinel (use --primary-kills)")
    if v["primary_kills"] < 0 or not 0 <= v["min_replicas_ack"] <= 1:
        p.error("--primary-kills must be >= 0 and --min-replicas-ack 0 or 1 (each primary has one replica)")
    return Config(**{**{k: x for k, x in v.items() if k != "seed"}, "seed": seed})


# -- processes ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Cluster:
    """Every process the harness starts; each is stopped by its pid, at the latest in stop_all."""

    def __init__(self, cfg: Config, workdir: Path) -> None:
        self.cfg = cfg
        self.dir = workdir
        self.exec_dir = workdir / "exec"
        self.exec_dir.mkdir()
        self.redis_port = free_port()
        self.api_port = free_port()
        self.started: list[subprocess.Popen[bytes]] = []
        self.redis: subprocess.Popen[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * cfg.workers
        self.recovery: subprocess.Popen[bytes] | None = None  # --external: the gotaskq worker that recovers
        self.worker_logs: dict[int, Path] = {}
        self.expected_exit: set[int] = set()
        self.gen = 0
        self.queues: tuple[str, ...] = QUEUES
        # --cluster / --sentinel: the tests' topology (its own redis-servers, stopped in stop_all)
        self.rset: RedisClusterSet | RedisSentinelSet | None = None

    @property
    def mode(self) -> str:
        return self.cfg.topology

    @property
    def redis_url(self) -> str:
        if isinstance(self.rset, RedisClusterSet):
            return self.rset.url  # a node that runs now
        if isinstance(self.rset, RedisSentinelSet):
            return f"redis://127.0.0.1:{self.rset.current_primary()}/0"
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start_topology(self) -> None:
        """--cluster / --sentinel: start the set (blocking, bounded by cluster_support's deadlines)."""
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if self.mode == "cluster":
            cluster = RedisClusterSet(binary, self.dir / "redis")
            self.rset = cluster
            cluster.start()
            self.queues = tuple(queue_names_on_every_primary(cluster, QUEUES_PER_PRIMARY))
        else:
            self.rset = RedisSentinelSet(binary, self.dir / "redis")
            self.rset.start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _spawn(self, args: list[str], env: dict[str, str] | None, log_name: str) -> subprocess.Popen[bytes]:
        with (self.dir / log_name).open("ab") as out:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.started.append(proc)
        return proc

    def _env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        if isinstance(self.rset, RedisSentinelSet):
            env.update(self.rset.env())
        else:
            env.update(REDIS_URL=self.redis_url, REDIS_CLUSTER="true" if self.rset is not None else "false")
        env.update(
            REDIS_MIN_REPLICAS_ACK=str(self.cfg.min_replicas_ack),
            HOST="127.0.0.1",
            COMPLETE_JOB_TTL="1h",
            JOB_TIMEOUT="60s",
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def start_redis(self) -> None:
        self.redis = self._spawn(
            [
                shutil.which("redis-server") or "/usr/bin/redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.redis_port),
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                "--enable-debug-command",
                "local",
                "--maxmemory-policy",
                "noeviction",
            ],
            None,
            "redis.log",
        )

    def start_api(self) -> None:
        # BASE_DELAY/MAX_DELAY: an external worker's fail is retried after the API's delay.
        env = self._env(PORT=str(self.api_port), LOG_LEVEL="WARNING", BASE_DELAY="50", MAX_DELAY="500")
        self.api = self._spawn([sys.executable, "-m", "gotaskq", "api"], env, "api.log")

    def start_recovery(self) -> None:
        """--external: one gotaskq worker (its handlers idle) for the recovery pass of expired leases."""
        c = self.cfg
        env = self._env(
            NUM_WORKERS="1",
            VISIBILITY_TIMEOUT=f"{c.lease}s",
            RECOVERY_INTERVAL="250ms",
            SHUTDOWN_GRACE=f"{c.grace}s",
            BASE_DELAY="50",
            MAX_DELAY="500",
        )
        self.recovery = self._spawn([sys.executable, "-m", "gotaskq", "worker"], env, "recovery.log")

    def start_external(self, slot: int) -> subprocess.Popen[bytes]:
        c = self.cfg
        env = self._env(
            CHAOS_API_URL=self.api_url,
            CHAOS_QUEUES=",".join(self.queues),
            CHAOS_EXEC_DIR=str(self.exec_dir),
            CHAOS_LEASE=str(c.external_lease),
            CHAOS_THREADS=str(c.concurrency),
        )
        name = f"worker-{slot}-{self.gen}.log"
        proc = self._spawn([sys.executable, str(SCRIPTS / "chaos_external_worker.py")], env, name)
        self.workers[slot] = proc
        self.worker_logs[proc.pid] = self.dir / name
        return proc

    def start_worker(self, slot: int) -> subprocess.Popen[bytes]:
        c = self.cfg
        self.gen += 1
        if c.external:
            return self.start_external(slot)
        env = self._env(
            NUM_WORKERS=str(c.concurrency),
            VISIBILITY_TIMEOUT=f"{c.lease}s",
            RECOVERY_INTERVAL="250ms",
            SHUTDOWN_GRACE=f"{c.grace}s",
            BASE_DELAY="50",
            MAX_DELAY="500",
            GOTASKQ_HANDLERS="chaos_handlers",
            CHAOS_EXEC_DIR=str(self.exec_dir),
            PYTHONPATH=os.pathsep.join(p for p in (str(SCRIPTS), os.environ.get("PYTHONPATH", "")) if p),
        )
        name = f"worker-{slot}-{self.gen}.log"
        proc = self._spawn([sys.executable, "-m", "gotaskq", "worker"], env, name)
        self.workers[slot] = proc
        self.worker_logs[proc.pid] = self.dir / name
        return proc

    def signal(self, proc: subprocess.Popen[bytes] | None, sig: int, expect_exit: bool = True) -> None:
        if proc is None or proc.poll() is not None:
            return
        if expect_exit:
            self.expected_exit.add(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)

    async def reap(self, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while proc is not None and proc.poll() is None:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self.rset is not None:
            self.rset.stop()  # SIGTERM each redis-server and sentinel by its pid, SIGKILL after 5 s


REJOIN_DEADLINE_S = 30.0


def global_keys_on(port: int) -> list[str]:
    """The kinds of key outside any queue (no hash tag) that node ``port`` holds, numbers as *
    ("gtq:node:*", "gtq:ix:*:*"): read off the node, so a change of the key schema needs no change here."""
    found: set[str] = set()
    with contextlib.suppress(rexc.RedisError, OSError), redis.Redis(port=port, socket_timeout=2) as r:
        for k in r.scan_iter(match=f"{keys.PREFIX}:*", count=1000):
            if keys.is_global(k):
                found.add(re.sub(r":\d+", ":*", k.decode()))
    return sorted(found)


SETTLE_S = 10.0  # --primary-kills: at most this long for every queue to run again before the next kill


def sentinel_rejoin(ss: RedisSentinelSet, port: int) -> None:
    """Start the killed server again as a replica of the new primary (the set's restart_server),
    then wait until every sentinel sees that primary with one linked replica (the set's own
    health check): only then can a next kill fail over."""
    ss.restart_server(port)
    deadline = time.monotonic() + REJOIN_DEADLINE_S
    while True:
        with contextlib.suppress(rexc.RedisError, OSError):
            if ss._healthy():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"sentinels did not see server {port} as a replica in {REJOIN_DEADLINE_S}s")
        time.sleep(0.05)


# -- submissions ---------------------------------------------------------------------------------
@dataclass
class Sub:
    phase: str
    i: int
    key: str
    queue: str
    kind: str
    priority: int
    delay: float
    ms: int
    fail_times: int
    max_retries: int
    outcome: str = "pending"  # acked | refused | ambiguous
    id: str | None = None
    replayed: bool = False  # acked by a 200 Idempotent-Replayed: an earlier try had enqueued it
    tries: int = 0
    maybe: bool = False  # some try may have reached Redis without an answer
    t_first: float = 0.0
    t_done: float = 0.0
    note: str = ""
    errs: list[tuple[float, str]] = field(default_factory=list)  # (time, 503|connect|...) of failed tries

    def body(self) -> dict[str, Any]:
        payload = {"key": self.key, "kind": self.kind, "ms": self.ms, "fail_times": self.fail_times}
        return {
            "type": "chaos",
            "payload": payload,
            "queue": self.queue,
            "priority": self.priority,
            "delay": self.delay,
            "max_retries": self.max_retries,
            "timeout": 60,
            "idempotency_key": self.key,
        }


def make_jobs(phase: str, n: int, rng: random.Random, queues: tuple[str, ...] = QUEUES) -> list[Sub]:
    """~10% delayed, ~10% flaky, ~1% poison, ~5% long (2-4 s), the rest 5-50 ms."""
    out = []
    for i in range(n):
        r = rng.random()
        kind = "poison" if r < 0.01 else "long" if r < 0.06 else "flaky" if r < 0.16 else "fast"
        ms = rng.randint(2000, 4000) if kind == "long" else rng.randint(5, 50)
        out.append(
            Sub(
                phase=phase,
                i=i,
                key=f"chaos-{phase}-{i}",
                queue=rng.choice(queues),
                kind=kind,
                priority=rng.randint(1, 10) if rng.random() < 0.3 else 0,
                delay=round(rng.uniform(0.2, 2.0), 3) if rng.random() < 0.1 else 0,
                ms=ms,
                fail_times=rng.randint(1, 3) if kind == "flaky" else 0,
                max_retries=POISON_RETRIES if kind == "poison" else NORMAL_RETRIES,
            )
        )
    return out


async def submit(client: httpx.AsyncClient, sub: Sub) -> None:
    """POST until acked or definitely refused; the same idempotency key on every try."""
    sub.t_first = time.time()
    deadline = time.monotonic() + SUBMIT_DEADLINE_S
    for attempt in range(400):
        sub.tries += 1
        try:
            resp = await client.post("/jobs", json=sub.body())
        except httpx.ConnectError:
            sub.note = "connect refused"  # never reached the API: this try wrote nothing
            sub.errs.append((time.time(), "connect"))
        except httpx.HTTPError as exc:
            sub.maybe, sub.note = True, type(exc).__name__
            sub.errs.append((time.time(), sub.note))
        else:
            if resp.status_code in (200, 201):
                sub.outcome, sub.id, sub.t_done = "acked", str(resp.json()["id"]), time.time()
                sub.replayed = resp.status_code == 200
                return
            if resp.status_code < 500 and resp.status_code != 429:
                sub.outcome, sub.note, sub.t_done = "refused", f"{resp.status_code} {resp.text[:200]}", time.time()
                return
            sub.maybe, sub.note = True, f"{resp.status_code}"  # a 503 may follow a write whose reply was lost
            sub.errs.append((time.time(), sub.note))
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(min(0.5, 0.05 * 2 ** min(attempt, 4)))
    sub.outcome, sub.t_done = ("ambiguous" if sub.maybe else "refused"), time.time()


async def submit_all(api_url: str, subs: list[Sub], rate: float, inflight: int) -> None:
    limits = httpx.Limits(max_connections=inflight, max_keepalive_connections=inflight)
    timeout = httpx.Timeout(10.0, connect=2.0)
    gate = asyncio.Semaphore(inflight)
    async with httpx.AsyncClient(base_url=api_url, limits=limits, timeout=timeout) as client:

        async def one(sub: Sub) -> None:
            try:
                await submit(client, sub)
            finally:
                gate.release()

        t0 = time.monotonic()
        tasks = []
        for k, sub in enumerate(subs):
            wait = t0 + k / rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await gate.acquire()
            tasks.append(asyncio.create_task(one(sub)))
        await asyncio.gather(*tasks)


# -- execution records --------------------------------------------------------------------------
@dataclass
class Exec:
    x: str
    id: str
    key: str | None
    att: int
    pid: int
    kind: str
    t_start: float
    t_end: float | None = None
    outcome: str | None = None  # ok | fail | cancelled; None: never ended (killed)
    q: str | None = None


class ExecTracker:
    """Tails the workers' execution files; knows what is in flight in which process."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.offsets: dict[Path, int] = {}
        self.execs: dict[str, Exec] = {}
        self.orphan_ends: list[dict[str, Any]] = []
        self.bad_lines = 0

    def poll(self) -> None:
        for path in sorted(self.dir.glob("exec-*.jsonl")):
            with path.open("rb") as f:
                f.seek(self.offsets.get(path, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1
            self.offsets[path] = self.offsets.get(path, 0) + end
            for line in data[:end].splitlines():
                self._take(line)

    def _take(self, line: bytes) -> None:
        try:
            r = json.loads(line)
        except ValueError:
            self.bad_lines += 1
            return
        if r["ev"] == "start":
            self.execs[r["x"]] = Exec(
                r["x"], r["id"], r.get("key"), r["att"], r["pid"], r["kind"], r["t"], q=r.get("q")
            )
        elif r["x"] in self.execs:
            e = self.execs[r["x"]]
            e.t_end, e.outcome = r["t"], r["outcome"]
        else:
            self.orphan_ends.append(r)

    def inflight_long(self, pid: int) -> int:
        return sum(1 for e in self.execs.values() if e.pid == pid and e.kind == "long" and e.outcome is None)


# -- faults ---------------------------------------------------------------------------------------
@dataclass
class Fault:
    kind: str
    t0: float
    t1: float
    pid: int | None = None  # the worker it hit; None: every process (Redis faults) or the API
    note: str = ""


@dataclass
class Run:
    cfg: Config
    cluster: Cluster
    tracker: ExecTracker
    rng: random.Random
    faults: list[Fault] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    blips_done: int = 0
    kills: list[dict[str, Any]] = field(default_factory=list)  # --primary-kills: what each one hit

    def redis_client(self) -> Any:
        """The harness's own client: one server, the Cluster (every primary), or Sentinel's primary now."""
        url = self.cluster.redis_url
        if isinstance(self.cluster.rset, RedisClusterSet):
            return RedisCluster.from_url(url, socket_timeout=15, socket_connect_timeout=2)
        return aioredis.Redis.from_url(url, socket_timeout=15, socket_connect_timeout=2)

    async def wait_redis(self, timeout: float = START_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        async with self.redis_client() as r:
            while time.monotonic() < deadline:
                with contextlib.suppress(rexc.RedisError, OSError):
                    if await r.ping():
                        return True
                await asyncio.sleep(0.05)
        return False

    async def wait_api(self, timeout: float = START_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.cluster.api_url, timeout=2.0) as c:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await c.get("/readyz")).status_code == 200:
                        return True
                await asyncio.sleep(0.1)
        return False

    # -- the faults themselves ------------------------------------------------------------------
    async def inject(self, kind: str) -> None:
        async with self.lock:
            fault = await getattr(self, f"_{kind}")()
        self.faults.append(fault)
        log(f"fault {kind} pid={fault.pid} {fault.t1 - fault.t0:.2f}s {fault.note}")

    def _slot(self) -> int:
        return self.rng.randrange(self.cfg.workers)

    async def _worker_kill(self) -> Fault:
        slot = self._slot()
        proc = self.cluster.workers[slot]
        assert proc is not None
        t = time.time()
        self.cluster.signal(proc, signal.SIGKILL)
        await self.cluster.reap(proc, 5)
        self.cluster.start_worker(slot)
        return Fault("worker_kill", t, t, proc.pid)

    async def _api_kill(self) -> Fault:
        t = time.time()
        self.cluster.signal(self.cluster.api, signal.SIGKILL)
        await self.cluster.reap(self.cluster.api, 5)
        await asyncio.sleep(0.2)
        self.cluster.start_api()
        ok = await self.wait_api()
        return Fault("api_kill", t, time.time(), None, "" if ok else "API not ready again in time")

    async def _redis_restart(self) -> Fault:
        t = time.time()
        self.cluster.signal(self.cluster.redis, signal.SIGKILL)
        await self.cluster.reap(self.cluster.redis, 5)
        self.cluster.start_redis()
        ok = await self.wait_redis()
        return Fault("redis_restart", t, time.time(), None, "" if ok else "Redis not back in time")

    async def _sigstop(self) -> Fault:
        slot = self._slot()
        proc = self.cluster.workers[slot]
        assert proc is not None
        t = time.time()
        self.cluster.signal(proc, signal.SIGSTOP, expect_exit=False)
        try:
            await asyncio.sleep(2 * self.cfg.job_lease)
        finally:
            self.cluster.signal(proc, signal.SIGCONT, expect_exit=False)
        return Fault("sigstop", t, time.time(), proc.pid)

    async def _busiest_long(self) -> int:
        """The slot with the most long jobs in flight (waits up to 5 s for one to have any)."""
        best, most = self._slot(), 0
        for _ in range(50):
            self.tracker.poll()
            for slot, proc in enumerate(self.cluster.workers):
                n = self.tracker.inflight_long(proc.pid) if proc is not None else 0
                if n > most:
                    best, most = slot, n
            if most:
                break
            await asyncio.sleep(0.1)
        return best

    async def _sigterm(self) -> Fault:
        slot = await self._busiest_long()
        proc = self.cluster.workers[slot]
        assert proc is not None
        n_long = self.tracker.inflight_long(proc.pid)
        t = time.time()
        self.cluster.signal(proc, signal.SIGTERM)
        note = f"long in flight={n_long}"
        if not await self.cluster.reap(proc, self.cfg.grace + 10):
            self.crashes.append({"what": "worker ignored SIGTERM", "pid": proc.pid})
            self.cluster.signal(proc, signal.SIGKILL)
            await self.cluster.reap(proc, 5)
            note += " (did not exit: killed)"
        elif proc.returncode != 0:
            note += f" rc={proc.returncode}"
            self.crashes.append({"what": "worker exit code after SIGTERM", "pid": proc.pid, "rc": proc.returncode})
        t1 = time.time()
        self.cluster.start_worker(slot)
        return Fault("sigterm", t, t1, proc.pid, note)

    async def _sigterm_kill(self) -> Fault:
        slot = await self._busiest_long()
        proc = self.cluster.workers[slot]
        assert proc is not None
        n_long = self.tracker.inflight_long(proc.pid)
        t = time.time()
        self.cluster.signal(proc, signal.SIGTERM)
        await asyncio.sleep(self.cfg.grace / 2)
        t_kill = time.time()
        self.cluster.signal(proc, signal.SIGKILL)
        await self.cluster.reap(proc, 5)
        self.cluster.start_worker(slot)
        return Fault("sigterm_kill", t, t_kill, proc.pid, f"long in flight={n_long}")

    async def _blip(self) -> Fault:
        self.blips_done += 1
        t = time.time()
        async with self.redis_client() as r:
            if self.blips_done % 2:
                with contextlib.suppress(rexc.RedisError):
                    await r.execute_command("DEBUG", "SLEEP", self.cfg.blip_s)
                note = f"DEBUG SLEEP {self.cfg.blip_s:g}"
            else:
                killed = 0
                for typ in ("normal", "pubsub"):
                    with contextlib.suppress(rexc.RedisError):
                        killed += int(await r.execute_command("CLIENT", "KILL", "TYPE", typ, "SKIPME", "yes"))
                note = f"CLIENT KILL of {killed} connection(s)"
        return Fault("blip", t, time.time(), None, note)

    async def _primary_kill(self) -> Fault:
        """kill -9 a primary, wait for the promotion, restart the killed node as a replica.

        The topology calls block (they poll the nodes): they run in a thread, so submissions and
        the execution records go on meanwhile. Fault.t1 is the promotion; the rejoin is in kills."""
        rset = self.cluster.rset
        queues = self.cluster.queues
        if self.kills:  # the gaps of one kill must not run into the next: every queue ran a job since
            idle = await self._settled(self.kills[-1]["t_rejoined"])
            if idle:
                log(f"queues {','.join(idle)} started no job since the last rejoin; killing anyway")
        info: dict[str, Any] = {"n": len(self.kills) + 1}
        if isinstance(rset, RedisClusterSet):
            cl = rset

            def choose() -> tuple[int, dict[str, int], list[int]]:
                owner = {q: cl.primary_for_key(keys.queue_prefix(q) + "meta") for q in queues}
                ports = [port for port, _ in cl.primaries() if port in owner.values() and cl.replicas_of(port)]
                return self.rng.choice(ports), owner, ports  # in slot order: the seed picks the same one

            port, owner, _ = await asyncio.to_thread(choose)
            info["killed"] = port
            info["queues_on_killed"] = sorted(q for q, o in owner.items() if o == port)
            # Keys of no queue (the id index, gtq:active, gtq:queues...) live on some one primary.
            info["global_keys_on_killed"] = await asyncio.to_thread(global_keys_on, port)
            kill: Any = lambda: cl.kill_primary(port)  # noqa: E731
            rejoin: Any = lambda: cl.restart_node(port)  # noqa: E731
        else:
            assert isinstance(rset, RedisSentinelSet)
            ss = rset
            port = await asyncio.to_thread(ss.current_primary)
            info["killed"] = port
            info["queues_on_killed"] = sorted(queues)
            kill = ss.kill_primary

            def rejoin() -> None:
                sentinel_rejoin(ss, port)

        t0 = time.time()
        info["t0"] = t0
        try:
            info["new_primary"] = await asyncio.to_thread(kill)
        except RuntimeError as exc:
            self.crashes.append({"what": f"no failover after killing primary {port}", "error": str(exc)[-1500:]})
            info["error"] = "no failover"
        t1 = time.time()
        info["t_promoted"] = t1
        if "error" not in info:
            try:
                await asyncio.to_thread(rejoin)
            except RuntimeError as exc:
                self.crashes.append({"what": f"killed primary {port} did not rejoin", "error": str(exc)[-1500:]})
                info["error"] = "no rejoin"
        info["t_rejoined"] = time.time()
        self.kills.append(info)
        note = f"primary {port} -> {info.get('new_primary')} queues {','.join(info['queues_on_killed'])}"
        note += f" rejoined after {info['t_rejoined'] - t1:.1f}s"
        if info.get("global_keys_on_killed"):
            note += f" global keys {','.join(info['global_keys_on_killed'])}"
        return Fault("primary_kill", t0, t1, None, note)

    async def _settled(self, since: float) -> list[str]:
        """Wait (up to SETTLE_S) until every test queue had a handler start after ``since``; the
        queues that did not (empty: all did)."""
        deadline = time.monotonic() + SETTLE_S
        while True:
            self.tracker.poll()
            ran = {e.q for e in self.tracker.execs.values() if e.t_start > since}
            idle = [q for q in self.cluster.queues if q not in ran]
            if not idle or time.monotonic() > deadline:
                return idle
            await asyncio.sleep(0.1)

    async def inject_all(self, plan: list[str], t_begin: float, t_end: float) -> None:
        times = sorted(self.rng.uniform(t_begin, t_end) for _ in plan)
        for at, kind in zip(times, plan, strict=True):
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await self.inject(kind)

    # -- supervision ------------------------------------------------------------------------------
    async def supervise(self) -> None:
        """A process that exits without being told to is a crash: record it, restart it."""
        for _ in range(10**7):
            await asyncio.sleep(0.25)
            async with self.lock:
                await self._check_processes()

    async def _check_processes(self) -> None:
        c = self.cluster
        for slot, proc in enumerate(c.workers):
            if proc is not None and proc.poll() is not None and proc.pid not in c.expected_exit:
                self._crash(f"worker-{slot}", proc, c.worker_logs.get(proc.pid))
                c.start_worker(slot)
        if c.recovery is not None and c.recovery.poll() is not None and c.recovery.pid not in c.expected_exit:
            self._crash("recovery-worker", c.recovery, c.dir / "recovery.log")
            c.start_recovery()
        if c.api is not None and c.api.poll() is not None and c.api.pid not in c.expected_exit:
            self._crash("api", c.api, c.dir / "api.log")
            c.start_api()
        if c.redis is not None and c.redis.poll() is not None and c.redis.pid not in c.expected_exit:
            self._crash("redis", c.redis, c.dir / "redis.log")
            c.start_redis()
            await self.wait_redis()

    def _crash(self, what: str, proc: subprocess.Popen[bytes], path: Path | None) -> None:
        c = self.cluster
        c.expected_exit.add(proc.pid)
        tail = path.read_text(errors="replace")[-600:] if path is not None and path.exists() else ""
        self.crashes.append({"what": what, "pid": proc.pid, "rc": proc.returncode, "log_tail": tail})
        log(f"CRASH {what} pid={proc.pid} rc={proc.returncode}: {tail[-300:]}")


# -- phases ---------------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    subs: list[Sub]
    t_start: float = 0.0
    t_submitted: float = 0.0
    t_drained: float | None = None


async def depth(r: Any, queues: tuple[str, ...] = QUEUES) -> int:
    pipe = r.pipeline(transaction=False)
    for q in queues:
        for suffix in ("ready", "delayed", "running"):
            pipe.zcard(keys.queue_prefix(q) + suffix)
    return sum(await pipe.execute())


async def drain(run: Run, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    async with run.redis_client() as r:
        while time.monotonic() < deadline:
            with contextlib.suppress(rexc.RedisError, OSError):
                if await depth(r, run.cluster.queues) == 0:
                    return time.time()
            await asyncio.sleep(0.1)
    return None


async def run_phase(run: Run, phase: Phase, plan: list[str], rate: float) -> None:
    cfg = run.cfg
    phase.t_start = time.time()
    window = len(phase.subs) / rate
    log(f"phase {phase.name}: {len(phase.subs)} jobs at {rate:.1f}/s over {window:.1f}s, faults {len(plan)}")
    subs_task = asyncio.create_task(submit_all(run.cluster.api_url, phase.subs, rate, cfg.inflight))
    now = time.monotonic()
    await asyncio.gather(subs_task, run.inject_all(plan, now + min(0.5, window / 10), now + window * 0.9))
    phase.t_submitted = time.time()
    phase.t_drained = await drain(run, cfg.drain_timeout)
    took = "timed out" if phase.t_drained is None else f"{phase.t_drained - phase.t_submitted:.1f}s"
    log(f"phase {phase.name}: submitted, drain {took}")


# -- the final Redis state --------------------------------------------------------------------------
async def scan_redis(r: aioredis.Redis) -> dict[str, Any]:
    """Every job in exactly one place, the one its status names; DONE/CANCELLED in none."""
    problems: list[str] = []
    where: dict[str, tuple[str, str]] = {}
    status: dict[str, str] = {}
    stuck: list[str] = []
    t = await r.time()
    now_ms = t[0] * 1000 + t[1] // 1000
    queues = sorted(q.decode() for q in await r.smembers(keys.QUEUES))
    counts: dict[str, dict[str, int]] = {}
    for q in queues:
        p = keys.queue_prefix(q)
        counts[q] = {}
        for suffix in PLACED:
            rows = await r.zrange(p + suffix, 0, -1, withscores=True)
            counts[q][suffix] = len(rows)
            for member, score in rows:
                jid = member.decode()
                if jid in where:
                    problems.append(f"{jid} in {where[jid]} and in {(q, suffix)}")
                where[jid] = (q, suffix)
                if suffix == "running" and score < now_ms:
                    stuck.append(jid)
        hashes = [k async for k in r.scan_iter(match=f"{p}j:*", count=1000)]
        for start in range(0, len(hashes), 1000):
            chunk = hashes[start : start + 1000]
            pipe = r.pipeline(transaction=False)
            for k in chunk:
                pipe.hget(k, "st")
            for k, st in zip(chunk, await pipe.execute(), strict=True):
                jid = k.decode().rsplit(":", 1)[1]
                st_s = status[jid] = st.decode() if st is not None else "<none>"
                placed = where.get(jid)
                want = next((x for x, v in PLACED.items() if v == st_s), None)
                if want is None and st_s not in ("DONE", "CANCELLED"):
                    problems.append(f"{jid} has status {st_s}")
                elif (want is None and placed is not None) or (want is not None and placed != (q, want)):
                    problems.append(f"{jid} is {st_s} but indexed in {placed}")
        for jid, (wq, suffix) in where.items():
            if wq == q and jid not in status:
                problems.append(f"{jid} indexed in {(q, suffix)} has no hash")
    return {"problems": problems, "status": status, "stuck": stuck, "counts": counts}


# -- analysis ------------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))], 3)


def hit(f: Fault, e: Exec, lease: float) -> bool:
    """Was execution ``e`` in flight (claimed, running, or recording its outcome) during ``f``?

    The records see the handler only; the slack covers claim-to-start and end-to-record, and
    for Redis-wide faults the worker's bookkeeping retries (about one lease)."""
    if f.kind == "api_kill":
        return False
    if f.pid is not None and f.pid != e.pid:
        return False
    if f.kind == "sigterm" and e.outcome in ("ok", "fail") and e.t_end is not None and e.t_end <= f.t1:
        return False  # it finished inside the grace period: graceful shutdown recorded its outcome
    before, after = (1.0, 1.0) if f.pid is not None else (1.0, lease + 1.0)
    end = math.inf if e.t_end is None else e.t_end
    return e.t_start - before <= f.t1 and f.t0 <= end + after


def stale_refusals(paths: dict[int, Path]) -> dict[int, dict[str, list[str]]]:
    out: dict[int, dict[str, list[str]]] = {}
    for pid, path in paths.items():
        got: dict[str, list[str]] = {"completion": [], "failure": []}
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if "stale completion refused" in line or "stale failure refused" in line:
                    try:
                        jid = str(json.loads(line).get("job_id"))
                    except ValueError:
                        jid = "?"
                    got["completion" if "stale completion" in line else "failure"].append(jid)
        out[pid] = got
    return out


def refused_after_retry(paths: dict[int, Path]) -> int:
    """Stale-write refusals an external worker logged with after_retry (chaos_external_worker.py)."""
    n = 0
    for path in paths.values():
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if "stale " in line and '"after_retry":true' in line:
                    n += 1
    return n


def analyse(run: Run, phases: list[Phase], scan: dict[str, Any]) -> dict[str, Any]:
    cfg = run.cfg
    run.tracker.poll()
    execs = list(run.tracker.execs.values())
    by_id: dict[str, list[Exec]] = defaultdict(list)
    for e in execs:
        by_id[e.id].append(e)
    for lst in by_id.values():
        lst.sort(key=lambda e: e.t_start)
    subs = [s for ph in phases for s in ph.subs]
    acked: dict[str, Sub] = {}
    id_reused: list[str] = []
    for s in subs:
        if s.outcome == "acked" and s.id is not None:
            if s.id in acked:
                id_reused.append(s.id)
            acked[s.id] = s
    by_key = {s.key: s for s in subs}
    status: dict[str, str] = scan["status"]
    ex: dict[str, list[str]] = defaultdict(list)

    def note(name: str, item: str) -> None:
        ex[name].append(item)

    # lost, misplaced: acked jobs that never completed / ended anywhere but where they should
    for jid, s in acked.items():
        oks = [e for e in by_id.get(jid, []) if e.outcome == "ok"]
        st = status.get(jid, "<expired>")
        if s.kind == "poison":
            if st != "DEAD":
                note("lost", jid)
            if oks:
                note("poison_completed", jid)
        elif not oks:
            note("lost", jid)
        elif st != "DONE":
            note("wrong_final_state", f"{jid}:{st}")
    # unexpected / recovered: executions of ids nobody was told about
    recovered: set[str] = set()
    for jid, lst in by_id.items():
        if jid in acked:
            if lst[0].key != acked[jid].key:
                note("unexpected", jid)
            continue
        sub = by_key.get(lst[0].key or "")
        if sub is not None and sub.outcome == "ambiguous":
            recovered.add(sub.key)
        else:
            note("unexpected", jid)
    # duplicates: more than one successful execution; explained when the extra ones were hit
    dup_expl = dup_unexpl = 0
    for jid, lst in by_id.items():
        oks = [e for e in lst if e.outcome == "ok"]
        if len(oks) < 2:
            continue
        hits = sum(1 for e in oks if any(hit(f, e, cfg.job_lease) for f in run.faults))
        if hits >= len(oks) - 1:
            dup_expl += 1
        else:
            dup_unexpl += 1
            note("unexplained_duplicates", jid)
    # interrupted executions (no end, or cancelled) must each be hit by a fault
    for e in execs:
        if e.outcome in (None, "cancelled") and not any(hit(f, e, cfg.job_lease) for f in run.faults):
            note("unexplained_interrupted", f"{e.id}@{e.pid}")
    # the fault-free phase: exactly the expected number of executions per job
    for ph in phases:
        if ph.name != "faultfree":
            continue
        for s in ph.subs:
            if s.outcome != "acked" or s.id is None:
                continue
            want = s.max_retries + 1 if s.kind == "poison" else s.fail_times + 1
            got = len(by_id.get(s.id, []))
            if got != want:
                note("faultfree_wrong_executions", f"{s.id}:{got}/{want}")
    # recovery time of jobs in flight in a killed worker
    recover: list[float] = []
    for f in run.faults:
        if f.kind not in ("worker_kill", "sigterm_kill"):
            continue
        for e in execs:
            if e.pid == f.pid and e.t_start <= f.t1 and e.outcome is None:
                later = [x.t_start for x in by_id[e.id] if x.t_start > e.t_start]
                if not later:
                    # An earlier execution finished it: the killed one ran a stale claim (a worker
                    # SIGSTOPped past its lease, then SIGCONTed) and needs no rerun.
                    done_before = status.get(e.id) == "DONE" and any(
                        x.outcome == "ok" and x.t_start < e.t_start for x in by_id[e.id]
                    )
                    if status.get(e.id) != "DEAD" and not done_before:
                        note("never_rerun_after_kill", e.id)
                elif min(later) > f.t1:  # else an earlier fault (a SIGSTOP) had it recovered already
                    recover.append(min(later) - f.t1)
    # stale completions: what the SIGSTOPped workers must have been refused
    stale = stale_refusals(run.cluster.worker_logs)
    missing_stale = 0
    for f in run.faults:
        if f.kind != "sigstop" or f.pid is None:
            continue
        refused = set(stale.get(f.pid, {}).get("completion", [])) | set(stale.get(f.pid, {}).get("failure", []))
        # A worker killed soon after SIGCONT may die before it sends its (stale) write: nothing to refuse.
        killed_after = [
            k.t0
            for k in run.faults
            if k.pid == f.pid
            and k.kind in ("worker_kill", "sigterm_kill")
            and f.t1 <= k.t0 <= f.t1 + STALE_WRITE_WINDOW_S
        ]
        for e in execs:
            if e.pid != f.pid or e.t_start > f.t0 or e.t_end is None or e.t_end < f.t1:
                continue
            if e.outcome in ("ok", "fail") and any(x.pid != f.pid and f.t0 < x.t_start < e.t_end for x in by_id[e.id]):
                if e.id not in refused and not killed_after:
                    missing_stale += 1
                    note("stale_not_refused", e.id)
    dlq = sum(c.get("dead", 0) for c in scan["counts"].values())
    poison_sent = sum(1 for s in acked.values() if s.kind == "poison")
    poison_recovered = sum(1 for k in recovered if by_key[k].kind == "poison")
    undrained = sum(c.get(x, 0) for c in scan["counts"].values() for x in ("ready", "delayed", "running"))
    faults: dict[str, int] = defaultdict(int)
    for f in run.faults:
        faults[f.kind] += 1
    n_stale_c = sum(len(v["completion"]) for v in stale.values())
    n_stale_f = sum(len(v["failure"]) for v in stale.values())

    def throughput(name: str) -> dict[str, float | None]:
        """sustained: jobs finished while load was offered; end_to_end: acked / (drained - start)."""
        ph = next((p for p in phases if p.name == name), None)
        if ph is None:
            return {"sustained": None, "end_to_end": None}
        ids = {s.id for s in ph.subs if s.outcome == "acked"}
        fin = {
            e.id
            for e in execs
            if e.id in ids
            and e.t_end is not None
            and e.t_end <= ph.t_submitted
            and (e.outcome == "ok" or (e.kind == "poison" and e.att > POISON_RETRIES))
        }
        sustained = round(len(fin) / max(1e-9, ph.t_submitted - ph.t_start), 1)
        e2e = None if ph.t_drained is None else round(len(ids) / max(1e-9, ph.t_drained - ph.t_start), 1)
        return {"sustained": sustained, "end_to_end": e2e}

    chaos = next(p for p in phases if p.name == "chaos")
    counts = {k: len(v) for k, v in ex.items()}
    stopped = {f.pid for f in run.faults if f.kind == "sigstop"}
    late_stopped = sum(len(v["completion"]) + len(v["failure"]) for pid, v in stale.items() if pid in stopped)
    late_retried = refused_after_retry(run.cluster.worker_logs)
    result: dict[str, Any] = {
        "acked": len(acked),
        "acked_replayed": sum(1 for s in acked.values() if s.replayed),
        "submissions_retried": sum(1 for s in subs if s.tries > 1),
        "refused": sum(1 for s in subs if s.outcome == "refused"),
        "ambiguous": sum(1 for s in subs if s.outcome == "ambiguous"),
        "lost": counts.get("lost", 0),
        "stuck": len(scan["stuck"]),
        "unexpected": counts.get("unexpected", 0),
        "recovered": len(recovered),
        "duplicates": {"total": dup_expl + dup_unexpl, "explained": dup_expl, "unexplained": dup_unexpl},
        "stale_refused": {
            "completion": n_stale_c,
            "failure": n_stale_f,
            "total": n_stale_c + n_stale_f,
            "sigstop_missing": missing_stale,
        },
        "dlq": {"count": dlq, "poison_sent": poison_sent, "poison_recovered": poison_recovered},
        # 409 lease_lost answers to writes after the lease ran out (external workers; in-process
        # ones log the same refusals): all of them, and those of SIGSTOPped workers.
        # after_retry: the refused try followed a 5xx or a lost answer, so the write refused may be
        # the worker's own, applied by the try whose answer was lost (external workers only).
        "late_writes_refused": {
            "total": n_stale_c + n_stale_f,
            "stopped_workers": late_stopped,
            "after_retry": late_retried,
        },
        "faults": dict(faults),
        "recover_s": {"n": len(recover), "p50": pct(recover, 0.5), "p99": pct(recover, 0.99), "max": pct(recover, 1.0)},
        "drain_s": None if chaos.t_drained is None else round(chaos.t_drained - chaos.t_submitted, 2),
        "throughput_jobs_per_s": {
            "faultfree": throughput("faultfree"),
            "chaos": throughput("chaos"),
            "offered": round(cfg.effective_rate(), 1),
        },
        "executions": len(execs),
        "interrupted": sum(1 for e in execs if e.outcome in (None, "cancelled")),
        "invariant_violations": len(scan["problems"]),
        "undrained": undrained,
        "crashes": len(run.crashes),
        "other": {k: v for k, v in counts.items() if k not in ("lost", "unexpected", "unexplained_duplicates")},
        "examples": {k: v[:EXAMPLES] for k, v in ex.items()}
        | ({"invariants": scan["problems"][:EXAMPLES]} if scan["problems"] else {})
        | ({"stuck": scan["stuck"][:EXAMPLES]} if scan["stuck"] else {}),
    }
    if id_reused:
        result["other"]["id_reused"] = len(id_reused)
    violations = [
        k for k in ("lost", "stuck", "unexpected", "invariant_violations", "undrained", "crashes") if result[k]
    ]
    violations += [k for k, v in result["other"].items() if v]
    if dup_unexpl:
        violations.append("unexplained_duplicates")
    if dlq != poison_sent + poison_recovered:
        violations.append("dlq_count")
    if chaos.t_drained is None:
        violations.append("drain_timeout")
    if run.tracker.bad_lines or run.tracker.orphan_ends:
        violations.append("bad_exec_lines")
    result["violations"] = sorted(set(violations))
    return result


def start_gap(starts: list[float], t0: float, t1: float) -> float | None:
    """The longest time between consecutive handler starts across [t0, t1] (sorted ``starts``),
    counting from the last start before t0 up to the first one at or after t1; None: no start
    after t0 at all (the gap would be endless)."""
    i = bisect.bisect_right(starts, t0)
    prev = starts[i - 1] if i else t0
    worst = 0.0
    for t in starts[i:]:
        worst, prev = max(worst, t - prev), t
        if t >= t1:
            return round(worst, 3)
    return round(max(worst, t1 - prev), 3) if i < len(starts) else None


def failover_report(run: Run, phases: list[Phase]) -> dict[str, Any]:
    """Per primary kill and per queue: the job-start gap from the kill to the rejoin, and the 503
    window (first to last failed POST /jobs try, 503 or connection error, from this kill to the next)."""
    starts: dict[str, list[float]] = defaultdict(list)
    for e in run.tracker.execs.values():
        if e.q is not None:
            starts[e.q].append(e.t_start)
    for lst in starts.values():
        lst.sort()
    errs = sorted((t, what, s.queue) for ph in phases for s in ph.subs for t, what in s.errs)
    queues = run.cluster.queues
    ff = next((ph for ph in phases if ph.name == "faultfree"), None)
    base = None
    if ff is not None:
        gaps = [start_gap(starts[q], ff.t_start + 1.0, ff.t_submitted) for q in queues]
        base = max((g for g in gaps if g is not None), default=None)
    kills = sorted(run.kills, key=lambda k: k["t0"])
    first = kills[0]["t0"] if kills else math.inf
    out_kills = []
    for n, k in enumerate(kills):
        t0, t_next = k["t0"], kills[n + 1]["t0"] if n + 1 < len(kills) else math.inf
        mine = [(t, what, q) for t, what, q in errs if t0 <= t < t_next]
        per_q: dict[str, Any] = {}
        for q in queues:
            qe = [t for t, _, qq in mine if qq == q]
            per_q[q] = {
                "on_killed": q in k["queues_on_killed"],
                "start_gap_s": start_gap(starts[q], t0, k["t_rejoined"]),
                "errors": len(qe),
                "err_window_s": round(qe[-1] - qe[0], 2) if qe else 0.0,
                "first_err_s": round(qe[0] - t0, 2) if qe else None,
            }

        def worst(killed: bool, what: str, per_q: dict[str, Any] = per_q) -> float | None:
            vals = [v[what] for v in per_q.values() if v["on_killed"] == killed and v[what] is not None]
            return max(vals, default=None)

        kinds: dict[str, int] = defaultdict(int)
        for _, what, _ in mine:
            kinds[what] += 1
        out_kills.append(
            {
                "killed": k["killed"],
                "new_primary": k.get("new_primary"),
                "promote_s": round(k["t_promoted"] - t0, 2),
                "rejoin_s": round(k["t_rejoined"] - k["t_promoted"], 2),
                "global_keys_on_killed": k.get("global_keys_on_killed", []),
                "start_gap_s": {
                    "killed_queues": worst(True, "start_gap_s"),
                    "surviving_queues": worst(False, "start_gap_s"),
                },
                "err_window_s": {
                    "all": round(mine[-1][0] - mine[0][0], 2) if mine else 0.0,
                    "killed_queues": worst(True, "err_window_s"),
                    "surviving_queues": worst(False, "err_window_s"),
                },
                "errors": dict(kinds),
                "queues": per_q,
            }
            | ({"error": k["error"]} if "error" in k else {})
        )
    return {
        "baseline_start_gap_s": base,
        "errors_before_first_kill": sum(1 for t, _, _ in errs if t < first),
        "kills": out_kills,
    }


# -- the run ---------------------------------------------------------------------------------------------
def git_sha() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "") if sha.returncode == 0 else "unknown"


async def start(run: Run) -> None:
    c = run.cluster
    if c.mode == "single":
        c.start_redis()
        if not await run.wait_redis():
            raise RuntimeError(f"redis-server did not start: {(c.dir / 'redis.log').read_text()[-500:]}")
    else:
        await asyncio.to_thread(c.start_topology)
        log(f"{c.mode} up; queues {', '.join(c.queues)}; REDIS_MIN_REPLICAS_ACK={run.cfg.min_replicas_ack}")
    c.start_api()
    if not await run.wait_api():
        raise RuntimeError(f"gotaskq api did not start: {(c.dir / 'api.log').read_text()[-1000:]}")
    async with httpx.AsyncClient(base_url=c.api_url, timeout=10) as client:
        for q in c.queues:
            resp = await client.post(f"/queue/{q}", json={"external": True} if run.cfg.external else None)
            if resp.status_code not in (200, 201):
                raise RuntimeError(f"POST /queue/{q}: {resp.status_code} {resp.text}")
    for slot in range(run.cfg.workers):
        c.start_worker(slot)
    if run.cfg.external:
        c.start_recovery()
        # The fault-free phase measures the workers, not their start-up: wait until each one claims.
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(
            (p := c.worker_logs.get(w.pid)) is not None and p.exists() and b"external worker up" in p.read_bytes()
            for w in c.workers
            if w is not None
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("external workers did not start")
            await asyncio.sleep(0.1)


async def stop_workers(run: Run) -> None:
    """Graceful stop: each worker gets SIGTERM and grace + 10 s before SIGKILL."""
    procs = [p for p in [*run.cluster.workers, run.cluster.recovery] if p is not None]
    for p in procs:
        run.cluster.signal(p, signal.SIGTERM)
    for p in procs:
        if not await run.cluster.reap(p, run.cfg.grace + 10):
            run.cluster.signal(p, signal.SIGKILL)
            await run.cluster.reap(p, 5)


async def experiment(run: Run) -> dict[str, Any]:
    cfg = run.cfg
    await start(run)
    supervisor = asyncio.create_task(run.supervise())
    try:
        mix = random.Random(cfg.seed)
        qs = run.cluster.queues
        phases = [Phase("faultfree", make_jobs("ff", cfg.faultfree_jobs, mix, qs))] if cfg.faultfree_jobs else []
        phases.append(Phase("chaos", make_jobs("cx", cfg.n, mix, qs)))
        plan = cfg.fault_plan()
        run.rng.shuffle(plan)
        rate = cfg.effective_rate()
        if rate < cfg.rate:
            log(f"rate lowered to {rate:.1f}/s so that the {cfg.fault_seconds():.0f}s of faults fit the submissions")
        for ph in phases:
            await run_phase(run, ph, plan if ph.name == "chaos" else [], rate)
        async with run.redis_client() as r:
            scan = await scan_redis(r)  # on a Cluster: scan_iter SCANs every primary
            info = await r.info("server")
        if isinstance(run.cluster.rset, RedisClusterSet):
            info = next(iter(info.values()), {}) if info and isinstance(next(iter(info.values())), dict) else info
    finally:
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
    await stop_workers(run)
    out: dict[str, Any] = {"ok": False, "seed": cfg.seed, "n": cfg.n, "workers": cfg.workers, "topology": cfg.topology}
    if cfg.external:
        out["external"] = cfg.external
    if cfg.topology != "single":
        out["min_replicas_ack"] = cfg.min_replicas_ack
    out |= analyse(run, phases, scan)
    if run.kills:
        out["failover"] = failover_report(run, phases)
    out["ok"] = not out["violations"]
    out["redis_version"] = info.get("redis_version")
    save_history(run, phases, out)
    return out


def save_history(run: Run, phases: list[Phase], result: dict[str, Any]) -> None:
    """The run's history next to its logs, for a look after --keep (or after a failed run)."""
    d = run.cluster.dir
    with (d / "submissions.jsonl").open("w") as f:
        for ph in phases:
            for s in ph.subs:
                f.write(json.dumps(asdict(s)) + "\n")
    history = {
        "faults": [asdict(x) for x in run.faults],
        "primary_kills": run.kills,
        "queues": list(run.cluster.queues),
        "crashes": run.crashes,
        "phases": [{k: v for k, v in asdict(ph).items() if k != "subs"} for ph in phases],
        "worker_logs": {str(pid): str(path) for pid, path in run.cluster.worker_logs.items()},
        "result": result,
    }
    (d / "history.json").write_text(json.dumps(history, indent=1))


async def amain(cfg: Config, workdir: Path) -> dict[str, Any]:
    run = Run(cfg, Cluster(cfg, workdir), ExecTracker(workdir / "exec"), random.Random(cfg.seed + 1))
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await asyncio.wait_for(experiment(run), cfg.max_time)
    finally:
        run.cluster.stop_all()


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    log(f"config {json.dumps(asdict(cfg))}")
    t0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="gotaskq-chaos-"))
    result: dict[str, Any] = {"ok": False, "seed": cfg.seed}
    try:
        result = asyncio.run(amain(cfg, workdir))
    except (asyncio.CancelledError, KeyboardInterrupt):
        log("interrupted: every process it started is stopped")
        result["error"] = "interrupted"
    except TimeoutError:
        log(f"the run took longer than --max-time {cfg.max_time:g}s")
        result["error"] = "max_time exceeded"
    except Exception as exc:
        log(f"harness failed: {type(exc).__name__}: {exc}")
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if cfg.keep or not result["ok"]:
            log(f"kept the temp dir for inspection: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["elapsed_s"] = round(time.monotonic() - t0, 1)
    result["git_sha"] = git_sha()
    result["config"] = {k: v for k, v in asdict(cfg).items() if k != "keep"}
    print(json.dumps(result, separators=(",", ":")), flush=True)
    if "error" in result:
        return 2
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
