#!/usr/bin/env python3
"""External workers over HTTP (issue 13): claim -> complete round trips per second through a
real `gotaskq api` process with 1 and 8 worker threads (each its own gotaskq.client.Client,
claim max 1 with a long-poll, then complete), and the long-poll pickup latency: an idle
worker waits in a claim, a job is enqueued, and the time until the claim answers is taken.
Starts its own redis-server and API process on free loopback ports; stops them by pid.

    .venv/bin/python scripts/bench_external.py [--n 2000] [--workers 1,8] [--samples 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import ROOT, _http_ok, flushall, free_port, redis_server, stop_process

from gotaskq.client import Client


def start_api(url: str) -> tuple[subprocess.Popen[Any], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "ADMIN_TOKEN", "WORKER_TOKEN")}
    env |= {"REDIS_URL": url, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING", "MAX_QUEUE_DEPTH": "0"}
    api = subprocess.Popen([sys.executable, "-m", "gotaskq", "api"], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not _http_ok(f"{base}/healthz"):
        if api.poll() is not None or time.monotonic() > deadline:
            stop_process(api, grace_s=5)
            raise RuntimeError("gotaskq api did not start")
        time.sleep(0.05)
    return api, base


def round_trips(base: str, n: int, workers: int) -> float:
    with Client(base) as c:
        c.create_queue("ext", external=True)
        for start in range(0, n, 500):
            c._call(
                "POST", "/jobs/batch", {"jobs": [{"type": "x", "queue": "ext"} for _ in range(min(500, n - start))]}
            )
    done = [0] * workers

    def work(i: int) -> None:
        with Client(base) as w:
            while True:
                jobs = w.claim("ext", max=1, wait=0.5)
                if not jobs:
                    return
                w.complete(jobs[0]["id"], jobs[0]["lease_token"], result=1)
                done[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    elapsed = time.perf_counter() - t0 - 0.5  # the last claim of each thread waited 0.5 s for nothing
    assert sum(done) == n, (sum(done), n)
    return round(n / elapsed, 1)


def pickup_latency(base: str, samples: int) -> dict[str, float]:
    lat: list[float] = []
    with Client(base) as producer, Client(base) as worker:
        producer.create_queue("lp", external=True)
        for _ in range(samples):
            got: list[float] = []
            sent: list[float] = []

            def wait_for_one(got: list[float] = got) -> None:
                jobs = worker.claim("lp", max=1, wait=10)
                got.append(time.perf_counter())
                worker.complete(jobs[0]["id"], jobs[0]["lease_token"])

            t = threading.Thread(target=wait_for_one)
            t.start()
            time.sleep(0.02)  # the claim is waiting now
            sent.append(time.perf_counter())
            producer.enqueue("x", queue="lp")
            t.join(timeout=15)
            lat.append((got[0] - sent[0]) * 1000)
    lat.sort()
    return {"p50": round(lat[len(lat) // 2], 2), "p99": round(lat[int(len(lat) * 0.99)], 2), "samples": len(lat)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--workers", default="1,8")
    ap.add_argument("--samples", type=int, default=200)
    a = ap.parse_args()
    out: dict[str, Any] = {"bench": "external", "n": a.n, "round_trips_per_s": {}}
    with redis_server() as url:
        api, base = start_api(url)
        try:
            for w in (int(x) for x in a.workers.split(",")):
                flushall(url)
                out["round_trips_per_s"][str(w)] = round_trips(base, a.n, w)
            flushall(url)
            out["long_poll_pickup_ms"] = pickup_latency(base, a.samples)
        finally:
            stop_process(api, grace_s=10)
    out["cpu_count"] = os.cpu_count()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
