"""The Backend contract, run against the memory backend, fakeredis and a real redis-server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from conftest import MakeBackend
from invariants import check_invariants, list_all

from gotaskq.backends.base import Backend, Claimed, Completion
from gotaskq.errors import (
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    QueueFull,
    QueueNotFound,
    StaleLease,
)
from gotaskq.job import Job, NewJob, now_ms
from gotaskq.states import JobStatus

S = JobStatus
LEASE_MS = 30_000
SLACK_MS = 250  # clock tolerance between the test process and the store


def spec(payload: Any = None, **kw: Any) -> NewJob:
    return NewJob.build("t", {"n": 1} if payload is None else payload, **kw)


async def enq(backend: Backend, payload: Any = None, **kw: Any) -> Job:
    out = await backend.enqueue(spec(payload, **kw))
    assert out.created
    return out.job


async def claim_one(backend: Backend, queue: str = "default", lease_ms: int = LEASE_MS) -> Claimed:
    batch = await backend.claim(queue, 1, lease_ms)
    assert len(batch.jobs) == 1, batch
    return batch.jobs[0]


async def status_of(backend: Backend, job_id: str) -> JobStatus | None:
    job = await backend.get_job(job_id)
    return None if job is None else job.status


async def kill(backend: Backend, queue: str, n: int) -> list[str]:
    """Make ``n`` DEAD jobs in ``queue``, dying in increasing id order; return their ids."""
    for _ in range(n):
        await enq(backend, queue=queue, max_retries=0)
    batch = await backend.claim(queue, n, LEASE_MS)
    assert len(batch.jobs) == n
    for c in sorted(batch.jobs, key=lambda c: int(c.job.id)):
        out = await backend.fail(c.job, c.token, "boom", 0)
        assert out.status is S.DEAD
    return sorted((c.job.id for c in batch.jobs), key=int)


async def invariants(backend: Backend, *job_ids: str) -> None:
    await check_invariants(backend, await backend.list_queues(), job_ids)


# -- queues ------------------------------------------------------------------------------
async def test_create_queue_is_idempotent(backend: Backend) -> None:
    assert await backend.create_queue("emails") is True
    assert await backend.create_queue("emails") is False
    assert await backend.queue_exists("emails")
    assert not await backend.queue_exists("nope")
    # sorted: the all-queues DLQ listing pages through queues in name order
    assert await backend.list_queues() == ["default", "emails"]
    assert await backend.create_queue("a.b-c_9") is True
    assert await backend.list_queues() == ["a.b-c_9", "default", "emails"]
    await invariants(backend)


@pytest.mark.parametrize("name", ["a:b", "{x}", "*", "a b", "", "x" * 65, "é", "a/b"])
async def test_invalid_queue_names_are_rejected(backend: Backend, name: str) -> None:
    with pytest.raises(InvalidInput):
        await backend.create_queue(name)
    assert await backend.list_queues() == ["default"]


async def test_longest_queue_name_is_accepted(backend: Backend) -> None:
    assert await backend.create_queue("q" * 64) is True


async def test_unknown_queue_raises(backend: Backend) -> None:
    with pytest.raises(QueueNotFound):
        await backend.queue_info("nope")
    with pytest.raises(QueueNotFound):
        await backend.set_paused("nope", True)
    with pytest.raises(QueueNotFound):
        await backend.claim("nope", 1, LEASE_MS)
    with pytest.raises(QueueNotFound):
        await backend.list_jobs("nope", S.PENDING, 10, None)
    with pytest.raises(QueueNotFound):
        await backend.list_dead("nope", 10, None)


async def test_queue_info_counts_each_state(backend: Backend) -> None:
    assert (await backend.queue_info("default")).to_dict() == {
        "name": "default",
        "paused": False,
        "pending": 0,
        "scheduled": 0,
        "running": 0,
        "dead": 0,
        "concurrency": None,
        "rate_limit": None,
        "external": False,
    }
    pending = [await enq(backend), await enq(backend)]
    scheduled = await enq(backend, delay=60)
    running = await enq(backend, priority=10)
    dead = await enq(backend, priority=10, max_retries=0)
    done = await enq(backend, priority=10)
    cancelled = await enq(backend)
    batch = await backend.claim("default", 3, LEASE_MS)
    assert {c.job.id for c in batch.jobs} == {running.id, dead.id, done.id}
    tokens = {c.job.id: c for c in batch.jobs}
    await backend.fail(tokens[dead.id].job, tokens[dead.id].token, "boom", 0)
    assert await backend.complete("default", [Completion(done.id, tokens[done.id].token, b"1")]) == [True]
    await backend.cancel(cancelled.id)
    info = await backend.queue_info("default")
    assert (info.name, info.paused, info.pending, info.scheduled, info.running, info.dead) == (
        "default",
        False,
        2,
        1,
        1,
        1,
    )
    await invariants(backend, *(j.id for j in [*pending, scheduled, running, dead, done, cancelled]))


async def test_ping_and_wait_for_work_return(backend: Backend) -> None:
    await backend.ping()
    await asyncio.wait_for(backend.wait_for_work(0.05), 5)


# -- enqueue -----------------------------------------------------------------------------
async def test_enqueue_immediate_is_pending(backend: Backend) -> None:
    before = now_ms()
    job = await enq(backend, {"to": "a@b.c"}, priority=3, max_retries=2, timeout=12.5)
    assert job.status is S.PENDING
    assert (job.queue, job.type, job.payload, job.priority) == ("default", "t", {"to": "a@b.c"}, 3)
    assert (job.attempts, job.max_retries, job.timeout) == (0, 2, 12.5)
    assert job.run_at is None and job.started_at is None and job.finished_at is None
    assert before - SLACK_MS <= job.created_at <= now_ms() + SLACK_MS
    stored = await backend.get_job(job.id)
    assert stored is not None
    assert stored.to_dict() == job.to_dict()
    await invariants(backend, job.id)


@pytest.mark.parametrize("with_options", [False, True])
async def test_every_job_of_one_enqueue_call_is_stored_as_answered(backend: Backend, with_options: bool) -> None:
    """Plain jobs take enqueue.lua's short loop (no options), a call with any option the full one."""
    specs = [spec({"i": i}) for i in range(5)]
    if with_options:
        specs += [spec({"i": 5}, priority=4), spec({"i": 6}, delay=30), spec({"i": 7}, idempotency_key="k7")]
    out = await backend.enqueue_many(specs)
    assert [e.job.payload for e in out] == [s.payload for s in specs] and all(e.created for e in out)
    for e in out:
        stored = await backend.get_job(e.job.id)
        assert stored is not None and stored.to_dict() == e.job.to_dict()
        await invariants(backend, e.job.id)
    claimed = (await backend.claim("default", 10, LEASE_MS)).jobs
    # priority first, then in order (the keyed job last); the delayed one waits
    expected = [5, 0, 1, 2, 3, 4, 7] if with_options else [0, 1, 2, 3, 4]
    assert [c.job.payload for c in claimed] == [{"i": i} for i in expected]


