#!/usr/bin/env python3
"""POST /jobs requests/s of `gotaskq api` against the bare Starlette + uvicorn endpoint, same `hey` load.

Two servers on 127.0.0.1, both one uvicorn process with loop "auto" (uvloop when installed, as
here), access log off, log level warning:

- ``python -m gotaskq api`` (REDIS_URL = this script's own redis-server, NUM_WORKERS=0,
  LOG_LEVEL=WARNING, no tokens): every 201 is a job stored in Redis. Its HTTP protocol is
  gotaskq's (gotaskq.http_protocol: uvicorn's httptools one, a response in one write);
- ``scripts/bare_endpoint.py``: reads the body, answers a constant job-sized 201, on uvicorn's
  own http "auto" (httptools when installed, two writes a response); with ``--bare-one-write``
  on gotaskq's protocol too, to tell what the protocol alone is worth.

Per run (``--runs``, default 3; the two servers alternate, gotaskq first): FLUSHALL, a warm-up of
``--warmup`` requests (not counted), then ``hey -n N -c C -m POST -T application/json
-d '{"type":"noop","payload":{}}'``. Every answer must be a 201 (and for gotaskq, N jobs must be
pending afterwards). Per run: requests/s, p50/p99 latency, status codes, the server process's
CPU µs per request (/proc/<pid>/stat over the hey run), redis-server's (gotaskq), the script
calls Redis answered in the run (gotaskq: its coalesced enqueue calls) and hey's own
(it shares the 2 cores: getrusage of children). Summary: min/median/max of each, and the ratio
gotaskq / bare (of the medians, and min/median/max of the per-run ratios).

Its own redis-server on a free loopback port in a temp dir (bench_core's helpers); both servers
are stopped by pid, also on error. ONE JSON line on stdout, progress on stderr.

    .venv/bin/python scripts/bench_http.py [--n 20000] [--c 50] [--runs 3] [--bare-one-write]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import ROOT, flushall, free_port, git_sha, log, redis_pid, redis_server, stop_process

CLK_TCK = os.sysconf("SC_CLK_TCK")
BODY = '{"type":"noop","payload":{}}'
STARTUP_S = 30.0


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def us_per(seconds: float, n: int) -> float:
    return round(seconds * 1e6 / max(n, 1), 1)


def spread(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    return {"min": round(min(xs), 2), "median": round(statistics.median(xs), 2), "max": round(max(xs), 2)}


def post_ok(url: str) -> bool:
    req = urllib.request.Request(url, data=BODY.encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=1) as r:
            return bool(r.status == 201)
    except (OSError, urllib.error.HTTPError):
        return False


def start_server(name: str, cmd: list[str], env: dict[str, str], url: str, logdir: Path) -> subprocess.Popen[bytes]:
    with open(logdir / f"{name}.log", "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_S
    while not post_ok(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (logdir / f"{name}.log").read_text(errors="replace")[-1500:]
            stop_process(proc, grace_s=5)
            raise RuntimeError(f"{name} did not start (exit {proc.returncode}):\n{tail}")
        time.sleep(0.05)
    log(f"{name}: pid {proc.pid} answering on {url}")
    return proc


def hey(url: str, n: int, c: int, timeout: float) -> tuple[str, float]:
    """Run hey once; its output and the CPU seconds it used."""
    binary = shutil.which("hey") or "hey"
    cmd = [binary, "-n", str(n), "-c", str(c), "-m", "POST", "-T", "application/json", "-d", BODY, url]
    before = children_cpu_s()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
    return out, children_cpu_s() - before


def parse_hey(out: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    p50 = re.search(r"^\s+50%+ in ([0-9.]+) secs", out, re.M)
    p99 = re.search(r"^\s+99%+ in ([0-9.]+) secs", out, re.M)
    codes = {k: int(v) for k, v in re.findall(r"^\s+\[(\d{3})\]\s+(\d+) responses", out, re.M)}
    errors = re.search(r"Error distribution:(.*)", out, re.S)
    return {
        "rps": float(rps.group(1)) if rps else None,
        "p50_ms": round(float(p50.group(1)) * 1000, 2) if p50 else None,
        "p99_ms": round(float(p99.group(1)) * 1000, 2) if p99 else None,
        "status_codes": codes,
        "errors": errors.group(1).strip()[:500] if errors else None,
    }


def measure(
    name: str, proc: subprocess.Popen[bytes], url: str, redis_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    flushall(redis_url)
    hey(url, args.warmup, min(args.c, args.warmup), timeout=120)
    flushall(redis_url)
    rpid = redis_pid(redis_url)
    calls0 = script_calls(redis_url)
    server0, redis0 = cpu_s(proc.pid), cpu_s(rpid)
    out, hey_cpu = hey(url, args.n, args.c, timeout=600)
    server_cpu, redis_cpu = cpu_s(proc.pid) - server0, cpu_s(rpid) - redis0
    res = parse_hey(out)
    if proc.poll() is not None:
        raise RuntimeError(f"{name} exited with {proc.returncode} during the run")
    if res["rps"] is None or res["status_codes"] != {"201": args.n}:
        raise RuntimeError(f"{name}: status codes {res['status_codes']}, errors {res['errors']}\n{out[-1500:]}")
    if name == "gotaskq":
        with redis.Redis.from_url(redis_url) as r:
            stored = int(r.dbsize())
        if stored < args.n:
            raise RuntimeError(f"gotaskq answered {args.n} x 201 but Redis holds only {stored} keys")
    del res["errors"]
    res["server_cpu_us_per_request"] = us_per(server_cpu, args.n)
    res["redis_cpu_us_per_request"] = us_per(redis_cpu, args.n) if name == "gotaskq" else None
    # how many requests an enqueue call carried (gotaskq coalesces concurrent POST /jobs)
    res["script_calls"] = script_calls(redis_url) - calls0 if name == "gotaskq" else None
    res["hey_cpu_us_per_request"] = us_per(hey_cpu, args.n)
    flushall(redis_url)
    return res


def ready_for_hey(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check the load arguments (--n, --c, --runs, --warmup) and that hey is installed, and make
    SIGTERM run the finally blocks that stop the processes started (bench_http, bench_e2e)."""
    if args.runs < 1 or args.c < 1 or args.n < args.c or args.warmup < 1:
        p.error("--runs, --c and --warmup must be positive and --n at least --c")
    if shutil.which("hey") is None:
        raise SystemExit("hey is not installed (apt-get install hey)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def plain_env() -> dict[str, str]:
    """This environment without what would change what a gotaskq process does per request
    (tokens, handler modules, strict types)."""
    unset = ("API_TOKEN", "ADMIN_TOKEN", "WORKER_TOKEN", "GOTASKQ_HANDLERS", "STRICT_TYPES")
    return {k: v for k, v in os.environ.items() if k not in unset}


def script_calls(redis_url: str) -> int:
    """EVALSHA calls redis-server has answered (INFO commandstats)."""
    with redis.Redis.from_url(redis_url) as r:
        stats: dict[str, Any] = r.info("commandstats")  # type: ignore[assignment]
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def uvicorn_setup(bare_one_write: bool) -> str:
    """What loop/http "auto" picks in this venv (both servers run in it), and the HTTP protocol
    each server runs."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    bare = "the same" if bare_one_write else f"uvicorn's own {http}"
    return (
        f"1 process each, loop/http auto = {loop}/{http}, access log off, log level warning; gotaskq's "
        f"http = httptools with a response in one write (gotaskq.http_protocol), bare's = {bare}"
    )


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "rps",
        "p50_ms",
        "p99_ms",
        "server_cpu_us_per_request",
        "redis_cpu_us_per_request",
        "hey_cpu_us_per_request",
        "script_calls",
    )
    return {k: spread([r[k] for r in runs if r.get(k) is not None]) for k in keys}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="requests per hey run (default 20000)")
    p.add_argument("--c", type=int, default=50, help="hey's concurrent callers (default 50)")
    p.add_argument("--runs", type=int, default=3, help="runs per server, alternating (default 3)")
    p.add_argument("--warmup", type=int, default=500, help="requests before each run, not counted (default 500)")
    p.add_argument(
        "--bare-one-write",
        action="store_true",
        help="the bare endpoint runs gotaskq's one-write HTTP protocol too (default: uvicorn's own)",
    )
    args = p.parse_args()
    ready_for_hey(p, args)
    procs: list[subprocess.Popen[bytes]] = []
    with redis_server() as redis_url, tempfile.TemporaryDirectory(prefix="gotaskq-bench-http-") as tmp:
        with redis.Redis.from_url(redis_url) as r:
            redis_version = r.info("server")["redis_version"]
        try:
            gport, bport = free_port(), free_port()
            env = plain_env()
            genv = env | {
                "REDIS_URL": redis_url,
                "NUM_WORKERS": "0",
                "HOST": "127.0.0.1",
                "PORT": str(gport),
                "LOG_LEVEL": "WARNING",
            }
            servers = {
                "gotaskq": (
                    [sys.executable, "-m", "gotaskq", "api"],
                    genv,
                    f"http://127.0.0.1:{gport}/jobs",
                ),
                "bare": (
                    [
                        sys.executable,
                        str(Path(__file__).resolve().parent / "bare_endpoint.py"),
                        "--port",
                        str(bport),
                        *(["--one-write"] if args.bare_one_write else []),
                    ],
                    env,
                    f"http://127.0.0.1:{bport}/jobs",
                ),
            }
            running = {}
            for name, (cmd, e, url) in servers.items():
                running[name] = start_server(name, cmd, e, url, Path(tmp))
                procs.append(running[name])
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
            for k in range(args.runs):
                for name, (_, _, url) in servers.items():
                    log(f"{name}: run {k + 1} of {args.runs}: hey -n {args.n} -c {args.c} POST /jobs")
                    res = measure(name, running[name], url, redis_url, args)
                    log(f"{name}: {res['rps']} req/s, server {res['server_cpu_us_per_request']} µs/request")
                    runs[name].append(res)
        finally:
            for proc in procs:
                stop_process(proc, grace_s=15)
    ratios = [g["rps"] / b["rps"] for g, b in zip(runs["gotaskq"], runs["bare"], strict=True)]
    sums = {name: summary(rs) for name, rs in runs.items()}
    line = {
        "bench": "http",
        "n": args.n,
        "c": args.c,
        "runs": args.runs,
        "body": BODY,
        "uvicorn": uvicorn_setup(args.bare_one_write),
        "cores": os.cpu_count(),
        "redis_version": redis_version,
        "python_version": platform.python_version(),
        **git_sha(),
        "gotaskq": {"runs": runs["gotaskq"], "summary": sums["gotaskq"]},
        "bare": {"runs": runs["bare"], "summary": sums["bare"]},
        "ratio_gotaskq_vs_bare_rps": {
            "of_medians": round(sums["gotaskq"]["rps"]["median"] / sums["bare"]["rps"]["median"], 3),
            "per_run": spread(ratios),
        },
        "gotaskq_api_cpu_us_per_request": sums["gotaskq"]["server_cpu_us_per_request"],
        "bare_cpu_us_per_request": sums["bare"]["server_cpu_us_per_request"],
    }
    print(json.dumps(line), flush=True)
    log(
        f"gotaskq {sums['gotaskq']['rps']} req/s vs bare {sums['bare']['rps']} req/s; "
        f"ratio {line['ratio_gotaskq_vs_bare_rps']}; API CPU µs/request {line['gotaskq_api_cpu_us_per_request']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
