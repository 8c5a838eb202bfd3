"""Dramatiq side of `bench_core.py --peers`: runs in Dramatiq's own venv.

Enqueue: N x `Actor.send` from C threads (Dramatiq is synchronous). Its RedisBroker has no
bulk enqueue (group/pipeline send message by message), so bulk_enqueue_per_s is null and the
worker processes the jobs enqueued one by one.
Process: one `dramatiq.Worker(worker_threads=C)` in this process, default middleware.
Counted by Dramatiq's own bookkeeping: a middleware's `after_process_message` hook (the one its
Prometheus middleware counts with) must see N successes and no failure, and then the broker's
`qsize` (waiting messages + unacked ones) must reach 0, i.e. every message is acked.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any

import dramatiq
import peer_common as pc
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

SYSTEM = "dramatiq"
QUEUE = "bench"


class Outcomes(Middleware):
    """Counts finished messages; sets ``all_done`` once ``target`` succeeded."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.succeeded = 0
        self.failed = 0
        self.all_done = threading.Event()
        self._lock = threading.Lock()

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        with self._lock:
            if exception is None:
                self.succeeded += 1
            else:
                self.failed += 1
            if self.succeeded + self.failed >= self.target:
                self.all_done.set()


def noop(payload: dict[str, object]) -> None:
    return None


def main() -> None:
    args = pc.parse_args()
    n, c = args.n, args.concurrency
    outcomes = Outcomes(n)
    broker = RedisBroker(url=args.redis_url)
    broker.add_middleware(outcomes)
    dramatiq.set_broker(broker)
    actor = dramatiq.actor(noop, broker=broker, queue_name=QUEUE, max_retries=0)
    payloads = [pc.payload(i) for i in range(n)]

    def caller(share: list[dict[str, object]]) -> None:
        for p in share:
            actor.send(p)

    pc.log(SYSTEM, f"enqueue {n} one by one from {c} threads")
    with ThreadPoolExecutor(max_workers=c) as pool:
        t0 = time.perf_counter()
        list(pool.map(caller, pc.slices(payloads, c)))
        enqueue_rate = pc.rate(n, time.perf_counter() - t0)
    queued = broker.do_qsize(QUEUE)
    if queued != n:
        raise RuntimeError(f"expected {n} queued messages, found {queued}")

    pc.log(SYSTEM, f"process {n} with worker_threads={c}")
    cpu = pc.DrainCpu(args.redis_pid)
    cpu.start()
    t0 = time.perf_counter()
    worker = dramatiq.Worker(broker, worker_threads=c)
    worker.start()
    try:
        if not outcomes.all_done.wait(args.timeout):
            raise TimeoutError(f"only {outcomes.succeeded} of {n} processed in {args.timeout:g}s")
        pc.wait_until(lambda: broker.do_qsize(QUEUE) == 0, args.timeout, "all messages acked")
        processed_rate = pc.rate(n, time.perf_counter() - t0)
        cpu.stop()
    finally:
        worker.stop()
    if outcomes.succeeded != n or outcomes.failed:
        raise RuntimeError(f"dramatiq succeeded={outcomes.succeeded} failed={outcomes.failed}")
    pc.emit(
        SYSTEM,
        args,
        enqueue_rate,
        None,
        processed_rate,
        version=version("dramatiq"),
        counted_by="after_process_message + qsize==0",
        redis_py=version("redis"),
        **cpu.figures(n),
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