async def test_a_job_a_caller_holds_is_its_own(backend: Backend) -> None:
    """Changing a returned job, its fields or the JSON values in them, changes nothing stored: a
    handler that edits its payload does not change what a retry runs with."""
    job = await enq(backend, {"n": 1, "tags": ["a"]})
    job.status, job.attempts = S.DONE, 9
    job.payload["n"] = 2  # type: ignore[index]
    read = await backend.get_job(job.id)
    assert read is not None and (read.status, read.attempts, read.payload) == (S.PENDING, 0, {"n": 1, "tags": ["a"]})
    read.priority = 7
    read.payload["tags"].append("b")  # type: ignore[index]
    (claimed,) = (await backend.claim("default", 1, 30_000)).jobs
    assert claimed.job.payload == {"n": 1, "tags": ["a"]}
    claimed.job.payload["n"] = 3  # type: ignore[index]
    claimed.job.errors.append({"error": "mine"})
    stored = await backend.get_job(job.id)
    assert stored is not None
    assert (stored.status, stored.priority, stored.errors, stored.lease) == (S.RUNNING, 0, [], claimed.token)
    claimed.job.errors.clear()
    await backend.fail(claimed.job, claimed.token, "boom", 0)
    (again,) = (await backend.claim("default", 1, 30_000)).jobs
    assert again.job.payload == {"n": 1, "tags": ["a"]}  # the retry runs with what was submitted
    again.job.errors[0]["error"] = "changed"
    stored = await backend.get_job(job.id)
    assert stored is not None and stored.errors[0]["error"] == "boom"


async def test_enqueue_delayed_is_scheduled(backend: Backend) -> None:
    before = now_ms()
    job = await enq(backend, delay=30)
    assert job.status is S.SCHEDULED
    assert job.run_at is not None
    assert before + 30_000 - SLACK_MS <= job.run_at <= now_ms() + 30_000 + SLACK_MS
    assert await status_of(backend, job.id) is S.SCHEDULED
    await invariants(backend, job.id)


async def test_enqueue_run_at_in_the_future_is_scheduled(backend: Backend) -> None:
    at = time.time() + 60
    job = await enq(backend, run_at=at)
    assert job.status is S.SCHEDULED
    assert job.run_at == int(at * 1000)


async def test_enqueue_run_at_in_the_past_is_pending(backend: Backend) -> None:
    job = await enq(backend, run_at=time.time() - 10)
    assert job.status is S.PENDING
    assert (await claim_one(backend)).job.id == job.id
    await invariants(backend, job.id)


async def test_a_claimed_job_carries_what_it_was_enqueued_with(backend: Backend) -> None:
    """The claim hands the handler the job as stored: its created time, a delayed job's run_at
    once due, its idempotency key, and after a failed attempt its error; a job with none of
    them has None there (the Redis claim reads those fields only for a job that has them)."""
    plain = await enq(backend, payload={"k": "plain"})
    keyed = await enq(backend, payload={"k": "keyed"}, idempotency_key="claim-me")
    later = await enq(backend, payload={"k": "later"}, delay=0.05)
    await asyncio.sleep(0.3)
    batch = await backend.claim("default", 3, LEASE_MS)
    got = {c.job.id: c for c in batch.jobs}
    assert set(got) == {plain.id, keyed.id, later.id}
    for enqueued in (plain, keyed, later):
        job = got[enqueued.id].job
        assert (job.payload, job.created_at, job.attempts) == (enqueued.payload, enqueued.created_at, 1)
        assert job.idempotency_key == enqueued.idempotency_key
        assert job.last_error is None and job.errors == []
    assert got[plain.id].job.run_at is None and got[keyed.id].job.run_at is None
    assert got[later.id].job.run_at == later.run_at
    c = got[plain.id]
    assert (await backend.fail(c.job, c.token, "boom", 0)).status is S.SCHEDULED
    again = await claim_one(backend)
    assert again.job.id == plain.id and again.job.attempts == 2
    assert (again.job.created_at, again.job.last_error) == (plain.created_at, "boom")
    assert [e["error"] for e in again.job.errors] == ["boom"]
    assert again.job.run_at is not None


async def test_a_claim_after_replay_release_or_recovery_hands_over_the_history(backend: Backend) -> None:
    """A job claimed again after a replay, a release or the recovery pass (which leave att set:
    the Redis claim then reads the rest of the job) carries its error history and run_at."""
    dead = await enq(backend, payload={"k": "dead"}, max_retries=0)
    c = await claim_one(backend)
    assert (await backend.fail(c.job, c.token, "boom", 0)).status is S.DEAD
    replayed = await backend.replay(dead.id)
    again = await claim_one(backend)
    assert again.job.id == dead.id and (again.job.last_error, again.job.attempts) == ("boom", 1)
    assert again.job.run_at == replayed.run_at and [e["error"] for e in again.job.errors] == ["boom"]
    assert await backend.complete("default", [Completion.of(again.job, again.token, b"null")]) == [True]
    held = await enq(backend, payload={"k": "held"})
    c = await claim_one(backend)
    assert await backend.release("default", [(c.job.id, c.token)]) == [True]
    back = await claim_one(backend, lease_ms=1)
    assert back.job.id == held.id and (back.job.attempts, back.job.errors, back.job.run_at) == (1, [], None)
    await asyncio.sleep(0.05)
    assert (await backend.recover_expired("default")).requeued == [held.id]
    last = await claim_one(backend)
    assert last.job.id == held.id and last.job.attempts == 2 and last.job.last_error is not None
    assert last.job.created_at == held.created_at and last.job.idempotency_key is None


async def test_enqueue_into_unknown_queue(backend: Backend) -> None:
    with pytest.raises(QueueNotFound):
        await backend.enqueue(spec(queue="nope"))
    with pytest.raises(QueueNotFound):
        await backend.enqueue_many([spec(), spec(queue="nope")])
    assert await backend.list_queues() == ["default"]


