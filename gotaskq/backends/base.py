"""The Backend protocol: every storage operation gotaskq needs, with one meaning for all stores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..job import Job, NewJob, iso_ms
from ..schedules import Schedule
from ..states import JobStatus

STATS_MINUTES = 25 * 60  # per-minute counts are kept this long (a day, and an hour to spare)
LEASE_EXPIRED = "LeaseExpired: the worker stopped heartbeating before the lease ran out"


@dataclass(slots=True)  # not frozen, as Claimed: made for every job, and a frozen init costs ~2.5x
class Enqueued:
    """Result of an enqueue: the job, and whether it was created now (False: idempotent replay)."""

    job: Job
    created: bool


@dataclass(slots=True)  # not frozen, as Completion: made for every job, and a frozen init costs ~2x
class Claimed:
    """A job handed to a worker, with the lease token that fences every later write. The token
    is also ``job.lease``: a backend hands out a copy of the job leased with it (the worker's
    progress reports fence with ``job.lease``)."""

    job: Job
    token: int


@dataclass(slots=True, frozen=True)
class ClaimBatch:
    jobs: list[Claimed]
    next_due_ms: int | None  # when the earliest delayed job of the queue becomes due
    now_ms: int  # the store's clock at the claim: sleeps until next_due are measured on it
    idle: bool = False  # nothing waits or runs in the queue: the worker may stop polling it
    limited: str | None = None  # "concurrency" or "rate_limit": jobs waited because of a limit


@dataclass(slots=True)  # see Claimed
class Completion:
    job_id: str
    token: int
    result_json: bytes
    # Whether the job has an idempotency key (immutable, known from its claim); None: not known,
    # the store looks. Redis then skips a field lookup a job (~2,600 instructions, callgrind).
    has_key: bool | None = None

    @classmethod
    def of(cls, job: Job, token: int, result_json: bytes) -> Completion:
        """The completion of a job known whole (claimed, or read): whether it has a key is known."""
        return cls(job.id, token, result_json, job.idempotency_key is not None)


@dataclass(slots=True, frozen=True)
class FailOutcome:
    status: JobStatus  # SCHEDULED (will retry) or DEAD
    job: Job


@dataclass(slots=True, frozen=True)
class Recovered:
    requeued: list[str]
    dead: list[str]
    expired: int = 0  # DONE records deleted as their COMPLETE_JOB_TTL passed (Redis; memory drops them itself)


@dataclass(slots=True, frozen=True)
class RateLimit:
    """At most ``max`` job starts in each window of ``per`` seconds, across every worker."""

    max: int
    per: float

    def to_dict(self) -> dict[str, object]:
        return {"max": self.max, "per": self.per}


UNSET: object = object()  # "leave as it is" in QueueSettings


@dataclass(slots=True, frozen=True)
class QueueSettings:
    """What PATCH /queue/{name} may change; a field left UNSET keeps its value, None clears it."""

    concurrency: int | object | None = UNSET
    rate_limit: RateLimit | object | None = UNSET
    paused: bool | object = UNSET
    external: bool | object = UNSET  # served by external workers over HTTP, not in-process ones


@dataclass(slots=True, frozen=True)
class QueueInfo:
    name: str
    paused: bool
    pending: int
    scheduled: int
    running: int
    dead: int
    concurrency: int | None = None  # RUNNING jobs at most, across every worker
    rate_limit: RateLimit | None = None
    external: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "paused": self.paused,
            "pending": self.pending,
            "scheduled": self.scheduled,
            "running": self.running,
            "dead": self.dead,
            "concurrency": self.concurrency,
            "rate_limit": None if self.rate_limit is None else self.rate_limit.to_dict(),
            "external": self.external,
        }


@dataclass(slots=True, frozen=True)
class MinuteStats:
    """Attempts that finished in one minute of one queue (across every worker process)."""

    minute: int  # epoch minute
    done: int
    failed: int
    dead: int

    def to_dict(self) -> dict[str, object]:
        return {"minute": iso_ms(self.minute * 60_000), "done": self.done, "failed": self.failed, "dead": self.dead}


@dataclass(slots=True, frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


class Backend(Protocol):
    """Storage for jobs and queues. Every method is one atomic transition (or a read).

    Lease tokens fence writes: ``complete``, ``fail``, ``extend_leases`` and ``release``
    refuse (return False / raise StaleLease) when the token is not the job's current lease.
    """

    name: str

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise BackendUnavailable when the store cannot be reached."""

    # queues
    async def create_queue(self, name: str) -> bool:
        """Create a queue; True if created now, False if it existed."""

    async def queue_exists(self, name: str) -> bool: ...
    async def list_queues(self) -> list[str]: ...
    async def queue_info(self, name: str) -> QueueInfo:
        """Counts per state; raise QueueNotFound."""

    async def queue_infos(self, names: Sequence[str]) -> list[QueueInfo]:
        """queue_info of many queues at once (one round trip per node); unknown ones are left out."""

    async def set_paused(self, name: str, paused: bool) -> QueueInfo: ...
    async def configure_queue(self, name: str, settings: QueueSettings) -> QueueInfo:
        """Change a queue's concurrency, rate limit or paused flag (UNSET fields stay)."""

    async def purge_queue(self, name: str) -> int:
        """Remove every PENDING and SCHEDULED job of the queue; how many went."""

    async def delete_queue(self, name: str) -> None:
        """Remove the queue and every job of it; raise QueueBusy while a job RUNS, QueueNotFound."""

    async def queue_stats(self, name: str, minutes: int) -> list[MinuteStats]:
        """Per-minute done/failed/dead counts of the last ``minutes`` minutes (at most
        STATS_MINUTES), oldest first."""

    # producers
    async def enqueue(self, spec: NewJob) -> Enqueued:
        """Persist a job atomically; raise QueueNotFound, QueueFull, IdempotencyConflict."""

    async def enqueue_many(self, specs: Sequence[NewJob]) -> list[Enqueued]: ...
    async def get_job(self, job_id: str) -> Job | None: ...
    async def cancel(self, job_id: str) -> Job:
        """PENDING/SCHEDULED -> CANCELLED; raise JobNotFound or InvalidTransition."""

    async def list_jobs(self, queue: str, status: JobStatus, limit: int, cursor: str | None) -> Page:
        """Jobs of one queue in one waiting/running/dead state, newest first; DONE: completed
        jobs still kept (until COMPLETE_JOB_TTL), the latest to expire first."""

    async def run_now(self, job_id: str) -> Job:
        """SCHEDULED -> PENDING at once (its run_at becomes now); raise JobNotFound or InvalidTransition."""

    # workers
    async def claim(self, queue: str, count: int, lease_ms: int, external: bool = False) -> ClaimBatch:
        """Promote due delayed jobs, then lease up to ``count`` ready jobs (attempts += 1).
        ``external``: a claim over HTTP (raise QueueNotExternal on a queue of in-process
        workers); an in-process claim of an external queue gets nothing (and idle)."""

    async def extend_leases(self, queue: str, leases: Sequence[tuple[str, int]], lease_ms: int) -> list[bool]: ...
    async def complete(self, queue: str, done: Sequence[Completion]) -> list[bool]:
        """RUNNING -> DONE for each (False where the lease is stale)."""

    async def complete_and_claim(
        self, queue: str, done: Sequence[Completion], count: int, lease_ms: int
    ) -> tuple[list[bool], ClaimBatch]:
        """``complete(queue, done)`` then ``claim(queue, count, lease_ms)``: a worker's next jobs
        with its last outcomes (in one round trip where the store can)."""

    async def fail(
        self,
        job: Job,
        token: int,
        error: str,
        retry_delay_ms: int,
        traceback: str | None = None,
        retry: bool = True,
    ) -> FailOutcome:
        """RUNNING -> SCHEDULED (attempts left, and ``retry``) or DEAD, the error (and traceback)
        added to the job's history; raise StaleLease."""

    async def report_progress(self, queue: str, job_id: str, token: int, progress: dict[str, object]) -> bool:
        """Store a running job's progress; False (dropped) when the lease is no longer held."""

    async def release(self, queue: str, leases: Sequence[tuple[str, int]]) -> list[bool]:
        """RUNNING -> PENDING without counting the attempt (graceful shutdown)."""

    async def recover_expired(self, queue: str, limit: int = 500) -> Recovered:
        """Jobs whose lease deadline passed: back to PENDING, or DEAD when attempts are spent."""

    async def active_queues(self) -> list[str]:
        """Queues that may hold waiting or running jobs (a superset): what a worker polls."""

    async def woken_queues(self) -> list[str]:
        """Queues named by wake-ups since the last call, known without a round trip to the store."""

    async def mark_idle(self, queue: str) -> None:
        """A claim found ``queue`` idle: stop listing it until an enqueue or replay."""

    async def housekeeping(self) -> list[str]:
        """Bounded background upkeep (expired entries), run by workers now and then; the queues
        whose recovery pass has expired DONE records to delete (Redis: only one process a minute
        is told, see keys.py)."""

    async def wait_for_work(self, timeout: float) -> None:
        """Sleep until an enqueue may have made work available, or ``timeout`` seconds."""

    # schedules
    async def put_schedule(self, schedule: Schedule) -> bool:
        """Create or replace (keeping its run history); next_run is recomputed. True if created."""

    async def get_schedule(self, name: str) -> Schedule | None: ...
    async def list_schedules(self) -> list[Schedule]: ...
    async def delete_schedule(self, name: str) -> bool: ...
    async def advance_schedule(self, name: str, seen_next_ms: int, next_ms: int, ran_ms: int, job_id: str) -> bool:
        """Compare-and-set of next_run after a tick ran: True for the one caller that moved it."""

    # worker registry
    async def register_worker(self, info: dict[str, object], ttl_ms: int) -> None:
        """Record (or refresh) a worker process; it drops out ``ttl_ms`` after its last refresh."""

    async def unregister_worker(self, worker_id: str) -> None: ...
    async def list_workers(self) -> list[dict[str, object]]:
        """Live worker processes, oldest first."""

    # dead-letter queue
    async def list_dead(self, queue: str | None, limit: int, cursor: str | None) -> Page: ...
    async def replay(self, job_id: str) -> Job:
        """DEAD -> PENDING with attempts reset; raise JobNotFound or InvalidTransition."""

    async def replay_all(self, queue: str) -> int: ...
    async def delete_dead(self, job_id: str) -> None:
        """Remove a DEAD job for good; raise JobNotFound or InvalidTransition."""

    async def purge_dead(self, queue: str) -> int: ...
