"""Runs due schedule ticks; every process that runs workers runs one (see schedules.py for why
any number of them make exactly one job per tick)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .errors import IdempotencyConflict, InvalidInput, QueueNotFound
from .job import job_from_fields, now_ms
from .schedules import Schedule, tick_key

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("gotaskq.scheduler")
MAX_SLEEP_S = 1.0  # new and changed schedules are seen within a second
MIN_SLEEP_S = 0.01


class Scheduler:
    def __init__(self, app: App) -> None:
        self.app = app

    async def run_due(self) -> float:
        """Run every due tick once; how long until the next one may be due (seconds)."""
        now = now_ms()
        wait = MAX_SLEEP_S
        for schedule in await self.app.backend.list_schedules():
            if schedule.paused or schedule.next_run_ms is None:
                continue
            due = schedule.next_run_ms
            if due <= now:
                due = await self._tick(schedule, now)
            wait = min(wait, (due - now) / 1000)
        return max(MIN_SLEEP_S, wait)

    async def _tick(self, schedule: Schedule, now: int) -> int:
        """Enqueue the due tick's job and move the schedule on; when its next tick is."""
        tick = schedule.next_run_ms
        assert tick is not None
        s = self.app.settings
        fields = {**schedule.job, "idempotency_key": tick_key(schedule.name, tick)}
        try:
            job_id = (await self.app.submit(job_from_fields(fields, s.max_retries, s.job_timeout))).job.id
        except IdempotencyConflict as exc:  # the schedule's job changed after this tick was enqueued
            job_id = exc.job_id
        except (InvalidInput, QueueNotFound) as exc:  # a tick that cannot become a job is skipped
            log.error("schedule %s: tick skipped, its job cannot be enqueued: %s", schedule.name, exc)
            job_id = ""
        # Any other error (the store is unavailable) leaves the tick due: it is tried again.
        after = schedule.with_state(tick, tick, job_id)  # the next tick is on the grid of this one
        nxt = after.next_after(now)
        if await self.app.backend.advance_schedule(schedule.name, tick, nxt, tick, job_id):
            self.app.metrics.schedule_runs.labels(schedule.name).inc()
        return nxt

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                wait = await self.run_due()
            except Exception as exc:  # the scheduler must outlive any backend error
                log.warning("scheduler pass failed: %s", exc)
                wait = MAX_SLEEP_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), wait)