async def test_queue_full_counts_waiting_jobs_only(make_backend: MakeBackend) -> None:
    backend = await make_backend(MAX_QUEUE_DEPTH=2)
    pending = await enq(backend)
    await enq(backend, delay=60, idempotency_key="k")
    with pytest.raises(QueueFull):
        await backend.enqueue(spec())
    with pytest.raises(QueueFull):
        await backend.enqueue(spec(delay=60))
    # a producer retrying with its idempotency key gets its job back even when the queue is full
    again = await backend.enqueue(spec(delay=60, idempotency_key="k"))
    assert again.created is False
    assert (await claim_one(backend)).job.id == pending.id  # running jobs don't count
    third = await enq(backend)
    with pytest.raises(QueueFull):
        await backend.enqueue(spec())
    await backend.create_queue("other")  # the depth is per queue
    await enq(backend, queue="other")
    await invariants(backend, pending.id, third.id)


async def test_idempotent_enqueue_returns_the_same_job(backend: Backend) -> None:
    first = await backend.enqueue(spec(idempotency_key="order-1"))
    second = await backend.enqueue(spec(idempotency_key="order-1"))
    assert first.created is True and second.created is False
    assert second.job.id == first.job.id
    assert second.job.status is S.PENDING
    assert (await backend.queue_info("default")).pending == 1
    # still the same job once it has moved on
    await claim_one(backend)
    third = await backend.enqueue(spec(idempotency_key="order-1"))
    assert (third.created, third.job.id, third.job.status) == (False, first.job.id, S.RUNNING)
    await invariants(backend, first.job.id)


async def test_idempotency_key_with_another_body_conflicts(backend: Backend) -> None:
    first = await enq(backend, {"n": 1}, idempotency_key="k")
    for other in (spec({"n": 2}, idempotency_key="k"), spec({"n": 1}, priority=5, idempotency_key="k")):
        with pytest.raises(IdempotencyConflict) as exc:
            await backend.enqueue(other)
        assert exc.value.job_id == first.id
    assert (await backend.queue_info("default")).pending == 1


async def test_idempotency_conflict_inside_one_batch(backend: Backend) -> None:
    with pytest.raises(IdempotencyConflict):
        await backend.enqueue_many([spec({"n": 1}, idempotency_key="k"), spec({"n": 2}, idempotency_key="k")])
    assert (await backend.queue_info("default")).pending == 0  # refused as a whole


async def test_enqueue_many_into_one_queue_is_all_or_nothing(make_backend: MakeBackend) -> None:
    backend = await make_backend(max_queue_depth=3)
    await enq(backend, {"n": 1}, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        await backend.enqueue_many([spec({"n": 9}), spec({"n": 2}, idempotency_key="k")])
    assert (await backend.queue_info("default")).pending == 1
    with pytest.raises(QueueFull):
        await backend.enqueue_many([spec(), spec(), spec()])
    assert (await backend.queue_info("default")).pending == 1
    assert len(await backend.enqueue_many([spec(), spec()])) == 2


async def test_idempotency_keys_are_per_queue(backend: Backend) -> None:
    await backend.create_queue("other")
    a = await backend.enqueue(spec(idempotency_key="k"))
    b = await backend.enqueue(spec(queue="other", idempotency_key="k"))
    assert a.created and b.created and a.job.id != b.job.id
    await invariants(backend, a.job.id, b.job.id)


async def test_enqueue_many(backend: Backend) -> None:
    await backend.create_queue("other")
    specs = [
        spec({"i": 0}),
        spec({"i": 1}, queue="other", delay=60),
        spec({"i": 2}, idempotency_key="k"),
        spec({"i": 2}, idempotency_key="k"),
    ]
    out = await backend.enqueue_many(specs)
    assert [e.created for e in out] == [True, True, True, False]
    assert [e.job.payload for e in out] == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 2}]
    assert [e.job.status for e in out] == [S.PENDING, S.SCHEDULED, S.PENDING, S.PENDING]
    assert out[3].job.id == out[2].job.id
    assert len({e.job.id for e in out}) == 3
    assert out[1].job.queue == "other"
    assert await backend.enqueue_many([]) == []
    await invariants(backend, *(e.job.id for e in out))


async def test_concurrent_enqueues_with_one_key_create_one_job(backend: Backend) -> None:
    results = await asyncio.gather(*(backend.enqueue(spec(idempotency_key="k")) for _ in range(5)))
    assert sorted(r.created for r in results) == [False] * 4 + [True]
    assert len({r.job.id for r in results}) == 1
    assert (await backend.queue_info("default")).pending == 1


async def test_concurrent_enqueues_with_one_key_and_other_bodies(backend: Backend) -> None:
    """One producer wins; each other one is told of the conflict, none is refused by another's."""
    results = await asyncio.gather(
        *(backend.enqueue(spec({"n": i}, idempotency_key="k")) for i in range(4)),
        backend.enqueue(spec({"other": True})),
        return_exceptions=True,
    )
    created = [r for r in results[:4] if not isinstance(r, BaseException)]
    conflicts = [r for r in results[:4] if isinstance(r, IdempotencyConflict)]
    assert (len(created), len(conflicts)) == (1, 3), results
    assert {c.job_id for c in conflicts} == {created[0].job.id}
    assert not isinstance(results[4], BaseException) and results[4].created
    assert (await backend.queue_info("default")).pending == 2


async def test_concurrent_enqueues_at_the_depth_limit(make_backend: MakeBackend) -> None:
    backend = await make_backend(max_queue_depth=3)
    await enq(backend)
    results = await asyncio.gather(*(backend.enqueue(spec()) for _ in range(5)), return_exceptions=True)
    assert sum(isinstance(r, QueueFull) for r in results) == 3, results
    assert (await backend.queue_info("default")).pending == 3


