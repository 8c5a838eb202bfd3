"""The App: the public library API that ties settings, a backend, handlers and metrics together."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .backends.base import STATS_MINUTES, Backend, Enqueued, MinuteStats, Page, QueueInfo, QueueSettings
from .config import Settings
from .errors import BackendUnavailable, ConfigError, InvalidInput, QueueNotFound, ScheduleNotFound
from .handlers import Handler, HandlerRegistry
from .job import Job, JSONValue, NewJob, job_from_fields, validate_job_id, validate_queue_name
from .metrics import Metrics
from .schedules import Schedule, schedule_from_json
from .states import JobStatus

TYPES_CACHE_S = 1.0


def import_handlers(module: str) -> Any:
    """A GOTASKQ_HANDLERS module, found from the working directory as `python -m` finds it;
    a missing one is a ConfigError naming it (one line, no traceback)."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise ConfigError(f"GOTASKQ_HANDLERS: no module named {module!r} (looked in {cwd} and sys.path)") from None
        raise  # STRICT_TYPES reads the worker registry at most this often


log = logging.getLogger("gotaskq")
DEFAULT_QUEUE = "default"


def make_backend(settings: Settings) -> Backend:
    """RedisBackend when REDIS_URL or REDIS_SENTINELS is configured, else the in-process MemoryBackend."""
    if settings.use_redis:
        from .backends.redis import RedisBackend

        return RedisBackend(settings)
    from .backends.memory import MemoryBackend

    return MemoryBackend(settings)


