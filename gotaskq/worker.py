"""The worker pool: one per process, NUM_WORKERS handlers at most, round-robin across queues."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import secrets
import socket
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .backends.base import Backend, ClaimBatch, Claimed, Completion, FailOutcome
from .backoff import retry_delay
from .errors import BackendUnavailable, GotaskqError, QueueNotFound, StaleLease
from .job import Job, bounded_result, iso_ms, now_ms, progress_entry
from .loop_metrics import CounterChild, HistogramChild
from .scheduler import Scheduler
from .states import JobStatus

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("gotaskq.worker")
R = TypeVar("R")
QUEUE_REFRESH_S = 1.0
IDLE_POLL_S = 1.0
COMPLETION_BATCH = 500  # completions in one call at most (the backend splits them by CHUNK)
# Completion calls in flight per queue: while one call (and the claim riding on it) is on its
# way, the jobs the other one claimed run. With one call, a busy worker and Redis took turns.
FLUSHES_PER_QUEUE = 2
RECOVERY_SLACK_S = 1.0
IDLE_MARK_S = 0.25  # a queue idle this long leaves the active set (see _idle_long)
MIN_SLEEP_S = 0.001  # a floor under every idle sleep: no spinning, whatever the clocks say
BOOKKEEPING_RETRY_S = 0.25
HOUSEKEEPING_S = 60.0
RECOVERY_PASSES = 100  # recover_expired calls per queue per pass at most (each takes a few hundred jobs)


class UnknownJobType(GotaskqError):
    code = "unknown_job_type"


@dataclass(slots=True)
class _Flush:
    batch: list[tuple[Claimed, Completion]]  # completions to write in one call
    want: int  # jobs to claim on the way back, their slots reserved


@dataclass(slots=True)
class _QueueMetrics:
    """A queue's per-job metric children, found with one lookup (three tuple-keyed lookups,
    with now_ms(), were ~1 us of a no-op job)."""

    wait: HistogramChild
    duration: HistogramChild
    done: CounterChild


@dataclass(slots=True)
class _InFlight:
    claimed: Claimed
    lease_until_ms: int = 0  # this process's view of the lease deadline (for GET /workers)
    lost: bool = False  # a heartbeat found the lease gone: our writes will be refused


class _Handoff:
    """Claimed jobs to the runners. A runner that takes a job while more wait first wakes one
    other runner, so a handler that awaits never holds up the jobs behind it; but one wake-up
    at a time, so a runner whose handlers return at once runs the jobs behind its own without a
    wake-up for each. (A future and a task switch per job, as before, cost ~3 us of a no-op
    job's ~37 in bench_worker.)"""

    __slots__ = ("_items", "_waiters", "_waking")

    def __init__(self) -> None:
        self._items: deque[Claimed] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._waking = False  # a runner has been woken and has not run yet

    def put(self, item: Claimed) -> None:
        self._items.append(item)
        if not self._waking:
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a runner cancelled while waiting left its future behind
                waiter.set_result(None)
                self._waking = True
                return

    async def get(self, loop: asyncio.AbstractEventLoop) -> Claimed:
        while not self._items:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # woken, then cancelled: pass it on
                    self._waking = False
                    if self._items:
                        self._wake()
                raise
            self._waking = False
        item = self._items.popleft()
        if self._items and not self._waking:
            self._wake()
        return item


class _Deadlines:
    """Handler deadlines: one reusable _Deadline per runner, and one loop timer for them all,
    armed for the earliest. A job's start only notes when its time is up; the timer is re-armed
    only when that is sooner than the armed one, so jobs that finish well within their timeout
    (most) cost no timer at all. (A timer, or a set entry of a shared 10 ms timer, per job was
    ~6 % of a no-op job's instructions under callgrind.)"""

    TICK = 0.01  # a timeout fires at most this late: close deadlines share one wake-up

    def __init__(self) -> None:
        self._all: list[_Deadline] = []
        self._timer: asyncio.TimerHandle | None = None
        self.armed_at = math.inf  # when the armed timer fires (inf: none armed)

    def new(self, task: asyncio.Task[Any]) -> _Deadline:
        deadline = _Deadline(task, self)
        self._all.append(deadline)
        return deadline

    def arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.armed_at = math.ceil(due / self.TICK) * self.TICK
        self._timer = asyncio.get_running_loop().call_at(self.armed_at, self._fire)

    def close(self) -> None:
        """No wake-up after the runners are gone (an API process's loop runs on)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.armed_at = math.inf

    def _fire(self) -> None:
        self._timer = None
        self.armed_at = math.inf
        now = asyncio.get_running_loop().time()
        soonest = math.inf
        for deadline in self._all:
            if deadline.running and not deadline.expired:
                if deadline.due <= now:
                    deadline.expire()
                elif deadline.due < soonest:
                    soonest = deadline.due
        if soonest < math.inf:
            self.arm(soonest)


class _Deadline:
    """``asyncio.timeout`` for the handler calls of one runner, at a fraction of its cost: the
    shared timer (_Deadlines) cancels the task, and ``settle`` tells that cancel apart from any
    other (shutdown, a caller) by the task's cancel count, as asyncio.timeout does."""

    __slots__ = ("cancelling", "clock", "due", "expired", "owner", "running", "task")

    def __init__(self, task: asyncio.Task[Any], owner: _Deadlines) -> None:
        self.task = task  # the runner's task (asyncio.current_task() was 5% of a job)
        self.clock = task.get_loop().time
        self.owner = owner
        self.cancelling = 0
        self.due = math.inf
        self.expired = self.running = False

    def start(self, seconds: float) -> None:
        """The runner's next handler call has ``seconds`` from now."""
        self.cancelling = self.task.cancelling()
        self.expired = False
        self.running = True
        self.due = due = self.clock() + seconds
        if due <= self.owner.armed_at - self.owner.TICK:  # sooner than the armed slot
            self.owner.arm(due)

    def expire(self) -> None:
        self.expired = True
        self.task.cancel()

    def settle(self) -> bool:
        """End the call's deadline (once); True when it fired and the task's pending cancel was its own."""
        if not self.running:
            return False
        self.running = False
        return self.expired and self.task.uncancel() <= self.cancelling


class _Progress:
    """The worker's ProgressReporter. It holds no job: job -> reporter -> job would make every
    job a reference cycle, garbage only the cyclic GC frees (it cost ~5 us a job)."""

    __slots__ = ("backend", "loop")

    def __init__(self, backend: Backend, loop: asyncio.AbstractEventLoop) -> None:
        self.backend = backend
        self.loop = loop

    async def report(self, job: Job, percent: float, message: str | None) -> dict[str, Any] | None:
        # job.lease is the token the job was claimed with (Claimed: every backend hands out its
        # own copy, which later transitions of the stored job do not touch)
        entry = progress_entry(percent, message, now_ms())
        if await self.backend.report_progress(job.queue, job.id, job.lease, entry):
            return entry
        log.warning("progress dropped: the lease is no longer held", extra={"job_id": job.id, "queue": job.queue})
        return None


class Worker:
    """Claims jobs, runs their handlers, heartbeats their leases, recovers expired ones.

    ``await run()`` until ``await stop()``: stop claiming, let in-flight jobs finish for up to
    SHUTDOWN_GRACE, then release what still runs back to PENDING without counting an attempt.
    """

    def __init__(self, app: App, concurrency: int | None = None) -> None:
        self.app = app
        self.backend = app.backend
        self.settings = app.settings
        self.metrics = app.metrics
        self.concurrency = max(1, concurrency if concurrency is not None else self.settings.num_workers)
        self.lease_ms = int(self.settings.visibility_timeout * 1000)
        # Leases held (claimed, outcome not yet recorded), keyed by (job id, lease token): after a
        # lease expires this worker may hold a stale and a fresh claim of the same job at once,
        # and finishing the stale one must not drop the fresh one from the heartbeats.
        self._inflight: dict[tuple[str, int], _InFlight] = {}
        self._busy = 0  # slots taken: claimed jobs whose handler has not returned yet, and claims in flight
        self._deadlines = _Deadlines()
        self._busy_q: dict[str, int] = {}  # the same per queue: a queue's fair share is checked on it
        self._dry: set[str] = set()  # queues a claim found short of jobs: no claims ride on their completions
        self._idle_since: dict[str, float] = {}  # queue -> when claims first found it idle
        self._listed_done: dict[str, float] = {}  # queue -> until when its DONE records need deleting
        self._ready = _Handoff()
        self._stopping = asyncio.Event()
        self._no_grace = asyncio.Event()
        self._stopped = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._abandon = False
        self._queues: list[str] = []
        self._queues_at = 0.0
        self._rr = 0
        self._queue_backoff: dict[str, tuple[int, float]] = {}  # queue -> (failures, retry at monotonic)
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="gotaskq-job")
        self._outbox: dict[str, list[tuple[Claimed, Completion]]] = {}  # completions to write, per queue
        self._flushing: dict[str, int] = {}  # completion calls (flush tasks) per queue
        self._flushes: set[asyncio.Task[None]] = set()
        self._starting: set[str] = set()  # queues with a flush task _complete made that has not run yet
        self._deferred: set[asyncio.Task[None]] = set()  # outcomes being retried in the background
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._started_ms = now_ms()
        self._children: dict[tuple[str, ...], Any] = {}
        self._per_queue: dict[str, _QueueMetrics] = {}
        self._progress: _Progress | None = None  # set by run(): it needs the loop

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self) -> None:
        self._progress = _Progress(self.backend, asyncio.get_running_loop())
        self.metrics.active_workers.set_function(lambda: self._busy)
        try:
            await self.app.start()
            runners = [asyncio.create_task(self._runner()) for _ in range(self.concurrency)]
            claiming = [
                asyncio.create_task(self._fetch_loop()),
                asyncio.create_task(self._recovery_loop()),
                asyncio.create_task(self._registry_loop()),
                asyncio.create_task(Scheduler(self.app).run(self._stopping)),
            ]
            heartbeat = asyncio.create_task(self._heartbeat_loop())
            try:
                await self._stopping.wait()
            finally:
                await self._shutdown(runners, claiming, heartbeat)
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        self._stopping.set()
        await self._stopped.wait()

    def request_stop(self) -> None:
        self._stopping.set()

    def stop_now(self) -> None:
        """Stop without the grace period: jobs still running are released at once."""
        self._stopping.set()
        self._no_grace.set()

    async def _shutdown(
        self, runners: list[asyncio.Task[None]], claiming: list[asyncio.Task[None]], heartbeat: asyncio.Task[None]
    ) -> None:
        await _cancel(claiming)
        # Heartbeats go on through the grace period: jobs finishing now keep their leases.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_first(self._wait_idle(), self._no_grace.wait()), self.settings.shutdown_grace)
        # Grace is over: cancel what still runs. A runner cancelled mid-bookkeeping may still
        # have its completion applied; releasing that job is then refused by its token.
        self._abandon = True
        await _cancel(runners)
        self._deadlines.close()
        await _cancel(list(self._deferred))
        await _cancel([heartbeat])
        await self._release_abandoned()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- the worker registry (GET /workers) --------------------------------------------------
    def _record(self) -> dict[str, object]:
        now = now_ms()
        return {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(self.settings.worker_queues) or ["*"],
            "concurrency": self.concurrency,
            "busy": self._busy,
            "types": self.app.registry.types(),
            "started_at": iso_ms(self._started_ms),
            "last_seen_at": iso_ms(now),
            "jobs": sorted({jid for jid, _ in self._inflight}),
            "running": [
                {
                    "id": e.claimed.job.id,
                    "queue": e.claimed.job.queue,
                    "type": e.claimed.job.type,
                    "started_at": iso_ms(e.claimed.job.started_at or now),
                    "lease_expires_at": iso_ms(e.lease_until_ms or now),
                }
                for e in self._inflight.values()
            ],
        }

    async def _registry_loop(self) -> None:
        """Refresh this process's record every lease/3; it expires 3 leases after the last one."""
        ttl_ms = 3 * self.lease_ms
        interval = max(0.02, self.settings.visibility_timeout / 3)
        try:
            while not self._stopping.is_set():
                try:
                    await self.backend.register_worker(self._record(), ttl_ms)
                except Exception as exc:  # the registry is for people: it never stops the work
                    log.debug("could not refresh the worker registry: %s", exc)
                await self._sleep_unless_stopping(interval)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.backend.unregister_worker(self.id), 2.0)

    async def _wait_idle(self) -> None:
        while self._inflight:
            self._idle.clear()
            await self._idle.wait()

    async def _release_abandoned(self) -> None:
        by_queue: dict[str, list[tuple[str, int]]] = {}
        for (jid, token), entry in self._inflight.items():
            by_queue.setdefault(entry.claimed.job.queue, []).append((jid, token))
        for queue, leases in by_queue.items():
            try:
                await self.backend.release(queue, leases)
                log.info("released %d unfinished job(s) of queue %s back to PENDING", len(leases), queue)
            except GotaskqError as exc:
                log.warning("could not release leases of %s (%s): they recover after their lease", queue, exc)
        self._inflight.clear()

    # -- claiming --------------------------------------------------------------------------
    async def _queue_names(self) -> list[str]:
        """The queues that may have work (not every queue ever created: idle ones cost nothing)."""
        if time.monotonic() - self._queues_at > QUEUE_REFRESH_S:
            self._queues = self._served(await self.backend.active_queues())
            self._queues_at = time.monotonic()
        return self._queues

    def _served(self, names: list[str]) -> list[str]:
        """WORKER_QUEUES dedicates a process to some queues (long jobs cannot crowd out others)."""
        only = self.settings.worker_queues
        return [n for n in names if n in only] if only else names

    async def _fetch_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            # A slot frees when its handler returns, so the next claim overlaps the previous
            # jobs' completions in flight instead of waiting for them.
            free = self.concurrency - self._busy
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                # A freed slot's completion starts its flush next: let it claim on the way back
                # (one round trip for both) before this loop claims on its own.
                await asyncio.sleep(0)
                continue
            try:
                got, drained, next_due = await self._claim_round(free)
                failures = 0
            except Exception as exc:  # the fetch loop must outlive any backend error
                failures += 1
                log.warning("claiming failed (%s: %s); retrying", type(exc).__name__, exc)
                await self._sleep_unless_stopping(min(2.0, 0.1 * 2**failures))
                continue
            if got == 0 or drained:
                timeout = IDLE_POLL_S
                if next_due is not None:
                    timeout = min(timeout, next_due - time.monotonic())
                await self._wait_for_work(max(MIN_SLEEP_S, timeout))
                # Woken: a notice may name a queue that just got work; no round trip to learn it.
                fresh = [q for q in self._served(await self.backend.woken_queues()) if q not in self._queues]
                if fresh:
                    self._queues = sorted([*self._queues, *fresh])

    async def _claim_round(self, free: int) -> tuple[int, bool, float | None]:
        """Claim up to ``free`` jobs round-robin; ``drained``: every queue gave less than asked.
        The third value is when (time.monotonic()) the earliest delayed job is due, if any."""
        queues = await self._queue_names()
        if not queues:
            return 0, True, None
        n = len(queues)
        start = self._rr % n
        self._rr += 1
        share = max(1, math.ceil(free / n))
        got = 0
        drained = True
        failed = 0
        next_due: float | None = None
        for q in queues[start:] + queues[:start]:
            want = min(share, free - got)
            if want <= 0 or self._stopping.is_set():
                drained = False
                break
            backoff = self._queue_backoff.get(q)
            if backoff is not None and time.monotonic() < backoff[1]:
                failed += 1
                continue
            self._reserve(q, want)
            try:
                batch = await self.backend.claim(q, want, self.lease_ms)
            except QueueNotFound:
                self._unreserve(q, want)
                self._queues_at = 0.0
                continue
            except Exception as exc:  # one queue's trouble (e.g. its Cluster node is down) is its own
                self._unreserve(q, want)
                failed += 1
                tries = (backoff[0] if backoff else 0) + 1
                self._queue_backoff[q] = (tries, time.monotonic() + min(2.0, 0.1 * 2**tries))
                log.warning("claiming from %s failed (%s: %s); other queues go on", q, type(exc).__name__, exc)
                continue
            self._unreserve(q, want - len(batch.jobs))
            self._queue_backoff.pop(q, None)
            if not batch.idle:
                self._idle_since.pop(q, None)
            elif self._idle_long(q):  # in the background: the other queues' claims go first
                task = asyncio.create_task(self._forget_idle(q))
                self._deferred.add(task)
                task.add_done_callback(self._deferred.discard)
            else:  # look again then, and take it out if it is still idle
                again = self._idle_since[q] + IDLE_MARK_S
                next_due = again if next_due is None else min(next_due, again)
            self._take(q, batch)
            if len(batch.jobs) < want:
                self._dry.add(q)
            else:
                self._dry.discard(q)
            got += len(batch.jobs)
            drained = drained and len(batch.jobs) < want
            if batch.next_due_ms is not None:
                # How long until due, on the store's clock (local skew cannot make us spin), from
                # the moment its answer arrived (so the claim's own time is not slept again).
                due = time.monotonic() + (batch.next_due_ms - batch.now_ms) / 1000
                next_due = due if next_due is None else min(next_due, due)
        if failed:  # retry the failed queues after their backoff, not after a full idle poll
            retry_at = time.monotonic() + 0.1
            next_due = retry_at if next_due is None else min(next_due, retry_at)
        return got, drained, next_due

    def _reserve(self, queue: str, n: int) -> None:
        """Take ``n`` slots for a claim in flight, so two claims never hand out one slot twice."""
        self._busy += n
        self._busy_q[queue] = self._busy_q.get(queue, 0) + n

    def _unreserve(self, queue: str, n: int) -> None:
        if n:
            self._busy -= n
            self._busy_q[queue] -= n
            self._slot_free.set()

    def _take(self, queue: str, batch: ClaimBatch) -> None:
        """Hand a claim's jobs (their slots already reserved) to the runners."""
        if batch.limited is not None:
            self.metrics.limited.labels(queue, batch.limited).inc()
        if not batch.jobs:
            return
        lease_until = now_ms() + self.lease_ms
        for c in batch.jobs:
            self._inflight[(c.job.id, c.token)] = _InFlight(c, lease_until)
            self._ready.put(c)
        self._idle.clear()

    def _rider(self, queue: str) -> int:
        """How many jobs a completion call of ``queue`` may claim on the way back: the free slots,
        up to the queue's fair share (concurrency / busy queues), so queues still take turns."""
        if self._stopping.is_set() or queue in self._dry:
            return 0
        share = math.ceil(self.concurrency / max(1, len(self._queues)))
        return max(0, min(self.concurrency - self._busy, share - self._busy_q.get(queue, 0)))

    def _idle_long(self, queue: str) -> bool:
        """True once claims have found ``queue`` idle for IDLE_MARK_S: a queue that empties and
        fills many times a second is not taken out of the active set (and put back by the next
        enqueue) each time, a round trip each way."""
        now = time.monotonic()
        since = self._idle_since.setdefault(queue, now)
        if now - since < IDLE_MARK_S:
            return False
        del self._idle_since[queue]
        return True

    async def _forget_idle(self, queue: str) -> None:
        try:
            await self.backend.mark_idle(queue)
        except Exception as exc:  # it stays listed: one more poll a second, nothing lost
            log.debug("could not mark %s idle: %s", queue, exc)

    async def _wait_for_work(self, timeout: float) -> None:
        waiter = asyncio.ensure_future(self.backend.wait_for_work(timeout))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (waiter, stopper):
                t.cancel()

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- running ---------------------------------------------------------------------------
    async def _runner(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        deadline = self._deadlines.new(task)
        while True:
            claimed = await self._ready.get(loop)
            settled = True
            try:
                settled = await self._execute(claimed, deadline)
            except asyncio.CancelledError:
                if self._abandon:
                    return  # shutdown: the entry stays in _inflight and its lease is released
                raise
            except Exception:  # never let one job kill a runner
                log.exception("unexpected error while running job %s", claimed.job.id)
            if settled:
                self._settle(claimed)

    def _settle(self, claimed: Claimed) -> None:
        self._inflight.pop((claimed.job.id, claimed.token), None)
        if not self._inflight:
            self._idle.set()

    def _later(self, claimed: Claimed, call: Callable[[], Awaitable[R]], then: Callable[[R], None]) -> None:
        """Record an outcome in the background, retrying through the outage that refused it, so
        the runner takes the next job: a queue whose node is down does not hold every runner."""

        async def retry() -> None:
            try:
                out = await self._with_retries(call, claimed.job)
                if out is not None:
                    then(out)
            except StaleLease:
                self._stale(claimed.job, "failure")
            finally:
                self._settle(claimed)

        task = asyncio.create_task(retry())
        self._deferred.add(task)
        task.add_done_callback(self._deferred.discard)

    def _child(self, kind: str, queue: str, *labels: str) -> Any:
        key = (kind, queue, *labels)  # a tuple: no string to build on every job
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = getattr(self.metrics, kind).labels(queue, *labels)
        return child

    def _queue_metrics(self, queue: str) -> _QueueMetrics:
        qm = self._per_queue.get(queue)
        if qm is None:
            qm = self._per_queue[queue] = _QueueMetrics(
                self._child("wait", queue), self._child("duration", queue), self._child("processed", queue, "done")
            )
        return qm

    async def _execute(self, claimed: Claimed, deadline: _Deadline) -> bool:
        """Run the handler and record its outcome; False when a background retry records it."""
        job = claimed.job
        q = job.queue
        t0 = time.perf_counter()
        error: str | None = None
        trace: str | None = None
        result: Any = None
        thread: asyncio.Future[Any] | None = None
        qm = self._queue_metrics(q)
        deadline.start(job.timeout)  # the last step before the try, whose finally settles it
        job.reporter = self._progress
        try:
            qm.wait.observe(max(0.0, time.time() - (job.run_at or job.created_at) / 1000))
            reg = self.app.registry.get(job.type)
            if reg is None:
                raise UnknownJobType(f"no handler registered for job type {job.type!r}")
            if reg.is_async:
                result = await reg.fn(job)
            else:
                thread = asyncio.get_running_loop().run_in_executor(self._executor, reg.fn, job)
                result = await asyncio.shield(thread)
        except asyncio.CancelledError:
            if not deadline.settle():
                raise
            error = f"timed out after {job.timeout:g}s"
        except BaseException as exc:  # a handler's failure, whatever it raised, fails the attempt
            if isinstance(exc, TimeoutError) and deadline.expired:  # it turned our cancel into this
                error = f"timed out after {job.timeout:g}s"
            else:
                error = f"{type(exc).__name__}: {exc}"
                trace = "".join(traceback.format_exception(exc))
        finally:
            deadline.settle()
            if thread is not None and not thread.done():
                # A thread cannot be cancelled: its slot stays taken until it really ends, so the
                # next sync job does not start its timeout while waiting for a free thread.
                thread.add_done_callback(functools.partial(self._free_slot, q))
            else:
                self._unreserve(q, 1)
            qm.duration.observe(time.perf_counter() - t0)
        if error is None:
            return await self._complete(claimed, result)
        return await self._fail(claimed, error, trace)

    def _free_slot(self, queue: str, thread: object = None) -> None:
        if isinstance(thread, asyncio.Future) and not thread.cancelled():
            thread.exception()  # retrieved, so asyncio does not log it as never retrieved
        self._unreserve(queue, 1)

    async def _complete(self, claimed: Claimed, result: Any) -> bool:
        """Queue the outcome for the queue's next completion call and return: the runner takes
        its next job while the completion is written (the job stays in flight, heartbeated,
        until it is). No future per job: the call's answer is handed out by the loop below."""
        job = claimed.job
        q = job.queue
        box = self._outbox.get(q)
        if box is None:
            box = self._outbox[q] = []
        box.append((claimed, Completion.of(job, claimed.token, bounded_result(result))))
        # A new call when none waits to take the box and fewer than FLUSHES_PER_QUEUE are out
        if q not in self._starting and self._flushing.get(q, 0) < FLUSHES_PER_QUEUE:
            self._starting.add(q)
            self._start_flush(q, box, None)
        return False

    def _start_flush(self, queue: str, box: list[tuple[Claimed, Completion]], first: _Flush | None) -> None:
        self._flushing[queue] = self._flushing.get(queue, 0) + 1
        task = asyncio.create_task(self._write_outcomes(queue, box, first))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    def _take_flush(self, queue: str, box: list[tuple[Claimed, Completion]]) -> _Flush:
        """The next completions to write, and how many jobs to claim on the way back (their
        slots reserved now). Two calls when a second may start and jobs wait to ride back on
        them (the queue is not dry): half the completions each. From a dry queue nothing rides
        back, and two calls would only double what each costs the worker and Redis whatever it
        carries (bench_e2e: 0.154-0.162 -> 0.135-0.139 script calls a job)."""
        batch = box[:COMPLETION_BATCH]
        del box[:COMPLETION_BATCH]
        if len(batch) > 1 and self._flushing[queue] < FLUSHES_PER_QUEUE and queue not in self._dry:
            rest = batch[len(batch) // 2 :]
            del batch[len(batch) // 2 :]
            flush = _Flush(batch, self._ride(queue, len(batch)))
            self._start_flush(queue, box, _Flush(rest, self._ride(queue, len(rest))))
            return flush
        # With another call in flight, each call claims as many jobs as it completes: so the two
        # stay apart instead of one claiming every free slot (and the worker waiting again).
        cap = len(batch) if self._flushing[queue] > 1 else None
        return _Flush(batch, self._ride(queue, cap))

    def _ride(self, queue: str, cap: int | None) -> int:
        want = self._rider(queue)
        if cap is not None:
            want = min(want, cap)
        if want > 0:
            self._reserve(queue, want)
        return want

    async def _write_outcomes(self, queue: str, box: list[tuple[Claimed, Completion]], first: _Flush | None) -> None:
        """Completion calls of one queue, FLUSHES_PER_QUEUE at a time; what arrives meanwhile
        goes in the next one."""
        if first is None:  # started by _complete: from now on another may start (the box may
            self._starting.discard(queue)  # be empty already: a call that returned took it)
        try:
            while first is not None or box:
                flush = first if first is not None else self._take_flush(queue, box)
                first = None
                batch = flush.batch
                try:
                    oks = await self._complete_batch(queue, [item for _, item in batch], flush.want)
                except BackendUnavailable:  # retried in the background, each on its own
                    for claimed, item in batch:
                        retry = functools.partial(self._complete_one, queue, item)
                        self._later(claimed, retry, functools.partial(self._completed_one, claimed.job))
                    continue
                except Exception as exc:  # (a shutdown's cancel passes: the held leases are released)
                    why = f"{type(exc).__name__}: {exc}"
                    for claimed, _ in batch:
                        log.error("recording the outcome failed (%s)", why, extra=_extra(claimed.job))
                        self._settle(claimed)
                    continue
                self._completed(queue, [claimed.job for claimed, _ in batch], oks)
                for claimed, _ in batch:
                    self._settle(claimed)
                self._listed_done[queue] = time.monotonic() + self.settings.complete_job_ttl + 2 * RECOVERY_SLACK_S
        finally:
            self._flushing[queue] -= 1

    async def _complete_one(self, queue: str, item: Completion) -> bool:
        return (await self.backend.complete(queue, [item]))[0]

    async def _complete_batch(self, queue: str, items: list[Completion], want: int) -> list[bool]:
        """Write completions; ``want`` jobs (slots already reserved) come back with them: one
        round trip instead of two."""
        if want <= 0:
            return await self.backend.complete(queue, items)
        got = 0
        try:
            oks, batch = await self.backend.complete_and_claim(queue, items, want, self.lease_ms)
            got = len(batch.jobs)
            self._take(queue, batch)
            if got < want:
                self._dry.add(queue)
        finally:
            self._unreserve(queue, want - got)
        return oks

    def _completed(self, queue: str, jobs: Sequence[Job], oks: Sequence[bool]) -> None:
        """Count a completion call's done jobs (once for the call) and report its stale ones."""
        debug = log.isEnabledFor(logging.DEBUG)
        done = 0
        for job, ok in zip(jobs, oks, strict=True):
            if ok:
                done += 1
                if debug:
                    log.debug("job done", extra=_extra(job))
            else:
                self._stale(job, "completion")
        if done:
            self._queue_metrics(queue).done.inc(done)

    def _completed_one(self, job: Job, ok: bool) -> None:
        self._completed(job.queue, [job], [ok])

    def _stale(self, job: Job, what: str) -> None:
        self.metrics.stale.inc()
        log.warning("stale %s refused: the lease expired and the job was recovered", what, extra=_extra(job))

    async def _fail(self, claimed: Claimed, error: str, trace: str | None = None) -> bool:
        job = claimed.job
        s = self.settings
        delay_ms = int(retry_delay(job.attempts, s.base_delay, s.max_delay) * 1000)

        def call() -> Awaitable[FailOutcome]:
            return self.backend.fail(job, claimed.token, error, delay_ms, trace)

        try:
            outcome = await call()
        except StaleLease:
            self._stale(job, "failure")
            return True
        except BackendUnavailable:
            self._later(claimed, call, lambda o: self._failed(job, o, error, delay_ms))
            return False
        self._failed(job, outcome, error, delay_ms)
        return True

    def _failed(self, job: Job, outcome: FailOutcome, error: str, delay_ms: int) -> None:
        if outcome.status is JobStatus.DEAD:
            self._child("processed", job.queue, "dead").inc()
            self._child("dead", job.queue).inc()
            log.warning("job dead after %d attempt(s): %s", job.attempts, error, extra=_extra(job))
        else:
            self._child("processed", job.queue, "failed").inc()
            self._child("retried", job.queue).inc()
            log.info("job failed, retry in %.3fs: %s", delay_ms / 1000, error, extra=_extra(job))

    async def _with_retries(self, call: Callable[[], Awaitable[R]], job: Job) -> R | None:
        """Retry bookkeeping through a backend outage for about one lease; after that the lease
        has expired anyway and recovery re-runs the job (at-least-once, never lost)."""
        deadline = time.monotonic() + self.settings.visibility_timeout
        while True:
            try:
                return await call()
            except BackendUnavailable as exc:
                if time.monotonic() > deadline or self._abandon:
                    log.error("gave up recording the outcome (%s); the job will be recovered", exc, extra=_extra(job))
                    return None
                await asyncio.sleep(BOOKKEEPING_RETRY_S)

    # -- leases ----------------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval = max(0.02, self.settings.visibility_timeout / 3)
        while not self._abandon:
            await asyncio.sleep(interval)
            by_queue: dict[str, list[tuple[str, int]]] = {}
            for (jid, token), entry in list(self._inflight.items()):
                if not entry.lost:
                    by_queue.setdefault(entry.claimed.job.queue, []).append((jid, token))
            for queue, leases in by_queue.items():
                until_ms = now_ms() + self.lease_ms
                try:
                    held = await self.backend.extend_leases(queue, leases, self.lease_ms)
                except Exception as exc:  # a heartbeat loop that dies would lose every lease
                    log.warning("heartbeat failed for queue %s: %s", queue, exc)
                    continue
                self._mark_lost(leases, held, until_ms)

    def _mark_lost(self, leases: Sequence[tuple[str, int]], held: Sequence[bool], until_ms: int) -> None:
        for lease, ok in zip(leases, held, strict=True):
            entry = self._inflight.get(lease)
            if entry is None:
                continue
            if ok:
                entry.lease_until_ms = until_ms
            else:
                entry.lost = True

    async def _recovery_loop(self) -> None:
        next_upkeep = time.monotonic()
        while not self._stopping.is_set():
            try:
                queues = await self._queue_names()  # a queue with running jobs is always listed
            except Exception as exc:
                log.warning("recovery pass failed: %s", exc)
                queues = []
            # Queues this process completed jobs in lately stay in the pass until those jobs'
            # records expire: the pass deletes them (Redis: complete.lua sets no key TTL).
            now = time.monotonic()
            for queue, until in list(self._listed_done.items()):
                if until < now:
                    del self._listed_done[queue]
                elif queue not in queues:
                    queues = [*queues, queue]
            for queue in queues:
                try:
                    await self._recover(queue)
                except Exception as exc:  # one queue's trouble does not stop the others' recovery
                    log.warning("recovery of %s failed: %s", queue, exc)
            if time.monotonic() >= next_upkeep:
                next_upkeep = time.monotonic() + HOUSEKEEPING_S
                try:
                    # also queues no process lists, e.g. whose last jobs a process gone since completed
                    sweep = [q for q in await self.backend.housekeeping() if q not in queues]
                except Exception as exc:
                    log.warning("housekeeping failed: %s", exc)
                    sweep = []
                for queue in sweep:
                    try:
                        await self._recover(queue)
                    except Exception as exc:
                        log.warning("deleting expired jobs of %s failed: %s", queue, exc)
            await asyncio.sleep(self.settings.recovery_interval)

    async def _recover(self, queue: str) -> None:
        for _ in range(RECOVERY_PASSES):  # each call takes a bounded slice: Redis is never held long
            rec = await self.backend.recover_expired(queue)
            n = len(rec.requeued) + len(rec.dead)
            if n == 0:
                if rec.expired:
                    continue  # a backlog of expired DONE records: the next slice
                return
            self._child("recovered", queue).inc(n)
            if rec.dead:
                self._child("dead", queue).inc(len(rec.dead))
            log.warning("recovered %d expired lease(s) in %s (%d to the DLQ)", n, queue, len(rec.dead))


async def _first(*waits: Awaitable[Any]) -> None:
    """Return when the first of ``waits`` returns (the others are cancelled)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel and wait, bounded: on Python 3.11 a cancel landing in a client's internal
    asyncio.timeout can be swallowed, so every loop also checks its own stop flag."""
    for t in tasks:
        t.cancel()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=5.0)
        for t in pending:
            log.warning("task %s did not stop within 5 s", t.get_name())


def _extra(job: Job) -> dict[str, object]:
    return {"job_id": job.id, "queue": job.queue, "job_type": job.type, "attempt": job.attempts}