async def test_idempotent_retry_after_record_ttl_replays_the_true_job(make_backend: MakeBackend) -> None:
    """Defect 8: past COMPLETE_JOB_TTL a retry with the key got an invented DONE job (payload null,
    created 1970). A finished job's record now lives as long as its key, so the replay is true."""
    backend = await make_backend(complete_job_ttl=0.1)
    done = await enq(backend, idempotency_key="k")
    c = await claim_one(backend)
    await backend.complete("default", [Completion(done.id, c.token, b"1")])
    cancelled = await enq(backend, idempotency_key="c")
    await backend.cancel(cancelled.id)
    await asyncio.sleep(0.3)
    for job, key, status in ((done, "k", S.DONE), (cancelled, "c", S.CANCELLED)):
        again = await backend.enqueue(spec(idempotency_key=key))  # still within IDEMPOTENCY_TTL
        assert (again.created, again.job.id, again.job.status) == (False, job.id, status)
        assert (again.job.payload, again.job.created_at) == (job.payload, job.created_at)
    assert (await backend.queue_info("default")).pending == 0


async def test_key_and_record_both_expired_creates_a_new_job(make_backend: MakeBackend) -> None:
    backend = await make_backend(complete_job_ttl=0.1, idempotency_ttl=1.0)
    job = await enq(backend, idempotency_key="k")
    await backend.cancel(job.id)
    await asyncio.sleep(1.3)
    assert await backend.get_job(job.id) is None
    again = await backend.enqueue(spec(idempotency_key="k"))
    assert again.created and again.job.id != job.id


# -- order -------------------------------------------------------------------------------
async def test_higher_priority_first_then_fifo(backend: Backend) -> None:
    jobs = [await enq(backend, priority=p) for p in (0, 5, 0, 5, 10, 0)]
    order = [(await claim_one(backend)).job.id for _ in jobs]
    expected = [jobs[i].id for i in (4, 1, 3, 0, 2, 5)]
    assert order == expected
    assert (await backend.claim("default", 1, LEASE_MS)).jobs == []
    await invariants(backend, *order)


async def test_claim_batch_is_in_queue_order(backend: Backend) -> None:
    jobs = [await enq(backend, priority=p) for p in (1, 3, 2)]
    batch = await backend.claim("default", 3, LEASE_MS)
    assert [c.job.id for c in batch.jobs] == [jobs[1].id, jobs[2].id, jobs[0].id]


async def test_priority_aging_lets_an_old_job_overtake(make_backend: MakeBackend) -> None:
    backend = await make_backend(priority_aging=0.05)  # one priority level = 50 ms of waiting
    old = await enq(backend, priority=0)
    await asyncio.sleep(0.2)
    high = [await enq(backend, priority=1) for _ in range(2)]
    young = await enq(backend, priority=0)
    order = [(await claim_one(backend)).job.id for _ in range(4)]
    assert order == [old.id, high[0].id, high[1].id, young.id]


async def test_a_low_priority_job_is_not_starved(make_backend: MakeBackend) -> None:
    """Producers outpace the worker with top-priority jobs; aging still gets the low one out."""
    backend = await make_backend(priority_aging=0.005)  # priority 10 = 50 ms head start
    low = await enq(backend, priority=0)
    claims = 0
    for _ in range(40):
        await enq(backend, priority=10)
        await enq(backend, priority=10)
        claims += 1
        if (await claim_one(backend)).job.id == low.id:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the priority-0 job was starved for 40 claims")
    # without aging it would never run: the backlog of priority-10 jobs only grows
    assert (await backend.queue_info("default")).pending == claims + 1
    assert claims < 40


async def test_delayed_job_becomes_claimable_when_due(backend: Backend) -> None:
    job = await enq(backend, delay=0.1)
    batch = await backend.claim("default", 1, LEASE_MS)
    assert batch.jobs == []
    assert batch.next_due_ms == job.run_at
    await asyncio.sleep(0.15)
    batch = await backend.claim("default", 1, LEASE_MS)
    assert [c.job.id for c in batch.jobs] == [job.id]
    assert batch.next_due_ms is None
    await invariants(backend, job.id)


# -- claim and leases --------------------------------------------------------------------
async def test_claim_and_complete_thousands_in_one_call(backend: Backend) -> None:
    """The scripts write the running set in chunks (Lua's unpack takes at most 8000 values)."""
    n = 8200
    await backend.enqueue_many([spec(i) for i in range(n)])
    batch = await backend.claim("default", n, LEASE_MS)
    assert len(batch.jobs) == n and {c.job.status for c in batch.jobs} == {S.RUNNING}
    info = await backend.queue_info("default")
    assert (info.pending, info.running) == (0, n)
    done = [Completion(c.job.id, c.token, b"1") for c in batch.jobs]
    assert await backend.complete("default", done) == [True] * n
    info = await backend.queue_info("default")
    assert (info.pending, info.running) == (0, 0)
    stored = await backend.get_job(batch.jobs[-1].job.id)
    assert stored is not None and (stored.status, stored.result) == (S.DONE, 1)


async def test_claim_leases_the_job(backend: Backend) -> None:
    job = await enq(backend)
    before = now_ms()
    c = await claim_one(backend)
    assert c.job.id == job.id
    assert (c.job.status, c.job.attempts) == (S.RUNNING, 1)
    assert c.job.started_at is not None and before - SLACK_MS <= c.job.started_at <= now_ms() + SLACK_MS
    stored = await backend.get_job(job.id)
    assert stored is not None and (stored.status, stored.attempts) == (S.RUNNING, 1)
    await invariants(backend, job.id)


async def test_each_claim_of_a_job_gets_a_new_higher_token(backend: Backend) -> None:
    job = await enq(backend, max_retries=5)
    c = await claim_one(backend)
    tokens = [c.token]
    assert await backend.release("default", [(job.id, c.token)]) == [True]
    tokens.append((await claim_one(backend, lease_ms=1)).token)
    await asyncio.sleep(0.02)
    assert (await backend.recover_expired("default")).requeued == [job.id]
    c = await claim_one(backend)
    tokens.append(c.token)
    assert (await backend.fail(c.job, c.token, "boom", 0)).status is S.SCHEDULED
    tokens.append((await claim_one(backend)).token)
    assert tokens == sorted(set(tokens)), tokens


async def test_concurrent_claims_hand_out_each_job_once(backend: Backend) -> None:
    ids = {(await enq(backend)).id for _ in range(20)}
    batches = await asyncio.gather(*(backend.claim("default", 3, LEASE_MS) for _ in range(10)))
    claimed = [c.job.id for b in batches for c in b.jobs]
    assert len(claimed) == len(set(claimed)) == 20
    assert set(claimed) == ids
    await invariants(backend, *ids)


