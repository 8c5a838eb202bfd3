"""What every peer module shares: the payload, the arguments, the timer, the CPU meter of the
drain (this process and redis-server, from /proc/<pid>/stat) and the JSON line.

Standard library only: it runs inside each peer's own virtualenv (never the project's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable

PAYLOAD_BYTES = 50  # keep equal to bench_core.PAYLOAD_BYTES: the same workload everywhere


def payload(i: int) -> dict[str, object]:
    """A ~50-byte JSON object: {"i": i, "pad": "xxx..."}."""
    base = len(json.dumps({"i": i, "pad": ""}, separators=(",", ":")))
    return {"i": i, "pad": "x" * max(0, PAYLOAD_BYTES - base)}


def slices(items: list[dict[str, object]], callers: int) -> list[list[dict[str, object]]]:
    """One share per concurrent caller; together they enqueue every item exactly once."""
    return [items[k::callers] for k in range(callers)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--redis-url", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed for the processing phase")
    p.add_argument("--redis-pid", type=int, default=None, help="redis-server's pid, for its CPU per job")
    return p.parse_args(argv)


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DrainCpu:
    """CPU of this process (the worker runs in it) and of redis-server over the drain."""

    def __init__(self, redis_pid: int | None) -> None:
        self.redis_pid = redis_pid
        self.before = (0.0, 0.0)
        self.used = (0.0, 0.0)

    def _now(self) -> tuple[float, float]:
        return cpu_s(os.getpid()), cpu_s(self.redis_pid) if self.redis_pid else 0.0

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> None:
        after = self._now()
        self.used = (after[0] - self.before[0], after[1] - self.before[1])

    def figures(self, jobs: int) -> dict[str, object]:
        per = 1e6 / max(jobs, 1)
        return {
            "worker_cpu_us_per_job": round(self.used[0] * per, 1),
            "redis_cpu_us_per_job": round(self.used[1] * per, 1) if self.redis_pid else None,
            "cpu_measured_over": "drain; worker = the peer process (/proc/self/stat)",
        }


def log(system: str, msg: str) -> None:
    print(f"[bench:{system}] {msg}", file=sys.stderr, flush=True)


def wait_until(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g}s")
        time.sleep(interval)


def rate(n: int, seconds: float) -> float:
    return round(n / max(seconds, 1e-9), 1)


def emit(
    system: str,
    args: argparse.Namespace,
    enqueue_per_s: float,
    bulk_enqueue_per_s: float | None,
    processed_per_s: float,
    **extra: object,
) -> None:
    line = {
        "system": system,
        "n": args.n,
        "concurrency": args.concurrency,
        "enqueue_per_s": enqueue_per_s,
        "bulk_enqueue_per_s": bulk_enqueue_per_s,
        "processed_per_s": processed_per_s,
        "python_version": platform.python_version(),
        **extra,
    }
    print(json.dumps(line), flush=True)