class App:
    """A gotaskq application.

    >>> app = App()                      # settings from the environment
    >>> @app.task("email")
    ... async def send(job): ...
    >>> await app.start(); job = await app.enqueue("email", {"to": "a@b.c"})
    """

    def __init__(
        self,
        settings: Settings | None = None,
        backend: Backend | None = None,
        *,
        builtins: bool = True,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.backend: Backend = backend or make_backend(self.settings)
        self.registry = HandlerRegistry()
        self.metrics = Metrics()
        self._started = False
        self.workers: list[Any] = []  # Worker pools made by worker(): a signal handler stops them
        self._live_types: set[str] = set()
        self._types_at = float("-inf")
        if builtins:
            from .builtin_handlers import register_builtins

            register_builtins(self.registry, self.settings)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect the backend, make sure the ``default`` queue exists, import GOTASKQ_HANDLERS."""
        if self._started:
            return
        for module in self.settings.handlers:
            mod = import_handlers(module)
            register = getattr(mod, "register", None)
            if callable(register):
                register(self)
        await self.backend.connect()
        try:
            await self.backend.create_queue(DEFAULT_QUEUE)
            for name in await self.backend.list_queues():
                self.metrics.queue_created(name)
        except BackendUnavailable as exc:
            log.warning("backend unavailable at start-up (%s); serving anyway, retrying on use", exc)
        self._started = True

    async def close(self) -> None:
        await self.backend.close()
        self._started = False

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def task(self, job_type: str) -> Callable[[Handler], Handler]:
        """Decorator registering a handler for ``job_type``; it receives the ``Job``."""
        return self.registry.task(job_type)

    # -- producers -------------------------------------------------------------------------
    def new_job(
        self,
        type: str,
        payload: JSONValue = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        run_at: float | str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> NewJob:
        """A validated job request (see gotaskq.job.JOB_REQUEST_FIELDS); None means the default,
        and MAX_RETRIES and JOB_TIMEOUT are the defaults of ``max_retries`` and ``timeout``."""
        values: dict[str, Any] = {"type": type, "payload": payload}
        # Only what is given (None is the default): a check costs as much as this test ten times.
        if queue is not None:
            values["queue"] = queue
        if priority is not None:
            values["priority"] = priority
        if delay is not None:
            values["delay"] = delay
        if run_at is not None:
            values["run_at"] = run_at
        if max_retries is not None:
            values["max_retries"] = max_retries
        if timeout is not None:
            values["timeout"] = timeout
        if idempotency_key is not None:
            values["idempotency_key"] = idempotency_key
        return job_from_fields(values, self.settings.max_retries, self.settings.job_timeout)

    async def enqueue(self, type: str, payload: JSONValue = None, **options: Any) -> Job:
        """Enqueue one job and return it once persisted. Options as in ``new_job``."""
        return (await self.submit(self.new_job(type, payload, **options))).job

    async def _check_types(self, specs: Sequence[NewJob]) -> None:
        """STRICT_TYPES: refuse a job type no live worker process has a handler for."""
        now = time.monotonic()
        if now - self._types_at > TYPES_CACHE_S:
            live = await self.backend.list_workers()
            self._live_types = {t for w in live for t in w.get("types", ())}  # type: ignore[attr-defined]
            self._types_at = now
        unknown = sorted({s.type for s in specs} - self._live_types)
        if unknown:
            raise InvalidInput(
                f"no live worker handles job type {unknown[0]!r} (STRICT_TYPES)",
                {"type": "no live worker process handles this type"},
            )

    async def submit(self, spec: NewJob) -> Enqueued:
        """Enqueue a built job; ``created`` is False when an idempotency key matched."""
        if self.settings.strict_types:
            await self._check_types([spec])
        if self.settings.auto_create_queues:  # _ensure_queue, without a coroutine per job
            await self.create_queue(spec.queue)
        try:
            out = await self.backend.enqueue(spec)
        except QueueNotFound:
            if spec.queue != DEFAULT_QUEUE:
                raise
            await self.create_queue(DEFAULT_QUEUE)  # always exists, even after Redis lost its data
            out = await self.backend.enqueue(spec)
        if out.created:
            self.metrics.enqueued.labels(spec.queue).inc()
        return out

    async def submit_many(self, specs: Sequence[NewJob]) -> list[Enqueued]:
        """Enqueue many jobs in as few round trips as the backend allows."""
        if self.settings.strict_types:
            await self._check_types(specs)
        names = sorted({s.queue for s in specs})
        for name in names:
            await self._ensure_queue(name)
        try:
            out = await self.backend.enqueue_many(specs)
        except QueueNotFound:
            if DEFAULT_QUEUE not in names:
                raise
            await self.create_queue(DEFAULT_QUEUE)  # always exists, even after Redis lost its data
            out = await self.backend.enqueue_many(specs)
        created: dict[str, int] = {}
        for e in out:
            if e.created:
                created[e.job.queue] = created.get(e.job.queue, 0) + 1
        for queue, n in created.items():
            self.metrics.enqueued.labels(queue).inc(n)
        return out

    async def _ensure_queue(self, name: str) -> None:
        if self.settings.auto_create_queues:
            await self.create_queue(name)

    async def get_job(self, job_id: str) -> Job | None:
        return await self.backend.get_job(validate_job_id(job_id))

    async def cancel(self, job_id: str) -> Job:
        return await self.backend.cancel(validate_job_id(job_id))

    # -- queues ----------------------------------------------------------------------------
    async def run_now(self, job_id: str) -> Job:
        """A SCHEDULED job (delayed, or waiting for a retry) becomes PENDING at once."""
        return await self.backend.run_now(validate_job_id(job_id))

    async def create_queue(self, name: str) -> bool:
        created = await self.backend.create_queue(validate_queue_name(name))
        self.metrics.queue_created(name)
        return created

    async def list_queues(self) -> list[QueueInfo]:
        return await self.backend.queue_infos(await self.backend.list_queues())

    async def queue_info(self, name: str) -> QueueInfo:
        return await self.backend.queue_info(validate_queue_name(name))

    async def configure_queue(self, name: str, settings: QueueSettings) -> QueueInfo:
        """Change a queue's concurrency, rate limit or paused flag (fields left UNSET stay)."""
        return await self.backend.configure_queue(validate_queue_name(name), settings)

    async def purge_queue(self, name: str) -> int:
        """Remove every PENDING and SCHEDULED job of the queue; how many went."""
        return await self.backend.purge_queue(validate_queue_name(name))

    async def delete_queue(self, name: str) -> None:
        """Remove the queue and all its jobs (QueueBusy while one runs); ``default`` comes back empty."""
        await self.backend.delete_queue(validate_queue_name(name))

    # -- schedules -------------------------------------------------------------------------
    async def put_schedule(self, name: str, body: object) -> tuple[Schedule, bool]:
        """Create or replace a schedule from a PUT /schedules/{name} body; (schedule, created)."""
        s = self.settings
        created = await self.backend.put_schedule(schedule_from_json(name, body, s.max_retries, s.job_timeout))
        return await self.get_schedule(name), created

    async def get_schedule(self, name: str) -> Schedule:
        found = await self.backend.get_schedule(name)
        if found is None:
            raise ScheduleNotFound(f"schedule {name!r} does not exist")
        return found

    async def list_schedules(self) -> list[Schedule]:
        return await self.backend.list_schedules()

    async def delete_schedule(self, name: str) -> None:
        if not await self.backend.delete_schedule(name):
            raise ScheduleNotFound(f"schedule {name!r} does not exist")

    async def pause(self, name: str) -> QueueInfo:
        return await self.backend.set_paused(validate_queue_name(name), True)

    async def resume(self, name: str) -> QueueInfo:
        return await self.backend.set_paused(validate_queue_name(name), False)

    async def queue_stats(self, name: str, minutes: int = 15) -> list[MinuteStats]:
        """Per-minute done/failed/dead counts of a queue, oldest first (true across processes)."""
        return await self.backend.queue_stats(validate_queue_name(name), max(1, min(minutes, STATS_MINUTES)))

    async def list_jobs(self, queue: str, status: JobStatus, limit: int = 50, cursor: str | None = None) -> Page:
        return await self.backend.list_jobs(validate_queue_name(queue), status, limit, cursor)

    # -- dead-letter queue -----------------------------------------------------------------
    async def dlq_list(self, queue: str | None = None, limit: int = 100, cursor: str | None = None) -> Page:
        if queue is not None:
            validate_queue_name(queue)
        return await self.backend.list_dead(queue, limit, cursor)

    async def dlq_replay(self, job_id: str) -> Job:
        return await self.backend.replay(validate_job_id(job_id))

    async def dlq_replay_all(self, queue: str) -> int:
        return await self.backend.replay_all(validate_queue_name(queue))

    async def dlq_delete(self, job_id: str) -> None:
        await self.backend.delete_dead(validate_job_id(job_id))

    async def dlq_purge(self, queue: str) -> int:
        return await self.backend.purge_dead(validate_queue_name(queue))

    # -- workers ---------------------------------------------------------------------------
    def worker(self, concurrency: int | None = None) -> Any:
        """A Worker pool for this app (``await worker.run()`` until ``worker.stop()``)."""
        from .worker import Worker

        worker = Worker(self, concurrency=concurrency)
        self.workers.append(worker)
        return worker