async def test_concurrent_completions_with_one_token_succeed_once(backend: Backend) -> None:
    job = await enq(backend)
    c = await claim_one(backend)
    results = await asyncio.gather(
        *(backend.complete("default", [Completion(job.id, c.token, b"1")]) for _ in range(5))
    )
    assert sorted(r[0] for r in results) == [False] * 4 + [True]
    await invariants(backend, job.id)


async def test_claim_respects_count(backend: Backend) -> None:
    for _ in range(5):
        await enq(backend)
    assert len((await backend.claim("default", 2, LEASE_MS)).jobs) == 2
    assert len((await backend.claim("default", 10, LEASE_MS)).jobs) == 3
    assert (await backend.claim("default", 10, LEASE_MS)).jobs == []
    assert (await backend.queue_info("default")).running == 5
    await invariants(backend)


async def test_paused_queue_hands_out_nothing(backend: Backend) -> None:
    job = await enq(backend)
    info = await backend.set_paused("default", True)
    assert info.paused is True and info.pending == 1
    assert (await backend.queue_info("default")).paused is True
    assert (await backend.claim("default", 10, LEASE_MS)).jobs == []
    await enq(backend)  # producers may still enqueue
    assert (await backend.set_paused("default", False)).paused is False
    assert (await claim_one(backend)).job.id == job.id
    await invariants(backend)


async def test_extend_leases_checks_the_token(backend: Backend) -> None:
    a, b = await enq(backend), await enq(backend)
    batch = await backend.claim("default", 2, 100)
    ta, tb = (c.token for c in sorted(batch.jobs, key=lambda c: int(c.job.id)))
    out = await backend.extend_leases("default", [(a.id, ta), (b.id, tb + 1), ("123", 1)], 60_000)
    assert out == [True, False, False]
    await asyncio.sleep(0.2)
    recovered = await backend.recover_expired("default")
    assert (recovered.requeued, recovered.dead) == ([b.id], [])
    assert await status_of(backend, a.id) is S.RUNNING
    await invariants(backend, a.id, b.id)


async def test_complete_marks_done(backend: Backend) -> None:
    job = await enq(backend)
    c = await claim_one(backend)
    assert await backend.complete("default", [Completion(job.id, c.token, b'{"ok": true}')]) == [True]
    done = await backend.get_job(job.id)
    assert done is not None
    assert (done.status, done.result, done.attempts) == (S.DONE, {"ok": True}, 1)
    assert done.finished_at is not None
    assert await list_all(backend, "default", S.RUNNING) == []
    assert (await backend.queue_info("default")).running == 0
    # completing twice is refused: the lease ended with the first completion
    assert await backend.complete("default", [Completion(job.id, c.token, b"2")]) == [False]
    await invariants(backend, job.id)


async def test_complete_with_a_stale_token_changes_nothing(backend: Backend) -> None:
    a, b = await enq(backend), await enq(backend)
    batch = await backend.claim("default", 2, LEASE_MS)
    tok = {c.job.id: c.token for c in batch.jobs}
    before = await backend.get_job(a.id)
    out = await backend.complete("default", [Completion(a.id, tok[a.id] + 1, b"1"), Completion(b.id, tok[b.id], b"2")])
    assert out == [False, True]
    after = await backend.get_job(a.id)
    assert before is not None and after is not None
    assert (after.status, after.attempts, after.result) == (S.RUNNING, 1, None)
    assert after.to_dict() == before.to_dict()
    assert await backend.complete("default", [Completion("999", 1, b"1")]) == [False]
    await invariants(backend, a.id, b.id)


async def test_one_completion_call_mixes_null_results_keys_and_stale_tokens(backend: Backend) -> None:
    """A call of only null results without keys (Redis: two arguments a job) and a mixed call
    (four) settle each job by its own token, store each result, and keep a keyed job's replay."""
    plain = [await enq(backend) for _ in range(3)]
    keyed = await enq(backend, idempotency_key="mixed-call")
    batch = await backend.claim("default", 4, LEASE_MS)
    c = {x.job.id: x for x in batch.jobs}
    first = [Completion.of(c[j.id].job, c[j.id].token + (j is plain[1]), b"null") for j in plain[:2]]
    assert all(x.has_key is False for x in first)
    assert await backend.complete("default", first) == [True, False]
    mixed = [
        Completion.of(c[plain[1].id].job, c[plain[1].id].token, b"null"),
        Completion.of(c[plain[2].id].job, c[plain[2].id].token, b'{"n": 2}'),
        Completion.of(c[keyed.id].job, c[keyed.id].token, b"null"),
    ]
    assert await backend.complete("default", mixed) == [True, True, True]
    got = {j.id: await backend.get_job(j.id) for j in (*plain, keyed)}
    assert {jid: (j.status, j.result) for jid, j in got.items() if j is not None} == {
        plain[0].id: (S.DONE, None),
        plain[1].id: (S.DONE, None),
        plain[2].id: (S.DONE, {"n": 2}),
        keyed.id: (S.DONE, None),
    }
    again = await backend.enqueue(spec(idempotency_key="mixed-call"))
    assert not again.created and again.job.id == keyed.id and again.job.status is S.DONE
    await invariants(backend, *(j.id for j in (*plain, keyed)))


async def test_fail_with_retries_left_schedules_a_retry(backend: Backend) -> None:
    job = await enq(backend, max_retries=2)
    c = await claim_one(backend)
    before = now_ms()
    out = await backend.fail(c.job, c.token, "boom", 5_000)
    after = now_ms()
    assert out.status is S.SCHEDULED
    stored = await backend.get_job(job.id)
    assert stored is not None
    assert stored.status is S.SCHEDULED and stored.attempts == 1
    assert stored.run_at is not None
    assert before + 5_000 - SLACK_MS <= stored.run_at <= after + 5_000 + SLACK_MS
    assert stored.last_error == "boom"
    assert [(e["attempt"], e["error"]) for e in stored.errors] == [(1, "boom")]
    assert out.job.to_dict() == stored.to_dict()
    assert await list_all(backend, "default", S.SCHEDULED) == [job.id]
    await invariants(backend, job.id)


async def test_fail_with_retries_spent_is_dead(backend: Backend) -> None:
    job = await enq(backend, max_retries=1)
    c = await claim_one(backend)
    assert (await backend.fail(c.job, c.token, "first", 0)).status is S.SCHEDULED
    c = await claim_one(backend)  # the zero-delay retry is promoted by the claim
    assert c.job.attempts == 2
    out = await backend.fail(c.job, c.token, "second", 0)
    assert out.status is S.DEAD and out.job.status is S.DEAD
    stored = await backend.get_job(job.id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.last_error) == (S.DEAD, 2, "second")
    assert [e["error"] for e in stored.errors] == ["first", "second"]
    assert [j.id for j in (await backend.list_dead("default", 10, None)).jobs] == [job.id]
    assert (await backend.queue_info("default")).dead == 1
    await invariants(backend, job.id)


