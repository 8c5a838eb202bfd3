"""MemoryBackend: the Backend protocol in process, with the same semantics as the Lua scripts.

Every method runs without awaiting in between, so on one event loop each is atomic, as a
Lua script is in Redis. It is the default store when no REDIS_URL is configured.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from ..config import Settings
from ..errors import (
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    QueueBusy,
    QueueFull,
    QueueNotExternal,
    QueueNotFound,
    StaleLease,
)
from ..ids import Snowflake
from ..job import MAX_ERROR_HISTORY, Job, NewJob, error_entry, now_ms, validate_queue_name
from ..schedules import Schedule
from ..states import JobStatus, can_move
from .base import (
    LEASE_EXPIRED,
    STATS_MINUTES,
    UNSET,
    ClaimBatch,
    Claimed,
    Completion,
    Enqueued,
    FailOutcome,
    MinuteStats,
    Page,
    QueueInfo,
    QueueSettings,
    RateLimit,
    Recovered,
)
from .paging import all_queues_page, decode_cursor, encode_cursor

S = JobStatus


def _handed_out(job: Job) -> Job:
    """A stored job as the store hands it out: a copy whose JSON values are the caller's own, as
    a Redis read decodes fresh ones (a handler that changes its payload must not change what a
    retry runs with). ~0.3 us for a small payload on top of Job.copy."""
    out = job.copy()
    if isinstance(out.payload, dict | list):
        out.payload = orjson.loads(orjson.dumps(out.payload))
    if isinstance(out.result, dict | list):
        out.result = orjson.loads(orjson.dumps(out.result))
    out.errors = [dict(e) for e in out.errors]  # the stored list grows on a failure: not the caller's
    if out.progress_info is not None:
        out.progress_info = dict(out.progress_info)
    return out


def _fingerprint(spec: NewJob) -> str:
    """What an idempotency key is checked against; a job without a key needs none (a hash of
    its body: ~0.5 us of every enqueue)."""
    return spec.fingerprint() if spec.idempotency_key is not None else ""


@dataclass
class _ZSet:
    """A sorted set with lazy heap deletion: ``scores`` is the truth, the heap may hold stale pairs."""

    scores: dict[str, float] = field(default_factory=dict)
    heap: list[tuple[float, int, str]] = field(default_factory=list)

    def add(self, member: str, score: float) -> None:
        self.scores[member] = score
        heapq.heappush(self.heap, (score, int(member), member))

    def remove(self, member: str) -> bool:
        return self.scores.pop(member, None) is not None

    def peek_min(self) -> tuple[float, str] | None:
        while self.heap:
            score, _, member = self.heap[0]
            if self.scores.get(member) == score:
                return score, member
            heapq.heappop(self.heap)
        return None

    def pop_min(self) -> tuple[float, str] | None:
        top = self.peek_min()
        if top is not None:
            heapq.heappop(self.heap)
            del self.scores[top[1]]
        return top

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class _Queue:
    paused: bool = False
    concurrency: int | None = None
    rate_limit: RateLimit | None = None
    external: bool = False
    started: dict[int, int] = field(default_factory=dict)  # rate-limit window -> job starts
    ready: _ZSet = field(default_factory=_ZSet)
    delayed: _ZSet = field(default_factory=_ZSet)
    running: _ZSet = field(default_factory=_ZSet)
    dead: _ZSet = field(default_factory=_ZSet)


class MemoryBackend:
    name = "memory"

    def __init__(self, settings: Settings | None = None) -> None:
        s = settings or Settings()
        self.settings = s
        self._aging_ms = int(s.priority_aging * 1000)
        self._done_ttl_ms = int(s.complete_job_ttl * 1000)
        self._idem_ttl_ms = int(s.idempotency_ttl * 1000)
        self._queues: dict[str, _Queue] = {}
        self._jobs: dict[str, Job] = {}
        self._expiry: list[tuple[int, str]] = []  # (expires at ms, job id) of DONE/CANCELLED jobs
        self._idem: dict[tuple[str, str], tuple[str, str, int]] = {}  # -> (id, fp, expires ms)
        self._idem_expiry: list[tuple[int, str, str]] = []  # (expires ms, queue, key): a heap
        self._ids = Snowflake(node=0)
        self._wake = asyncio.Event()
        self._stats: dict[tuple[str, int], dict[str, int]] = {}  # (queue, epoch minute) -> counts
        self._workers: dict[str, tuple[dict[str, object], int]] = {}  # id -> (info, expires ms)
        self._schedules: dict[str, Schedule] = {}

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    # -- queues -------------------------------------------------------------------------
    async def create_queue(self, name: str) -> bool:
        validate_queue_name(name)
        if name in self._queues:
            return False
        self._queues[name] = _Queue()
        self._wake.set()
        return True

    async def queue_exists(self, name: str) -> bool:
        return name in self._queues

    async def list_queues(self) -> list[str]:
        return sorted(self._queues)

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            raise QueueNotFound(f"queue {name!r} does not exist")
        return q

    async def queue_info(self, name: str) -> QueueInfo:
        q = self._queue(name)
        return QueueInfo(
            name,
            q.paused,
            len(q.ready),
            len(q.delayed),
            len(q.running),
            len(q.dead),
            q.concurrency,
            q.rate_limit,
            q.external,
        )

    async def configure_queue(self, name: str, settings: QueueSettings) -> QueueInfo:
        q = self._queue(name)
        if settings.concurrency is not UNSET:
            q.concurrency = settings.concurrency  # type: ignore[assignment]
        if settings.rate_limit is not UNSET:
            q.rate_limit = settings.rate_limit  # type: ignore[assignment]
            q.started.clear()
        if settings.paused is not UNSET:
            q.paused = bool(settings.paused)
        if settings.external is not UNSET:
            q.external = bool(settings.external)
        self._wake.set()
        return await self.queue_info(name)

    async def purge_queue(self, name: str) -> int:
        q = self._queue(name)
        ids = [*q.ready.scores, *q.delayed.scores]
        for jid in ids:
            job = self._jobs.pop(jid)
            self._drop_key(job)
        q.ready, q.delayed = _ZSet(), _ZSet()
        return len(ids)

    async def delete_queue(self, name: str) -> None:
        q = self._queue(name)
        if q.running:
            raise QueueBusy(f"queue {name!r} has running jobs")
        del self._queues[name]
        for jid in [j.id for j in self._jobs.values() if j.queue == name]:
            self._drop_key(self._jobs.pop(jid))
        self._stats = {k: v for k, v in self._stats.items() if k[0] != name}
        if name == "default":
            await self.create_queue(name)

    def _drop_key(self, job: Job) -> None:
        """Forget a removed job's idempotency key, only while it still names that job."""
        key = (job.queue, job.idempotency_key or "")
        if job.idempotency_key is not None and self._idem.get(key, ("",))[0] == job.id:
            del self._idem[key]

    async def queue_infos(self, names: Sequence[str]) -> list[QueueInfo]:
        return [await self.queue_info(n) for n in names if n in self._queues]

    async def set_paused(self, name: str, paused: bool) -> QueueInfo:
        return await self.configure_queue(name, QueueSettings(paused=paused))

    def _count(self, queue: str, now: int, field: str, n: int = 1) -> None:
        minute = now // 60_000
        bucket = self._stats.setdefault((queue, minute), {})
        bucket[field] = bucket.get(field, 0) + n
        if len(self._stats) > 4 * STATS_MINUTES:  # keep 25 hours, as the Redis keys' TTL does
            for key in [k for k in self._stats if k[1] <= minute - STATS_MINUTES]:
                del self._stats[key]

    async def queue_stats(self, name: str, minutes: int) -> list[MinuteStats]:
        self._queue(name)
        last = now_ms() // 60_000
        minutes = min(minutes, STATS_MINUTES)
        out = []
        for minute in range(last - minutes + 1, last + 1):
            b = self._stats.get((name, minute), {})
            out.append(MinuteStats(minute, b.get("done", 0), b.get("failed", 0), b.get("dead", 0)))
        return out

    # -- producers ----------------------------------------------------------------------
    def _ready_score(self, job: Job) -> float:
        return float((job.run_at or job.created_at) - job.priority * self._aging_ms)

    def _sweep(self, now: int) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, jid = heapq.heappop(self._expiry)
            job = self._jobs.get(jid)
            if job is not None and job.status in (S.DONE, S.CANCELLED) and job.finished_at is not None:
                if self._expires_at(job) <= now:
                    del self._jobs[jid]
                else:  # its idempotency key was renewed meanwhile: look again then
                    heapq.heappush(self._expiry, (self._expires_at(job), jid))
        while self._idem_expiry and self._idem_expiry[0][0] <= now:
            _, queue, key = heapq.heappop(self._idem_expiry)
            hit = self._idem.get((queue, key))
            if hit is not None and hit[2] <= now:
                del self._idem[(queue, key)]

    def _expires_at(self, job: Job) -> int:
        """A finished job outlives its idempotency key, so a retry replays the true outcome."""
        assert job.finished_at is not None
        at = job.finished_at + self._done_ttl_ms
        if job.idempotency_key is not None:
            hit = self._idem.get((job.queue, job.idempotency_key))
            if hit is not None and hit[0] == job.id:
                at = max(at, hit[2])
        return at

    def _live_key(self, queue: str, key: str, now: int) -> tuple[str, str, int] | None:
        """The key's entry while it is unexpired and its job still exists."""
        hit = self._idem.get((queue, key))
        if hit is None or hit[2] <= now or hit[0] not in self._jobs:
            return None
        return hit

    def _enqueue_one(self, spec: NewJob, fp: str, now: int) -> Enqueued:
        q = self._queue(spec.queue)
        if spec.idempotency_key is not None:
            hit = self._live_key(spec.queue, spec.idempotency_key, now)
            if hit is not None:
                if hit[1] != fp:
                    raise IdempotencyConflict("idempotency key was used for a different job", hit[0])
                return Enqueued(_handed_out(self._jobs[hit[0]]), created=False)
        depth = self.settings.max_queue_depth
        if depth and len(q.ready) + len(q.delayed) >= depth:
            raise QueueFull(f"queue {spec.queue!r} holds {depth} waiting jobs")
        run_at = spec.run_at_ms if spec.run_at_ms is not None else (now + spec.delay_ms if spec.delay_ms else None)
        if run_at is not None and run_at <= now:
            run_at = None
        job = Job(
            id=self._ids.next_str(),
            queue=spec.queue,
            type=spec.type,
            payload=orjson.loads(spec.payload_json),
            priority=spec.priority,
            status=S.SCHEDULED if run_at is not None else S.PENDING,
            attempts=0,
            max_retries=spec.max_retries,
            timeout=spec.timeout,
            run_at=run_at,
            idempotency_key=spec.idempotency_key,
            created_at=now,
            updated_at=now,
        )
        self._jobs[job.id] = job
        if run_at is not None:
            q.delayed.add(job.id, float(run_at))
        else:
            q.ready.add(job.id, self._ready_score(job))
        if spec.idempotency_key is not None:
            self._idem[(spec.queue, spec.idempotency_key)] = (job.id, fp, now + self._idem_ttl_ms)
            heapq.heappush(self._idem_expiry, (now + self._idem_ttl_ms, spec.queue, spec.idempotency_key))
        return Enqueued(_handed_out(job), created=True)

    async def enqueue(self, spec: NewJob) -> Enqueued:
        now = now_ms()
        self._sweep(now)
        out = self._enqueue_one(spec, _fingerprint(spec), now)
        self._wake.set()
        return out

    def _precheck(self, specs: Sequence[NewJob], fps: list[str], now: int) -> None:
        """Refuse a whole batch before writing any of it, as enqueue.lua does."""
        fresh: dict[str, int] = {}
        seen: dict[tuple[str, str], str] = {}
        for spec, fp in zip(specs, fps, strict=True):
            self._queue(spec.queue)
            key = spec.idempotency_key
            if key is not None:
                hit = self._live_key(spec.queue, key, now)
                if hit is not None:
                    if hit[1] != fp:
                        raise IdempotencyConflict("idempotency key was used for a different job", hit[0])
                    continue
                if seen.get((spec.queue, key), fp) != fp:
                    raise IdempotencyConflict("idempotency key used twice with different jobs", "")
                if (spec.queue, key) in seen:
                    continue
                seen[(spec.queue, key)] = fp
            fresh[spec.queue] = fresh.get(spec.queue, 0) + 1
        depth = self.settings.max_queue_depth
        for name, n in fresh.items():
            q = self._queues[name]
            if depth and len(q.ready) + len(q.delayed) + n > depth:
                raise QueueFull(f"queue {name!r} holds {depth} waiting jobs")

    async def enqueue_many(self, specs: Sequence[NewJob]) -> list[Enqueued]:
        now = now_ms()
        self._sweep(now)
        fps = [_fingerprint(s) for s in specs]
        self._precheck(specs, fps, now)
        out = [self._enqueue_one(s, fp, now) for s, fp in zip(specs, fps, strict=True)]
        self._wake.set()
        return out

    async def get_job(self, job_id: str) -> Job | None:
        self._sweep(now_ms())
        job = self._jobs.get(job_id)
        return _handed_out(job) if job is not None else None

    def _get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"job {job_id} not found")
        return job

    def _move(self, job: Job, dst: JobStatus, by: str, now: int) -> None:
        if not can_move(job.status, dst, by):
            raise InvalidTransition(f"job {job.id} is {job.status.value}", job.status.value)
        job.status = dst
        job.updated_at = now

    def _finish(self, job: Job, now: int) -> None:
        job.finished_at = now
        heapq.heappush(self._expiry, (self._expires_at(job), job.id))

    async def cancel(self, job_id: str) -> Job:
        now = now_ms()
        job = self._get(job_id)
        q = self._queue(job.queue)
        was = job.status
        self._move(job, S.CANCELLED, "cancel", now)
        (q.ready if was is S.PENDING else q.delayed).remove(job_id)
        self._finish(job, now)
        return _handed_out(job)

    async def list_jobs(self, queue: str, status: JobStatus, limit: int, cursor: str | None) -> Page:
        q = self._queue(queue)
        if status is S.DONE:
            self._sweep(now_ms())
            done = _ZSet()  # by expiry, as Redis lists them
            for job in self._jobs.values():
                if job.queue == queue and job.status is S.DONE:
                    done.add(job.id, float(self._expires_at(job)))
            return self._zpage(queue, done, limit, cursor)
        zset = {S.PENDING: q.ready, S.SCHEDULED: q.delayed, S.RUNNING: q.running, S.DEAD: q.dead}.get(status)
        if zset is None:
            return Page([], None)
        return self._zpage(queue, zset, limit, cursor)

    def _zpage(self, queue: str, zset: _ZSet, limit: int, cursor: str | None) -> Page:
        after = decode_cursor(cursor, queue)
        entries = sorted(((sc, int(m)) for m, sc in zset.scores.items()), reverse=True)
        if after is not None:
            entries = [e for e in entries if e < after]
        page = entries[:limit]
        jobs = [_handed_out(self._jobs[str(m)]) for _, m in page]
        nxt = encode_cursor(queue, page[-1]) if len(entries) > limit else None
        return Page(jobs, nxt)

    # -- workers ------------------------------------------------------------------------
    async def claim(self, queue: str, count: int, lease_ms: int, external: bool = False) -> ClaimBatch:
        now = now_ms()
        q = self._queue(queue)
        if external and not q.external:
            raise QueueNotExternal(f"queue {queue!r} is served by in-process workers")
        if q.external and not external:
            return ClaimBatch([], None, now, True)
        while (top := q.delayed.peek_min()) is not None and top[0] <= now:
            q.delayed.pop_min()
            job = self._jobs[top[1]]
            self._move(job, S.PENDING, "claim", now)
            q.ready.add(job.id, self._ready_score(job))
        claimed: list[Claimed] = []
        limited, retry = self._limit(q, now, count)
        count = min(count, limited[0]) if limited else count
        while not q.paused and len(claimed) < count and (top := q.ready.pop_min()) is not None:
            job = self._jobs[top[1]]
            self._move(job, S.RUNNING, "claim", now)
            job.attempts += 1
            job.lease += 1
            job.started_at = now
            job.lease_ms = lease_ms if external else None
            q.running.add(job.id, float(now + lease_ms))
            claimed.append(Claimed(_handed_out(job), job.lease))
        if q.rate_limit is not None and claimed:
            window = now // max(1, round(q.rate_limit.per * 1000))
            q.started = {window: q.started.get(window, 0) + len(claimed)}
        nxt = q.delayed.peek_min()
        next_due = int(nxt[0]) if nxt else None
        reason = None
        if limited and q.ready and not q.paused:
            reason = limited[1]
            next_due = retry if next_due is None else min(next_due, retry)
        idle = not claimed and not q.ready and not q.delayed and not q.running
        return ClaimBatch(claimed, next_due, now, idle, reason)

    @staticmethod
    def _limit(q: _Queue, now: int, count: int) -> tuple[tuple[int, str] | None, int]:
        """(room, reason) when a limit allows fewer than ``count`` starts, and when to try again."""
        room, reason, retry = count, "", now
        if q.concurrency is not None and q.concurrency - len(q.running) < room:
            room, reason, retry = q.concurrency - len(q.running), "concurrency", now + 50
        if q.rate_limit is not None:
            per = max(1, round(q.rate_limit.per * 1000))
            window = now // per
            left = q.rate_limit.max - q.started.get(window, 0)
            if left < room:
                room, reason, retry = left, "rate_limit", (window + 1) * per
        return ((max(0, room), reason), retry) if reason else (None, retry)

    def _holder(self, job_id: str, token: int) -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or job.status is not S.RUNNING or job.lease != token:
            return None
        return job

    async def extend_leases(self, queue: str, leases: Sequence[tuple[str, int]], lease_ms: int) -> list[bool]:
        now = now_ms()
        q = self._queue(queue)
        out = []
        for jid, token in leases:
            held = self._holder(jid, token) is not None
            if held:
                q.running.add(jid, float(now + lease_ms))
            out.append(held)
        return out

    async def complete(self, queue: str, done: Sequence[Completion]) -> list[bool]:
        now = now_ms()
        q = self._queue(queue)
        out = []
        for c in done:
            job = self._holder(c.job_id, c.token)
            if job is None:
                out.append(False)
                continue
            self._move(job, S.DONE, "complete", now)
            job.result = orjson.loads(c.result_json)
            q.running.remove(job.id)
            self._finish(job, now)
            self._count(queue, now, "done")
            out.append(True)
        return out

    async def complete_and_claim(
        self, queue: str, done: Sequence[Completion], count: int, lease_ms: int
    ) -> tuple[list[bool], ClaimBatch]:
        return await self.complete(queue, done), await self.claim(queue, count, lease_ms)

    async def fail(
        self,
        job: Job,
        token: int,
        error: str,
        retry_delay_ms: int,
        traceback: str | None = None,
        retry: bool = True,
    ) -> FailOutcome:
        now = now_ms()
        q = self._queue(job.queue)
        held = self._holder(job.id, token)
        if held is None:
            raise StaleLease(f"lease on job {job.id} is no longer held")
        self._record_error(held, error, now, traceback)
        q.running.remove(held.id)
        self._after_attempt(q, held, "fail", now, retry_delay_ms, retry)
        self._count(job.queue, now, "failed")
        if held.status is S.DEAD:
            self._count(job.queue, now, "dead")
        self._wake.set()  # idle workers re-read the next due time
        return FailOutcome(held.status, _handed_out(held))

    def _record_error(self, job: Job, error: str, now: int, traceback: str | None = None) -> None:
        entry = error_entry(job.attempts, error, now, traceback)
        job.last_error = entry["error"]
        job.errors = [*job.errors, entry][-MAX_ERROR_HISTORY:]

    def _after_attempt(
        self, q: _Queue, job: Job, by: str, now: int, retry_delay_ms: int | None, retry: bool = True
    ) -> None:
        """Attempts spent (or no retry) -> DEAD; else SCHEDULED after a delay, or PENDING at once when None."""
        if job.attempts > job.max_retries or not retry:
            self._move(job, S.DEAD, by, now)
            job.finished_at = now
            q.dead.add(job.id, float(now))
        elif retry_delay_ms is not None:
            self._move(job, S.SCHEDULED, by, now)
            job.run_at = now + retry_delay_ms
            q.delayed.add(job.id, float(job.run_at))
        else:
            self._move(job, S.PENDING, by, now)
            q.ready.add(job.id, self._ready_score(job))

    async def report_progress(self, queue: str, job_id: str, token: int, progress: dict[str, object]) -> bool:
        job = self._holder(job_id, token)
        if job is None:
            return False
        job.progress_info = dict(progress)
        return True

    async def release(self, queue: str, leases: Sequence[tuple[str, int]]) -> list[bool]:
        now = now_ms()
        q = self._queue(queue)
        out = []
        for jid, token in leases:
            job = self._holder(jid, token)
            if job is None:
                out.append(False)
                continue
            self._move(job, S.PENDING, "release", now)
            job.attempts -= 1
            job.lease += 1
            q.running.remove(jid)
            q.ready.add(jid, self._ready_score(job))
            out.append(True)
        self._wake.set()
        return out

    async def recover_expired(self, queue: str, limit: int = 500) -> Recovered:
        now = now_ms()
        q = self._queue(queue)
        requeued: list[str] = []
        dead: list[str] = []
        while len(requeued) + len(dead) < limit and (top := q.running.peek_min()) is not None and top[0] <= now:
            q.running.pop_min()
            job = self._jobs[top[1]]
            job.lease += 1  # the old holder's token is now stale even if it comes back
            self._record_error(job, LEASE_EXPIRED, now)  # in the history too, as in Lua
            self._after_attempt(q, job, "recover_expired", now, None)
            (dead if job.status is S.DEAD else requeued).append(job.id)
        if requeued:
            self._wake.set()
        return Recovered(requeued, dead)

    async def active_queues(self) -> list[str]:
        return sorted(n for n, q in self._queues.items() if q.ready or q.delayed or q.running)

    async def woken_queues(self) -> list[str]:
        return await self.active_queues()  # in process: as cheap as a notice

    async def mark_idle(self, queue: str) -> None:
        return None  # active_queues is computed from the queues themselves

    async def housekeeping(self) -> list[str]:
        self._sweep(now_ms())
        return []  # finished jobs go in the sweep itself

    async def wait_for_work(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return
        self._wake.clear()

    # -- schedules -----------------------------------------------------------------------
    async def put_schedule(self, schedule: Schedule) -> bool:
        old = self._schedules.get(schedule.name)
        last = (old.last_run_ms, old.last_job_id) if old else (None, None)
        fresh = schedule.with_state(None, *last)
        self._schedules[schedule.name] = fresh.with_state(fresh.next_after(now_ms()), *last)
        return old is None

    async def get_schedule(self, name: str) -> Schedule | None:
        return self._schedules.get(name)

    async def list_schedules(self) -> list[Schedule]:
        return [self._schedules[n] for n in sorted(self._schedules)]

    async def delete_schedule(self, name: str) -> bool:
        return self._schedules.pop(name, None) is not None

    async def advance_schedule(self, name: str, seen_next_ms: int, next_ms: int, ran_ms: int, job_id: str) -> bool:
        s = self._schedules.get(name)
        if s is None or s.next_run_ms != seen_next_ms:
            return False
        self._schedules[name] = s.with_state(next_ms, ran_ms, job_id)
        return True

    # -- worker registry -----------------------------------------------------------------
    async def register_worker(self, info: dict[str, object], ttl_ms: int) -> None:
        self._workers[str(info["id"])] = (dict(info), now_ms() + ttl_ms)

    async def unregister_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def list_workers(self) -> list[dict[str, object]]:
        now = now_ms()
        for wid in [w for w, (_, exp) in self._workers.items() if exp <= now]:
            del self._workers[wid]
        return sorted((dict(i) for i, _ in self._workers.values()), key=lambda i: str(i.get("started_at")))

    # -- dead-letter queue ---------------------------------------------------------------
    async def list_dead(self, queue: str | None, limit: int, cursor: str | None) -> Page:
        if queue is not None:
            return self._zpage(queue, self._queue(queue).dead, limit, cursor)
        return await all_queues_page(self, limit, cursor)

    async def replay(self, job_id: str) -> Job:
        now = now_ms()
        job = self._get(job_id)
        q = self._queue(job.queue)
        self._move(job, S.PENDING, "replay", now)
        q.dead.remove(job_id)
        job.attempts = 0
        job.finished_at = None
        return self._ready_now(job, q, now)

    def _ready_now(self, job: Job, q: _Queue, now: int) -> Job:
        """Into the ready set as if due now (replay, run now)."""
        job.run_at = now
        q.ready.add(job.id, self._ready_score(job))
        self._wake.set()
        return _handed_out(job)

    async def run_now(self, job_id: str) -> Job:
        now = now_ms()
        job = self._get(job_id)
        q = self._queue(job.queue)
        self._move(job, S.PENDING, "run_now", now)
        q.delayed.remove(job_id)
        return self._ready_now(job, q, now)

    async def replay_all(self, queue: str) -> int:
        q = self._queue(queue)
        ids = list(q.dead.scores)
        for jid in ids:
            await self.replay(jid)
        return len(ids)

    async def delete_dead(self, job_id: str) -> None:
        job = self._get(job_id)
        if job.status is not S.DEAD:
            raise InvalidTransition(f"job {job_id} is {job.status.value}", job.status.value)
        self._queue(job.queue).dead.remove(job_id)
        del self._jobs[job_id]
        key = job.idempotency_key
        if key is not None and self._idem.get((job.queue, key), ("",))[0] == job_id:  # only while it names this job
            del self._idem[(job.queue, key)]

    async def purge_dead(self, queue: str) -> int:
        ids = list(self._queue(queue).dead.scores)
        for jid in ids:
            await self.delete_dead(jid)
        return len(ids)
