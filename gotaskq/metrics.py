"""Prometheus metrics of one App, in a registry of its own (no module-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from .backends.base import Backend, QueueInfo
from .errors import GotaskqError
from .loop_metrics import LoopCounter, LoopHistogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
STATES = ("pending", "scheduled", "running", "dead")


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # Updated once or more per job: lock-free, written from the event loop only (loop_metrics).
        self.enqueued = LoopCounter("gotaskq_jobs_enqueued_total", "Jobs accepted", ["queue"])
        self.processed = LoopCounter(
            "gotaskq_jobs_processed_total", "Attempts finished, by outcome", ["queue", "status"]
        )
        self.duration = LoopHistogram("gotaskq_job_duration_seconds", "Handler run time", ["queue"], _LATENCY_BUCKETS)
        self.wait = LoopHistogram("gotaskq_job_wait_seconds", "Time from ready to start", ["queue"], _LATENCY_BUCKETS)
        for collector in (self.enqueued, self.processed, self.duration, self.wait):
            r.register(collector)
        self.depth = Gauge("gotaskq_queue_depth", "Jobs per queue and state", ["queue", "state"], registry=r)
        self.active_workers = Gauge("gotaskq_active_workers", "Handlers running now", registry=r)
        self.retried = Counter(
            "gotaskq_jobs_retried_total", "Failed attempts scheduled to retry", ["queue"], registry=r
        )
        self.dead = Counter("gotaskq_jobs_dead_total", "Jobs moved to the DLQ", ["queue"], registry=r)
        self.recovered = Counter(
            "gotaskq_jobs_recovered_total", "Expired leases returned to the queue or the DLQ", ["queue"], registry=r
        )
        self.stale = Counter(
            "gotaskq_stale_completions_total", "Writes refused because the lease was stale", registry=r
        )
        self.up = Gauge("gotaskq_backend_up", "1 when the backend answered the last scrape", registry=r)
        self.workers = Gauge("gotaskq_workers", "Live worker processes (from the backend-wide registry)", registry=r)
        self.schedule_runs = Counter(
            "gotaskq_schedule_runs_total", "Schedule ticks that enqueued their job", ["schedule"], registry=r
        )
        self.external_claims = Counter(
            "gotaskq_external_claims_total", "Jobs handed to external workers over HTTP", ["queue"], registry=r
        )
        self.limited = Counter(
            "gotaskq_queue_limited_total",
            "Claims that left ready jobs waiting because of a queue limit",
            ["queue", "reason"],
            registry=r,
        )

    def queue_created(self, queue: str) -> None:
        """Create a queue's series at zero, so dashboards show it before its first job."""
        self.enqueued.labels(queue)
        self.retried.labels(queue)
        self.dead.labels(queue)
        self.recovered.labels(queue)
        for status in ("done", "failed", "dead"):
            self.processed.labels(queue, status)

    def set_depth(self, info: QueueInfo) -> None:
        for state in STATES:
            self.depth.labels(info.name, state).set(getattr(info, state))

    async def refresh(self, backend: Backend) -> None:
        """Read queue depths from the backend at scrape time: true across processes."""
        try:
            for info in await backend.queue_infos(await backend.list_queues()):
                self.queue_created(info.name)
                self.set_depth(info)
            self.workers.set(len(await backend.list_workers()))
            self.up.set(1)
        except GotaskqError:
            self.up.set(0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