async def test_fail_with_a_stale_token_raises(backend: Backend) -> None:
    job = await enq(backend)
    c = await claim_one(backend)
    with pytest.raises(StaleLease):
        await backend.fail(c.job, c.token + 1, "boom", 0)
    stored = await backend.get_job(job.id)
    assert stored is not None and (stored.status, stored.last_error, stored.errors) == (S.RUNNING, None, [])
    assert await backend.complete("default", [Completion(job.id, c.token, b"1")]) == [True]
    with pytest.raises(StaleLease):
        await backend.fail(c.job, c.token, "late", 0)
    assert await status_of(backend, job.id) is S.DONE
    await invariants(backend, job.id)


async def test_release_returns_the_job_without_counting_the_attempt(backend: Backend) -> None:
    job = await enq(backend, max_retries=0)
    c = await claim_one(backend)
    assert await backend.release("default", [(job.id, c.token + 1)]) == [False]
    assert await backend.release("default", [(job.id, c.token)]) == [True]
    stored = await backend.get_job(job.id)
    assert stored is not None and (stored.status, stored.attempts) == (S.PENDING, 0)
    assert await backend.complete("default", [Completion(job.id, c.token, b"1")]) == [False]
    with pytest.raises(StaleLease):
        await backend.fail(c.job, c.token, "late", 0)
    assert await backend.release("default", [(job.id, c.token)]) == [False]
    again = await claim_one(backend)  # max_retries=0 and still runnable: the release did not count
    assert again.job.attempts == 1 and again.token != c.token
    await invariants(backend, job.id)


async def test_recover_expired_requeues_and_fences_the_old_holder(backend: Backend) -> None:
    job = await enq(backend)
    c = await claim_one(backend, lease_ms=1)
    await asyncio.sleep(0.02)
    recovered = await backend.recover_expired("default")
    assert (recovered.requeued, recovered.dead) == ([job.id], [])
    stored = await backend.get_job(job.id)
    assert stored is not None
    assert (stored.status, stored.attempts) == (S.PENDING, 1)
    assert stored.last_error
    assert await backend.complete("default", [Completion(job.id, c.token, b"1")]) == [False]
    assert await backend.extend_leases("default", [(job.id, c.token)], LEASE_MS) == [False]
    assert await status_of(backend, job.id) is S.PENDING
    assert (await backend.recover_expired("default")).requeued == []
    await invariants(backend, job.id)


async def test_recover_expired_leaves_live_leases_alone(backend: Backend) -> None:
    await enq(backend)
    await claim_one(backend)
    recovered = await backend.recover_expired("default")
    assert (recovered.requeued, recovered.dead) == ([], [])
    await invariants(backend)


async def test_recover_expired_respects_limit(backend: Backend) -> None:
    for _ in range(3):
        await enq(backend)
    await backend.claim("default", 3, 1)
    await asyncio.sleep(0.02)
    assert len((await backend.recover_expired("default", limit=2)).requeued) == 2
    assert len((await backend.recover_expired("default", limit=2)).requeued) == 1
    await invariants(backend)


async def test_expired_lease_without_retries_is_dead(backend: Backend) -> None:
    job = await enq(backend, max_retries=0)
    await claim_one(backend, lease_ms=1)
    await asyncio.sleep(0.02)
    recovered = await backend.recover_expired("default")
    assert (recovered.requeued, recovered.dead) == ([], [job.id])
    assert await status_of(backend, job.id) is S.DEAD
    await invariants(backend, job.id)


async def test_a_job_whose_worker_keeps_dying_ends_dead(backend: Backend) -> None:
    """At least once, never lost, never looping: each expiry spends an attempt."""
    job = await enq(backend, max_retries=2)
    for attempt in (1, 2, 3):
        c = await claim_one(backend, lease_ms=1)
        assert c.job.attempts == attempt
        await asyncio.sleep(0.02)
        recovered = await backend.recover_expired("default")
        assert (recovered.requeued if attempt < 3 else recovered.dead) == [job.id]
        assert await backend.get_job(job.id) is not None
    stored = await backend.get_job(job.id)
    assert stored is not None and (stored.status, stored.attempts) == (S.DEAD, 3)
    assert stored.last_error and stored.last_error.startswith("LeaseExpired: ")
    assert [(e["attempt"], e["error"].split(":")[0], e["traceback"]) for e in stored.errors] == [
        (1, "LeaseExpired", None),
        (2, "LeaseExpired", None),
        (3, "LeaseExpired", None),
    ], "each expiry is in the history, with no traceback"
    assert all(isinstance(e["at"], str) and e["at"].endswith("Z") for e in stored.errors)
    assert (await backend.claim("default", 1, 1)).jobs == []
    await invariants(backend, job.id)


async def test_a_failure_keeps_its_traceback(backend: Backend) -> None:
    await enq(backend)
    c = await claim_one(backend)
    try:
        raise ValueError("boom")
    except ValueError as exc:
        import traceback

        trace = "".join(traceback.format_exception(exc))
    out = await backend.fail(c.job, c.token, "ValueError: boom", 0, trace * 50)
    stored = await backend.get_job(c.job.id)
    assert stored is not None and out.job.errors == stored.errors
    (entry,) = stored.errors
    assert (entry["attempt"], entry["error"]) == (1, "ValueError: boom")
    assert entry["traceback"].endswith("ValueError: boom\n") and "Traceback" in entry["traceback"]
    assert len(entry["traceback"]) <= 4000, "bounded, keeping its end"


# -- cancel and lookups ------------------------------------------------------------------
async def test_cancel_waiting_jobs(backend: Backend) -> None:
    pending, scheduled = await enq(backend), await enq(backend, delay=60)
    for job in (pending, scheduled):
        out = await backend.cancel(job.id)
        assert out.status is S.CANCELLED
        assert await status_of(backend, job.id) is S.CANCELLED
    info = await backend.queue_info("default")
    assert (info.pending, info.scheduled) == (0, 0)
    assert (await backend.claim("default", 10, LEASE_MS)).jobs == []
    await invariants(backend, pending.id, scheduled.id)


