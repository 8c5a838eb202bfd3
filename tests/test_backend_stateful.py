"""Random operation sequences applied side by side to several backends and to a model of them.

Job ids differ between backends, so jobs are matched by creation order. After every step all
backends must agree with the model (status, attempts, counts) and keep the index invariants.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from conftest import SETTINGS_DEFAULTS, OpenBackend, RedisServer, new_backend
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from invariants import PLACED, check_invariants

from gotaskq.backends.base import Backend, Completion
from gotaskq.config import Settings
from gotaskq.errors import InvalidTransition, StaleLease
from gotaskq.job import NewJob
from gotaskq.states import JobStatus

S = JobStatus
T = TypeVar("T")
QUEUES = ("a", "b")
LONG_LEASE_MS = 60_000
# Long TTLs: no finished job may expire during a run, so every job stays accountable.
SETTINGS = Settings(**{**SETTINGS_DEFAULTS, "complete_job_ttl": 3600.0, "idempotency_ttl": 3600.0})

queues = st.sampled_from(QUEUES)
picks = st.integers(min_value=0, max_value=10**6)
new_jobs = st.tuples(queues, st.integers(0, 10), st.booleans(), st.integers(0, 1))


@dataclass
class ModelJob:
    """What every backend should hold for one job; ``ids``/``tokens`` are per backend."""

    spec: NewJob
    status: JobStatus
    ids: list[str]
    attempts: int = 0
    due: bool = False  # SCHEDULED by a zero-delay retry: the next claim promotes it
    tokens: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)  # a token that must be refused from now on
    deleted: bool = False

    @property
    def queue(self) -> str:
        return self.spec.queue


class BackendsAgree(RuleBasedStateMachine):
    def __init__(self, kinds: list[str], server: RedisServer | None = None) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        if server is not None:
            server.flushall()
        self.opened: list[OpenBackend] = [
            new_backend(k, SETTINGS, None if server is None else server.url) for k in kinds
        ]
        self.backends: list[Backend] = [o.backend for o in self.opened]
        for b in self.backends:
            self.run(b.connect())
            for q in QUEUES:
                self.run(b.create_queue(q))
        self.jobs: list[ModelJob] = []
        self.serial = 0

    def teardown(self) -> None:
        try:
            for o in self.opened:
                self.run(o.close())
        finally:
            self.loop.close()

    def run(self, aw: Awaitable[T]) -> T:
        return self.loop.run_until_complete(aw)

    def each(self, fn: Callable[[int, Backend], Awaitable[T]]) -> list[T]:
        return [self.run(fn(i, b)) for i, b in enumerate(self.backends)]

    def index(self, b: int) -> dict[str, ModelJob]:
        return {j.ids[b]: j for j in self.jobs if not j.deleted}

    def having(self, *statuses: JobStatus) -> list[ModelJob]:
        return [j for j in self.jobs if not j.deleted and j.status in statuses]

    def claimable(self, queue: str) -> list[ModelJob]:
        return [
            j for j in self.jobs if j.queue == queue and (j.status is S.PENDING or (j.status is S.SCHEDULED and j.due))
        ]

    def _promote(self, queue: str) -> None:
        for j in self.claimable(queue):
            j.status, j.due = S.PENDING, False

    def _leased(self, job: ModelJob, b: int, token: int) -> None:
        assert token > job.tokens[b], "lease tokens must only increase"
        job.tokens[b] = token

    def _fence(self, job: ModelJob) -> None:
        job.stale = list(job.tokens)

    # -- producers ---------------------------------------------------------------------------
    def _enqueue(self, spec: NewJob) -> None:
        fresh = [j for j in self.jobs if j.spec == spec and not j.deleted]
        results = self.each(lambda b, be: be.enqueue(spec))
        if fresh:  # the same request again: the idempotency key hands back the same job
            job = fresh[0]
            assert [r.created for r in results] == [False] * len(results)
            assert [r.job.id for r in results] == job.ids
            return
        assert all(r.created for r in results)
        status = S.SCHEDULED if spec.delay_ms else S.PENDING
        assert [r.job.status for r in results] == [status] * len(results)
        self.jobs.append(ModelJob(spec, status, [r.job.id for r in results], tokens=[0] * len(results)))

    @initialize(specs=st.lists(new_jobs, min_size=1, max_size=6))
    def start_with_some_jobs(self, specs: list[tuple[str, int, bool, int]]) -> None:
        for args in specs:
            self.enqueue(*args)

    @rule(args=new_jobs)
    def enqueue_one(self, args: tuple[str, int, bool, int]) -> None:
        self.enqueue(*args)

    def enqueue(self, queue: str, priority: int, delayed: bool, max_retries: int) -> None:
        self.serial += 1
        self._enqueue(
            NewJob.build(
                "t",
                {"n": self.serial},
                queue=queue,
                priority=priority,
                delay=60 if delayed else 0,
                max_retries=max_retries,
                idempotency_key=f"key-{self.serial}",
            )
        )

    @precondition(lambda self: self.jobs)
    @rule(pick=picks)
    def enqueue_again(self, pick: int) -> None:
        """A producer retrying: created again only if the first job was deleted from the DLQ."""
        self._enqueue(self.jobs[pick % len(self.jobs)].spec)

    @rule(queue=queues)
    def pause_claim_resume(self, queue: str) -> None:
        """A paused queue hands out nothing (due retries are still promoted); resuming works."""
        assert [i.paused for i in self.each(lambda b, be: be.set_paused(queue, True))] == [True] * len(self.backends)
        self._claim(queue, 1000, LONG_LEASE_MS, [])
        assert [i.paused for i in self.each(lambda b, be: be.set_paused(queue, False))] == [False] * len(self.backends)

    # -- workers -----------------------------------------------------------------------------
    def _claim(self, queue: str, count: int, lease_ms: int, expected: list[ModelJob]) -> None:
        batches = self.each(lambda b, be: be.claim(queue, count, lease_ms))
        self._promote(queue)
        for b, batch in enumerate(batches):
            idx = self.index(b)
            got = [idx[c.job.id] for c in batch.jobs]
            assert sorted(map(id, got)) == sorted(map(id, expected)), (self.backends[b].name, got, expected)
            for c in batch.jobs:
                job = idx[c.job.id]
                assert (c.job.status, c.job.attempts) == (S.RUNNING, job.attempts + 1)
                self._leased(job, b, c.token)
        for job in expected:
            job.status, job.attempts = S.RUNNING, job.attempts + 1

    def any_claimable(self) -> bool:
        return any(self.claimable(q) for q in QUEUES)

    @precondition(any_claimable)
    @rule(queue=queues)
    def claim_all(self, queue: str) -> None:
        self._claim(queue, 1000, LONG_LEASE_MS, self.claimable(queue))

    @precondition(any_claimable)
    @rule(queue=queues)
    def claim_top(self, queue: str) -> None:
        """count=1 hands out the highest priority; only a unique top is predictable."""
        ready = self.claimable(queue)
        top = max((j.spec.priority for j in ready), default=None)
        best = [j for j in ready if j.spec.priority == top]
        if len(best) > 1:
            return
        self._claim(queue, 1, LONG_LEASE_MS, best)

    @precondition(any_claimable)
    @rule(queue=queues)
    def claim_and_lose_the_worker(self, queue: str) -> None:
        """Claim with a 1 ms lease, let it lapse, recover: each lapse spends an attempt."""
        expected = self.claimable(queue)
        self._claim(queue, 1000, 1, expected)
        self.run(asyncio.sleep(0.005))
        recovered = self.each(lambda b, be: be.recover_expired(queue))
        dead = {id(j) for j in expected if j.attempts > j.spec.max_retries}
        requeued = {id(j) for j in expected} - dead
        for b, r in enumerate(recovered):
            idx = self.index(b)
            assert ({id(idx[i]) for i in r.dead}, {id(idx[i]) for i in r.requeued}) == (dead, requeued)
        for job in expected:
            job.status = S.DEAD if id(job) in dead else S.PENDING
            self._fence(job)

    @precondition(lambda self: self.having(S.RUNNING))
    @rule(pick=picks, ok=st.booleans())
    def handler_returns(self, pick: int, ok: bool) -> None:
        self._report(pick, "complete" if ok else "fail")

    @precondition(lambda self: self.having(S.RUNNING))
    @rule(pick=picks, stop=st.booleans())
    def worker_heartbeats_or_stops(self, pick: int, stop: bool) -> None:
        self._report(pick, "release" if stop else "heartbeat")

    def _report(self, pick: int, outcome: str) -> None:
        """A worker holding a lease reports back (or just heartbeats)."""
        running = self.having(S.RUNNING)
        job = running[pick % len(running)]
        n = len(self.backends)
        if outcome == "heartbeat":
            out = self.each(lambda b, be: be.extend_leases(job.queue, [(job.ids[b], job.tokens[b])], 60_000))
            assert out == [[True]] * n
            return
        if outcome == "complete":
            done = self.each(lambda b, be: be.complete(job.queue, [Completion(job.ids[b], job.tokens[b], b'{"ok":1}')]))
            assert done == [[True]] * n
            job.status = S.DONE
        elif outcome == "release":
            released = self.each(lambda b, be: be.release(job.queue, [(job.ids[b], job.tokens[b])]))
            assert released == [[True]] * n
            job.status, job.attempts = S.PENDING, job.attempts - 1
        else:

            async def fail(b: int, be: Backend) -> JobStatus:
                current = await be.get_job(job.ids[b])  # fail() takes the job as the worker holds it
                assert current is not None
                return (await be.fail(current, job.tokens[b], f"boom {job.attempts}", 0)).status

            expected = S.DEAD if job.attempts > job.spec.max_retries else S.SCHEDULED
            assert self.each(fail) == [expected] * n
            job.status, job.due = expected, expected is S.SCHEDULED
        self._fence(job)

    @precondition(lambda self: any(j.stale and not j.deleted for j in self.jobs))
    @rule(pick=picks)
    def stale_holder_writes(self, pick: int) -> None:
        """A worker whose lease ended comes back: every write it tries is refused."""
        fenced = [j for j in self.jobs if j.stale and not j.deleted]
        job = fenced[pick % len(fenced)]

        async def go(b: int, be: Backend) -> list[object]:
            jid, token = job.ids[b], job.stale[b]
            out: list[object] = [
                await be.complete(job.queue, [Completion(jid, token, b"1")]),
                await be.extend_leases(job.queue, [(jid, token)], LONG_LEASE_MS),
                await be.release(job.queue, [(jid, token)]),
            ]
            current = await be.get_job(jid)
            assert current is not None
            try:
                await be.fail(current, token, "late", 0)
            except StaleLease:
                out.append("stale")
            return out

        assert self.each(go) == [[[False], [False], [False], "stale"]] * len(self.backends)

    # -- operators ---------------------------------------------------------------------------
    @precondition(lambda self: self.having(*S))
    @rule(pick=picks, action=st.sampled_from(["cancel", "replay", "delete"]))
    def operator_acts_on_a_job(self, pick: int, action: str) -> None:
        """cancel (waiting jobs), replay and delete (DEAD jobs); every other state refuses."""
        live = self.having(*S)
        job = live[pick % len(live)]
        allowed = job.status in ((S.PENDING, S.SCHEDULED) if action == "cancel" else (S.DEAD,))

        async def go(b: int, be: Backend) -> tuple[JobStatus, int] | str | None:
            jid = job.ids[b]
            try:
                if action == "delete":
                    return await be.delete_dead(jid)
                done = await (be.cancel(jid) if action == "cancel" else be.replay(jid))
                return done.status, done.attempts
            except InvalidTransition:
                return "refused"

        outcome = {"cancel": (S.CANCELLED, job.attempts), "replay": (S.PENDING, 0), "delete": None}[action]
        assert self.each(go) == [outcome if allowed else "refused"] * len(self.backends)
        if not allowed:
            return
        if action == "delete":
            job.deleted = True
        else:
            job.status, job.attempts, job.due = (*outcome, False)  # type: ignore[misc]

    @precondition(lambda self: self.having(S.DEAD))
    @rule(pick=picks, purge=st.booleans())
    def whole_dlq(self, pick: int, purge: bool) -> None:
        """replay_all or purge_dead on the queue of some DEAD job."""
        queue = self.having(S.DEAD)[pick % len(self.having(S.DEAD))].queue
        dead = [j for j in self.having(S.DEAD) if j.queue == queue]
        counts = self.each(lambda b, be: be.purge_dead(queue) if purge else be.replay_all(queue))
        assert counts == [len(dead)] * len(self.backends)
        for job in dead:
            if purge:
                job.deleted = True
            else:
                job.status, job.attempts = S.PENDING, 0

    # -- after every step --------------------------------------------------------------------
    @invariant()
    def backends_match_the_model(self) -> None:
        for b, be in enumerate(self.backends):
            shapes = []
            for job in self.jobs:
                stored = self.run(be.get_job(job.ids[b]))
                if job.deleted:
                    assert stored is None, (be.name, job, stored)
                    continue
                assert stored is not None, f"{be.name}: job {job.ids[b]} ({job.status}) was lost"
                got = (stored.queue, stored.status, stored.attempts)
                assert got == (job.queue, job.status, job.attempts), (be.name, stored, job)
                shapes.append(_shape(stored))
            if b == 0:
                reference = shapes
            else:
                assert shapes == reference, f"{be.name} disagrees with {self.backends[0].name}"
            for q in QUEUES:
                info = self.run(be.queue_info(q))
                live = [j for j in self.jobs if j.queue == q and not j.deleted]
                counts = tuple(sum(j.status is s for j in live) for s in PLACED)
                assert (info.paused, info.pending, info.scheduled, info.running, info.dead) == (
                    False,
                    *counts,
                ), (be.name, info)
            self.run(check_invariants(be, QUEUES, [j.ids[b] for j in self.jobs]))


def _shape(job: Any) -> tuple[object, ...]:
    """The fields two backends must agree on (ids and times differ)."""
    return (
        job.status,
        job.attempts,
        job.priority,
        job.max_retries,
        job.payload,
        job.result,
        job.last_error,
        [e["error"] for e in job.errors],
        job.run_at is None,
        job.started_at is None,
        job.finished_at is None,
    )


def run_machine(kinds: list[str], server: RedisServer | None, examples: int, steps: int) -> None:
    run_state_machine_as_test(
        lambda: BackendsAgree(kinds, server),
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# A passing run takes seconds; a failing one shrinks for up to Hypothesis' own 5-minute limit
# before it prints the smallest failing sequence: let it finish rather than time out.
SHRINK_TIMEOUT = pytest.mark.timeout(420)


@pytest.mark.slow
@SHRINK_TIMEOUT
def test_memory_and_fakeredis_agree() -> None:
    run_machine(["memory", "fakeredis"], None, examples=40, steps=30)


@pytest.mark.redis
@pytest.mark.slow
@SHRINK_TIMEOUT
def test_memory_and_real_redis_agree(redis_server: RedisServer) -> None:
    run_machine(["memory", "redis"], redis_server, examples=10, steps=30)
