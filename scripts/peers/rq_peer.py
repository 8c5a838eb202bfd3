"""RQ side of `bench_core.py --peers`: runs in RQ's own venv.

Enqueue: N x `Queue.enqueue` from C threads (RQ is synchronous); bulk: `Queue.enqueue_many`
in chunks of 1000 (one pipeline per chunk).
Process: one `SimpleWorker.work(burst=True)` in this process. RQ runs one job at a time per
worker: that IS its one-process behaviour, so the concurrency argument does not apply to it.
Counted by RQ's own bookkeeping: the queue's FinishedJobRegistry must hold N jobs, the
FailedJobRegistry none, and the queue must be empty.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import peer_common as pc
from redis import Redis
from rq import Queue, SimpleWorker

SYSTEM = "rq"
QUEUE = "bench"
FUNC = "rq_peer.noop"  # by import path: the worker imports this module (PYTHONPATH=scripts/peers)
BULK = 1000


def noop(payload: dict[str, object]) -> None:
    return None


def main() -> None:
    args = pc.parse_args()
    n, c = args.n, args.concurrency
    conn = Redis.from_url(args.redis_url)
    q = Queue(QUEUE, connection=conn)
    payloads = [pc.payload(i) for i in range(n)]

    def caller(share: list[dict[str, object]]) -> None:
        for p in share:
            q.enqueue(FUNC, p)

    pc.log(SYSTEM, f"enqueue {n} one by one from {c} threads")
    with ThreadPoolExecutor(max_workers=c) as pool:
        t0 = time.perf_counter()
        list(pool.map(caller, pc.slices(payloads, c)))
        enqueue_rate = pc.rate(n, time.perf_counter() - t0)
    if q.count != n:
        raise RuntimeError(f"expected {n} queued jobs, found {q.count}")
    conn.flushall()

    pc.log(SYSTEM, f"bulk enqueue {n} in chunks of {BULK}")
    t0 = time.perf_counter()
    for start in range(0, n, BULK):
        q.enqueue_many([Queue.prepare_data(FUNC, args=(p,)) for p in payloads[start : start + BULK]])
    bulk_rate = pc.rate(n, time.perf_counter() - t0)
    if q.count != n:
        raise RuntimeError(f"expected {n} queued jobs after bulk enqueue, found {q.count}")

    pc.log(SYSTEM, f"process {n} with one SimpleWorker (burst)")
    cpu = pc.DrainCpu(args.redis_pid)
    cpu.start()
    t0 = time.perf_counter()
    SimpleWorker([q], connection=conn).work(burst=True, logging_level="WARNING")
    processed_rate = pc.rate(n, time.perf_counter() - t0)
    cpu.stop()
    finished, failed, left = q.finished_job_registry.count, q.failed_job_registry.count, q.count
    if finished != n or failed or left:
        raise RuntimeError(f"rq finished={finished} failed={failed} queued={left}")
    pc.emit(
        SYSTEM,
        args,
        enqueue_rate,
        bulk_rate,
        processed_rate,
        version=version("rq"),
        counted_by="FinishedJobRegistry.count",
        effective_concurrency=1,
        redis_py=version("redis"),
        **cpu.figures(n),
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