async def test_cancel_refuses_other_states(backend: Backend) -> None:
    running, done, dead = await enq(backend), await enq(backend), await enq(backend, max_retries=0)
    batch = await backend.claim("default", 3, LEASE_MS)
    tok = {c.job.id: c for c in batch.jobs}
    await backend.complete("default", [Completion(done.id, tok[done.id].token, b"1")])
    await backend.fail(tok[dead.id].job, tok[dead.id].token, "boom", 0)
    cancelled = await enq(backend)
    await backend.cancel(cancelled.id)
    for job, status in ((running, S.RUNNING), (done, S.DONE), (dead, S.DEAD), (cancelled, S.CANCELLED)):
        with pytest.raises(InvalidTransition):
            await backend.cancel(job.id)
        assert await status_of(backend, job.id) is status
    with pytest.raises(JobNotFound):
        await backend.cancel("123456789")
    await invariants(backend, running.id, done.id, dead.id, cancelled.id)


async def test_get_job_unknown_is_none(backend: Backend) -> None:
    assert await backend.get_job("123456789") is None


# -- dead-letter queue -------------------------------------------------------------------
@pytest.mark.parametrize("split", [(13, 12), (10, 15)])
async def test_list_dead_pages_cover_every_job_once(backend: Backend, split: tuple[int, int]) -> None:
    await backend.create_queue("alpha")
    await backend.create_queue("beta")
    ids = {"alpha": await kill(backend, "alpha", split[0]), "beta": await kill(backend, "beta", split[1])}
    for queue, expected in ids.items():
        seen = await _page_through(backend, queue)
        assert seen == expected[::-1]  # newest first
    everything = await _page_through(backend, None)
    assert len(everything) == len(set(everything)) == 25
    assert everything == ids["alpha"][::-1] + ids["beta"][::-1]  # queues in name order
    await invariants(backend)


async def _page_through(backend: Backend, queue: str | None) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = await backend.list_dead(queue, 10, cursor)
        assert len(page.jobs) <= 10
        assert all(j.status is S.DEAD for j in page.jobs)
        seen.extend(j.id for j in page.jobs)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
    pytest.fail("list_dead never ended")


async def test_list_dead_empty(backend: Backend) -> None:
    page = await backend.list_dead(None, 10, None)
    assert (page.jobs, page.next_cursor) == ([], None)
    page = await backend.list_dead("default", 10, None)
    assert (page.jobs, page.next_cursor) == ([], None)


async def test_replay_returns_a_dead_job_to_pending(backend: Backend) -> None:
    [jid] = await kill(backend, "default", 1)
    job = await backend.replay(jid)
    assert (job.status, job.attempts) == (S.PENDING, 0)
    stored = await backend.get_job(jid)
    assert stored is not None and (stored.status, stored.attempts) == (S.PENDING, 0)
    assert (await backend.queue_info("default")).dead == 0
    c = await claim_one(backend)
    assert (c.job.id, c.job.attempts) == (jid, 1)
    with pytest.raises(InvalidTransition):
        await backend.replay(jid)
    with pytest.raises(JobNotFound):
        await backend.replay("123456789")
    await invariants(backend, jid)


async def test_replay_of_non_dead_jobs_is_refused(backend: Backend) -> None:
    pending, scheduled = await enq(backend), await enq(backend, delay=60)
    for job in (pending, scheduled):
        with pytest.raises(InvalidTransition):
            await backend.replay(job.id)
    await invariants(backend, pending.id, scheduled.id)


async def test_concurrent_replays_succeed_once(backend: Backend) -> None:
    [jid] = await kill(backend, "default", 1)
    results = await asyncio.gather(*(backend.replay(jid) for _ in range(5)), return_exceptions=True)
    ok = [r for r in results if isinstance(r, Job)]
    refused = [r for r in results if isinstance(r, InvalidTransition)]
    assert (len(ok), len(refused)) == (1, 4), results
    assert (await backend.queue_info("default")).pending == 1
    await invariants(backend, jid)


async def test_replay_all(backend: Backend) -> None:
    await backend.create_queue("other")
    ids = await kill(backend, "default", 3)
    other = await kill(backend, "other", 2)
    assert await backend.replay_all("default") == 3
    assert [await status_of(backend, j) for j in ids] == [S.PENDING] * 3
    assert [await status_of(backend, j) for j in other] == [S.DEAD] * 2
    assert await backend.replay_all("default") == 0
    await invariants(backend, *ids, *other)


async def test_delete_dead(backend: Backend) -> None:
    job = await enq(backend, max_retries=0, idempotency_key="k")
    c = await claim_one(backend)
    await backend.fail(c.job, c.token, "boom", 0)
    await backend.delete_dead(job.id)
    assert await backend.get_job(job.id) is None
    assert (await backend.list_dead("default", 10, None)).jobs == []
    assert (await backend.queue_info("default")).dead == 0
    with pytest.raises(JobNotFound):
        await backend.delete_dead(job.id)
    # the key is free again: the job it named is gone for good
    again = await backend.enqueue(spec(max_retries=0, idempotency_key="k"))
    assert again.created and again.job.id != job.id
    with pytest.raises(InvalidTransition):
        await backend.delete_dead(again.job.id)
    assert await status_of(backend, again.job.id) is S.PENDING
    await invariants(backend, again.job.id)


async def test_purge_dead(backend: Backend) -> None:
    await backend.create_queue("other")
    ids = await kill(backend, "default", 4)
    other = await kill(backend, "other", 1)
    assert await backend.purge_dead("default") == 4
    assert [await backend.get_job(j) for j in ids] == [None] * 4
    assert (await backend.queue_info("default")).dead == 0
    assert await status_of(backend, other[0]) is S.DEAD
    assert await backend.purge_dead("default") == 0
    await invariants(backend, *other)


# -- expiry and listings -----------------------------------------------------------------
async def test_finished_jobs_expire_after_the_ttl(make_backend: MakeBackend) -> None:
    backend = await make_backend(complete_job_ttl=1.0)  # room for the steps below on a slow machine
    done, cancelled = await enq(backend), await enq(backend, delay=60)
    dead = await enq(backend, max_retries=0)
    batch = await backend.claim("default", 2, LEASE_MS)
    tok = {c.job.id: c for c in batch.jobs}
    assert await backend.complete("default", [Completion(done.id, tok[done.id].token, b"1")]) == [True]
    await backend.fail(tok[dead.id].job, tok[dead.id].token, "boom", 0)
    await backend.cancel(cancelled.id)
    assert await status_of(backend, done.id) is S.DONE
    await asyncio.sleep(1.3)
    assert await backend.get_job(done.id) is None
    assert await backend.get_job(cancelled.id) is None
    assert await status_of(backend, dead.id) is S.DEAD  # the DLQ keeps its jobs
    await invariants(backend, dead.id)


