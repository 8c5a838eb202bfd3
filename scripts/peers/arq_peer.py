"""arq side of `bench_core.py --peers`: runs in arq's own venv (arq pins redis<6).

Enqueue: N x `ArqRedis.enqueue_job` from C concurrent asyncio tasks. arq has no bulk enqueue,
so bulk_enqueue_per_s is null and the worker processes the jobs enqueued one by one.
Process: one `arq.worker.Worker(max_jobs=C, poll_delay=0.01, burst=True)` in this process.
Counted by arq's own bookkeeping: `Worker.jobs_complete` (incremented once the job's result is
written) must reach N with `jobs_failed == 0`, and the burst worker only returns once the
queue's sorted set is empty (arq removes a job from it when it finishes).
"""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version
from typing import Any

import peer_common as pc
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import default_queue_name
from arq.worker import Worker

SYSTEM = "arq"


async def noop(ctx: dict[str, Any], payload: dict[str, object]) -> None:
    return None


async def run() -> None:
    args = pc.parse_args()
    n, c = args.n, args.concurrency
    settings = RedisSettings.from_dsn(args.redis_url)
    pool = await create_pool(settings)
    payloads = [pc.payload(i) for i in range(n)]

    async def caller(share: list[dict[str, object]]) -> None:
        for p in share:
            await pool.enqueue_job("noop", p)

    pc.log(SYSTEM, f"enqueue {n} one by one from {c} tasks")
    t0 = time.perf_counter()
    await asyncio.gather(*(caller(s) for s in pc.slices(payloads, c)))
    enqueue_rate = pc.rate(n, time.perf_counter() - t0)
    queued = await pool.zcard(default_queue_name)
    if queued != n:
        raise RuntimeError(f"expected {n} queued jobs, found {queued}")
    await pool.aclose()

    pc.log(SYSTEM, f"process {n} with max_jobs={c} (burst)")
    cpu = pc.DrainCpu(args.redis_pid)
    cpu.start()
    t0 = time.perf_counter()
    worker = Worker(
        functions=[noop],
        redis_settings=settings,
        burst=True,
        max_jobs=c,
        poll_delay=0.01,
        handle_signals=False,
        log_results=False,
    )
    await asyncio.wait_for(worker.async_run(), args.timeout)
    processed_rate = pc.rate(n, time.perf_counter() - t0)
    cpu.stop()
    complete, failed = worker.jobs_complete, worker.jobs_failed
    left = await worker.pool.zcard(default_queue_name)
    await worker.close()
    if complete != n or failed or left:
        raise RuntimeError(f"arq finished with jobs_complete={complete} jobs_failed={failed} queued={left}")
    pc.emit(
        SYSTEM,
        args,
        enqueue_rate,
        None,
        processed_rate,
        version=version("arq"),
        counted_by="Worker.jobs_complete",
        redis_py=version("redis"),
        **cpu.figures(n),
    )


if __name__ == "__main__":
    asyncio.run(run())
