"""Invariants every backend must keep after any sequence of operations."""

from __future__ import annotations

from collections.abc import Iterable

from gotaskq.backends.base import Backend
from gotaskq.states import JobStatus

S = JobStatus
PLACED = (S.PENDING, S.SCHEDULED, S.RUNNING, S.DEAD)  # the states that live in a per-queue index
PAGE = 1000

Placement = dict[str, dict[JobStatus, list[str]]]  # queue -> status -> ids, newest first


async def list_all(backend: Backend, queue: str, status: JobStatus) -> list[str]:
    """Every id of ``queue`` in ``status``, following cursors to the end."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = await backend.list_jobs(queue, status, PAGE, cursor)
        for job in page.jobs:
            assert job.queue == queue and job.status is status, (queue, status, job)
        ids.extend(job.id for job in page.jobs)
        if page.next_cursor is None:
            return ids
        assert page.jobs, "a page with a next cursor must hold jobs"
        cursor = page.next_cursor


async def check_invariants(backend: Backend, queues: Iterable[str], job_ids: Iterable[str] = ()) -> Placement:
    """Each job id is in exactly one index, the one of its status; queue_info counts those indexes.

    ``job_ids`` (optional) are jobs the caller knows of: each one that still exists and is in
    a placed status must be in its queue's index of that status; DONE/CANCELLED ones in none.
    """
    placement: Placement = {}
    where: dict[str, tuple[str, JobStatus]] = {}
    for queue in queues:
        placement[queue] = {}
        for status in PLACED:
            ids = await list_all(backend, queue, status)
            placement[queue][status] = ids
            assert len(set(ids)) == len(ids), f"{queue}/{status}: duplicate ids {ids}"
            for jid in ids:
                assert jid not in where, f"job {jid} is in {where[jid]} and in {(queue, status)}"
                where[jid] = (queue, status)
                job = await backend.get_job(jid)
                assert job is not None, f"job {jid} is indexed in {queue}/{status} but does not exist"
                assert job.status is status and job.queue == queue, (queue, status, job)
        info = await backend.queue_info(queue)
        counts = {s: len(placement[queue][s]) for s in PLACED}
        assert (info.pending, info.scheduled, info.running, info.dead) == (
            counts[S.PENDING],
            counts[S.SCHEDULED],
            counts[S.RUNNING],
            counts[S.DEAD],
        ), f"{queue}: queue_info {info} but indexes hold {counts}"
    for jid in job_ids:
        job = await backend.get_job(jid)
        if job is None or job.queue not in placement:
            continue
        if job.status in PLACED:
            assert where.get(jid) == (job.queue, job.status), f"{jid} is {job.status}: {where.get(jid)}"
        else:
            assert jid not in where, f"job {jid} is {job.status} but still indexed as {where[jid]}"
    return placement