async def test_list_jobs_pending_newest_first_in_pages(backend: Backend) -> None:
    ids = [(await enq(backend)).id for _ in range(7)]
    seen: list[str] = []
    cursor: str | None = None
    sizes = []
    while True:
        page = await backend.list_jobs("default", S.PENDING, 3, cursor)
        sizes.append(len(page.jobs))
        seen.extend(j.id for j in page.jobs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sizes == [3, 3, 1]
    assert seen == ids[::-1]


async def test_list_jobs_per_status(backend: Backend) -> None:
    late = await enq(backend, delay=30)
    later = await enq(backend, delay=60)
    soon = await enq(backend, delay=10)
    running = [await enq(backend, priority=9) for _ in range(2)]
    await backend.claim("default", 2, LEASE_MS)
    dead = await kill(backend, "default", 2)
    pending = await enq(backend)
    assert await list_all(backend, "default", S.SCHEDULED) == [later.id, late.id, soon.id]
    assert sorted(await list_all(backend, "default", S.RUNNING)) == sorted(j.id for j in running)
    assert await list_all(backend, "default", S.DEAD) == dead[::-1]
    assert await list_all(backend, "default", S.PENDING) == [pending.id]
    page = await backend.list_jobs("default", S.SCHEDULED, 2, None)
    assert [j.id for j in page.jobs] == [later.id, late.id] and page.next_cursor is not None
    page = await backend.list_jobs("default", S.SCHEDULED, 2, page.next_cursor)
    assert ([j.id for j in page.jobs], page.next_cursor) == ([soon.id], None)
    await invariants(backend, late.id, later.id, soon.id, pending.id, *dead, *(j.id for j in running))


async def test_a_full_lifecycle_keeps_the_invariants(backend: Backend) -> None:
    await backend.create_queue("other")
    ids = []
    for queue in ("default", "other"):
        ids += [(await enq(backend, queue=queue, priority=p, max_retries=1)).id for p in (0, 4)]
    for queue in ("default", "other"):
        batch = await backend.claim(queue, 2, LEASE_MS)
        first, second = batch.jobs
        await backend.complete(queue, [Completion(first.job.id, first.token, b"null")])
        await backend.fail(second.job, second.token, "boom", 0)
        await invariants(backend, *ids)
        retry = await claim_one(backend, queue)
        await backend.fail(retry.job, retry.token, "boom", 0)
        await invariants(backend, *ids)
    assert (await backend.list_dead(None, 10, None)).jobs != []


# -- run now and the completed listing (the admin UI's actions) ---------------------------
async def test_run_now_moves_a_scheduled_job_to_the_front_of_its_priority(backend: Backend) -> None:
    waiting = await enq(backend)
    later = await enq(backend, delay=3600, priority=5)
    out = await backend.run_now(later.id)
    assert out.status is S.PENDING and out.run_at is not None and out.run_at <= now_ms() + SLACK_MS
    info = await backend.queue_info("default")
    assert (info.pending, info.scheduled) == (2, 0)
    first = await claim_one(backend)
    assert first.job.id == later.id and first.job.attempts == 1  # priority 5 goes first
    assert (await claim_one(backend)).job.id == waiting.id
    for job in (waiting, later):
        with pytest.raises(InvalidTransition):  # RUNNING now
            await backend.run_now(job.id)
    with pytest.raises(JobNotFound):
        await backend.run_now("123456789")
    await invariants(backend, waiting.id, later.id)


async def test_run_now_of_a_retry_keeps_its_attempts(backend: Backend) -> None:
    job = await enq(backend, max_retries=3)
    c = await claim_one(backend)
    await backend.fail(c.job, c.token, "boom", 3_600_000)
    assert (await backend.run_now(job.id)).attempts == 1
    again = await claim_one(backend)
    assert again.job.attempts == 2 and again.job.last_error == "boom"
    await invariants(backend, job.id)


async def test_list_jobs_done_lists_completed_jobs_latest_first(backend: Backend) -> None:
    ids = [(await enq(backend)).id for _ in range(4)]
    batch = await backend.claim("default", 4, LEASE_MS)
    tok = {c.job.id: c.token for c in batch.jobs}
    for jid in ids[:3]:  # one call each: each finishes after the one before
        assert await backend.complete("default", [Completion(jid, tok[jid], b'{"ok":1}')]) == [True]
        await asyncio.sleep(0.005)
    listed = await list_all(backend, "default", S.DONE)
    assert listed == ids[:3][::-1]
    page = await backend.list_jobs("default", S.DONE, 2, None)
    assert [j.id for j in page.jobs] == ids[2:0:-1] and page.next_cursor is not None
    assert page.jobs[0].result == {"ok": 1} and page.jobs[0].status is S.DONE
    page = await backend.list_jobs("default", S.DONE, 2, page.next_cursor)
    assert ([j.id for j in page.jobs], page.next_cursor) == ([ids[0]], None)
    await invariants(backend, *ids)


async def test_completed_listing_forgets_expired_jobs(make_backend: MakeBackend) -> None:
    backend = await make_backend(complete_job_ttl=0.3)
    first = await enq(backend)
    c = await claim_one(backend)
    await backend.complete("default", [Completion(first.id, c.token, b"1")])
    assert await list_all(backend, "default", S.DONE) == [first.id]
    await asyncio.sleep(0.5)
    second = await enq(backend)
    c = await claim_one(backend)
    await backend.complete("default", [Completion(second.id, c.token, b"1")])
    assert await list_all(backend, "default", S.DONE) == [second.id]


async def test_stats_cover_a_day(backend: Backend) -> None:
    job = await enq(backend)
    c = await claim_one(backend)
    await backend.complete("default", [Completion(job.id, c.token, b"1")])
    day = await backend.queue_stats("default", 1440)
    assert len(day) == 1440 and day[-1].minute == day[0].minute + 1439
    assert sum(s.done for s in day) == 1 and day[-1].done + day[-2].done == 1
