"""The job state machine: every status and every allowed move, written once.

    enqueue ─► SCHEDULED (run_at in the future)  or  PENDING (ready now)

    SCHEDULED ──claim promotes when due, or run_now──► PENDING ──claim──► RUNNING ──complete──► DONE
    PENDING, SCHEDULED ──cancel──► CANCELLED
    RUNNING ──fail, attempts left──► SCHEDULED (backoff)
    RUNNING ──fail, or lease expired, attempts spent──► DEAD (the DLQ)
    RUNNING ──lease expired, attempts left (recover_expired) / shutdown (release)──► PENDING
    DEAD ──replay──► PENDING (attempts reset)

Every backend checks each move against ``TRANSITIONS``; the Lua scripts encode the same
moves and ``tests/test_states.py`` checks that each script's documented move is listed here.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    DEAD = "DEAD"
    CANCELLED = "CANCELLED"


S = JobStatus

# (from, to) -> the transitions (one Lua script each) allowed to make that move.
TRANSITIONS: dict[tuple[JobStatus, JobStatus], frozenset[str]] = {
    (S.SCHEDULED, S.PENDING): frozenset({"claim", "run_now"}),  # claim promotes due delayed jobs
    (S.PENDING, S.RUNNING): frozenset({"claim"}),
    (S.RUNNING, S.DONE): frozenset({"complete"}),
    (S.RUNNING, S.SCHEDULED): frozenset({"fail"}),
    (S.RUNNING, S.DEAD): frozenset({"fail", "recover_expired"}),
    (S.RUNNING, S.PENDING): frozenset({"recover_expired", "release"}),
    (S.DEAD, S.PENDING): frozenset({"replay"}),
    (S.PENDING, S.CANCELLED): frozenset({"cancel"}),
    (S.SCHEDULED, S.CANCELLED): frozenset({"cancel"}),
}

WAITING = frozenset({S.PENDING, S.SCHEDULED})
FINISHED = frozenset({S.DONE, S.CANCELLED})


def can_move(src: JobStatus, dst: JobStatus, by: str) -> bool:
    """True when transition ``by`` may move a job from ``src`` to ``dst``."""
    return by in TRANSITIONS.get((src, dst), frozenset())
