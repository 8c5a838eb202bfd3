"""Admin UI benchmark: time to first render in headless Chromium, over a big data set.

Starts its own redis-server and ``gotaskq api`` (the same HTTP app as ``serve``, without the
worker pool, so nothing moves while it measures), creates QUEUES queues with a few waiting,
done and failed jobs each and DEAD dead jobs in the first queue, then loads each page RUNS
times in a fresh tab (after one warm-up load) and reads two marks the UI sets
(``performance.now()``, i.e. from navigation start): ``data-rendered-at`` when the first data
render is on screen, and for the overview ``data-stats-rendered-at`` when every queue's rates
are filled in. Prints one JSON line (milliseconds).

Usage: .venv/bin/python scripts/bench_admin.py [--queues 100] [--dead 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

from gotaskq import App, Settings
from gotaskq.backends.base import Completion

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHUNK = 1000
FAIL_PARALLEL = 20
TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.ConnectionError, httpx.HTTPError):
            pass
        time.sleep(0.05)
    raise SystemExit(f"bench_admin: {what} did not start within {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@contextmanager
def services(workdir: Path) -> Iterator[tuple[str, str]]:
    """A redis-server and a ``gotaskq api`` (admin routes mounted); yields (redis url, http url)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench_admin: redis-server is not installed")
    rport, hport = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{rport}/0"
    rproc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(rport), "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sproc: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: redis.Redis(port=rport).ping(), "redis-server")
        command = [sys.executable, "-m", "gotaskq", "api"]
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "HOST": "127.0.0.1",
            "PORT": str(hport),
            "LOG_LEVEL": "WARNING",
            "MAX_QUEUE_DEPTH": "0",
        }
        for name in ("API_TOKEN", "ADMIN_TOKEN", "ADMIN_READONLY", "GOTASKQ_HANDLERS"):
            env.pop(name, None)
        with (workdir / "serve.log").open("wb") as log:
            sproc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{hport}"
        wait_until(lambda: httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200, "gotaskq api")
        yield redis_url, url
    finally:
        if sproc is not None:
            stop(sproc)
        stop(rproc)


async def populate(redis_url: str, queues: list[str], dead: int) -> None:
    """Per queue: 5 pending, 2 scheduled, 2 done, 1 failed (retrying); ``dead`` dead in queues[0]."""
    app = App(Settings(redis_url=redis_url, max_queue_depth=0), builtins=False)
    await app.start()
    try:
        backend = app.backend
        for name in queues:
            await app.create_queue(name)
        specs = []
        for name in queues:
            specs += [app.new_job("noop", {"n": i}, queue=name, priority=10) for i in range(3)]
            specs += [app.new_job("noop", {"n": i}, queue=name) for i in range(5)]
            specs += [app.new_job("noop", {"n": i}, queue=name, delay=3600) for i in range(2)]
        await app.submit_many(specs)
        for name in queues:  # the three top-priority jobs: two done, one failed with retries left
            batch = await backend.claim(name, 3, 60_000)
            done = [Completion(c.job.id, c.token, b"null") for c in batch.jobs[:2]]
            await backend.complete(name, done)
            last = batch.jobs[2]
            await backend.fail(last.job, last.token, "bench: transient error", 3_600_000)
        target = queues[0]
        for start in range(0, dead, CHUNK):
            n = min(CHUNK, dead - start)
            payload = {"order": start, "items": list(range(5)), "note": "benchmark dead job"}
            await app.submit_many(
                [app.new_job("noop", payload, queue=target, max_retries=0, priority=10) for _ in range(n)]
            )
            batch = await backend.claim(target, n, 600_000)
            for i in range(0, len(batch.jobs), FAIL_PARALLEL):  # the client pool is bounded
                part = batch.jobs[i : i + FAIL_PARALLEL]
                await asyncio.gather(*(backend.fail(c.job, c.token, "bench: boom " * 8, 0) for c in part))
    finally:
        await app.close()


def measure(url: str, runs: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    pages = {"overview": ("#/", "overview"), "dlq_all": ("#/dlq", "dlq"), "dlq_queue": ("#/dlq/bench-000", "dlq")}
    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        out["chromium"] = browser.version
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        for key, (hash_, view) in pages.items():
            first: list[float] = []
            stats: list[float] = []
            rows = 0
            for _ in range(runs + 1):  # the first load warms caches and is not counted
                page = context.new_page()
                page.goto(f"{url}/admin{hash_}")
                page.wait_for_selector(f'body[data-rendered="1"][data-view="{view}"]', timeout=TIMEOUT_MS)
                first.append(float(page.evaluate("document.body.dataset.renderedAt")))
                if view == "overview":
                    page.wait_for_selector('body[data-stats-rendered="1"]', timeout=TIMEOUT_MS)
                    stats.append(float(page.evaluate("document.body.dataset.statsRenderedAt")))
                rows = page.locator("main tbody tr").count()
                page.close()
            out[f"{key}_first_render_ms"] = summary(first[1:])
            if stats:
                out[f"{key}_rates_filled_ms"] = summary(stats[1:])
            out[f"{key}_rows"] = rows
        browser.close()
    return out


def summary(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 1), "min": round(min(xs), 1), "max": round(max(xs), 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--queues", type=int, default=100)
    p.add_argument("--dead", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"bench_admin: {CHROMIUM} is not installed")
    queues = [f"bench-{i:03d}" for i in range(args.queues)]
    with tempfile.TemporaryDirectory(prefix="gotaskq-bench-admin-") as tmp, services(Path(tmp)) as (redis_url, url):
        t0 = time.perf_counter()
        asyncio.run(populate(redis_url, queues, args.dead))
        setup_s = time.perf_counter() - t0
        counts = httpx.get(f"{url}/queue", timeout=30).json()["queues"]
        result = {
            "bench": "admin_ui",
            "queues": len(counts),
            "dead_jobs": sum(q["dead"] for q in counts),
            "runs": args.runs,
            "setup_s": round(setup_s, 2),
            **measure(url, args.runs),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
