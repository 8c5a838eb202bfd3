"""Jobs to and from their Redis form: the enqueue record and the job hash's short fields."""

from __future__ import annotations

import math
from typing import Any

import orjson

from ...job import Job, NewJob, decode_errors
from ...states import JobStatus

S = JobStatus


def job_args(job_id: str, spec: NewJob) -> tuple[str, str, bytes] | tuple[str, str, bytes, bytes]:
    """A job's arguments to enqueue.lua: id, ``m`` (type, priority, max_retries, timeout ms:
    stored as sent), the payload JSON, and its options: none for the common job (no delay, no
    run_at, priority 0, no idempotency key), else a header with the lengths of the idempotency
    key and fingerprint, then those two."""
    m = f"{spec.type}\n{spec.priority} {spec.max_retries} {math.ceil(spec.timeout * 1000)}"
    if not (spec.delay_ms or spec.idempotency_key) and spec.run_at_ms is None:
        m += "\t"  # nothing more for claim to read: no run or idem field (see enqueue.lua)
        if not spec.priority:
            return job_id, m, spec.payload_json
    idem = (spec.idempotency_key or "").encode()
    fp = spec.fingerprint().encode() if spec.idempotency_key else b""
    run_at = -1 if spec.run_at_ms is None else spec.run_at_ms
    head = f"{spec.delay_ms} {run_at} {spec.priority} {len(idem)} {len(fp)}\n".encode()
    return job_id, m, spec.payload_json, head + idem + fp


def split_m(m: bytes) -> tuple[str, int, int, int]:
    """``m`` (type, priority, max_retries, timeout ms) from its stored form (``int`` takes the
    tab that may end it)."""
    typ, nums = m.split(b"\n", 1)
    pri, maxr, tmo = nums.split(b" ")
    return typ.decode(), int(pri), int(maxr), int(tmo)


# A queue's jobs share a handful of ``m`` values (a type and its settings): each is split once.
_M_SEEN: dict[bytes, tuple[str, int, int, float]] = {}
_M_SEEN_MAX = 4096
RUNNING = S.RUNNING
_NOTHING_MORE = (None, None, None, None)  # run, idem, err, errs of a job claim read no more of


def _m_fields(m: bytes) -> tuple[str, int, int, float]:
    """``split_m`` with the timeout in seconds, remembered (splitting was ~1.4 us of a claim)."""
    typ, pri, maxr, tmo = split_m(m)
    if len(_M_SEEN) >= _M_SEEN_MAX:
        _M_SEEN.clear()
    fields = _M_SEEN[m] = (typ, pri, maxr, tmo / 1000)
    return fields


def text(v: bytes | str) -> str:
    return v if isinstance(v, str) else v.decode()


def opt_text(v: bytes | None) -> str | None:
    return None if v is None else v.decode()


def num(v: bytes | int | None, default: int = 0) -> int:
    return default if v is None else int(v)


CLAIM_ROW = 7  # elements a job takes in claim.lua's flat reply


def claimed_job(queue: str, row: list[Any], now: int) -> Job:
    """A job from one of claim.lua's rows: id, lease, att, m, payload, ca, and None or the rest:
    run, idem, err, errs. Job's fields by position, in their declared order (keywords made the
    call ~1.5 us slower)."""
    jid, lease, att, m, payload, ca, more = row
    run, idem, err, errs = _NOTHING_MORE if more is None else more
    typ, pri, maxr, timeout = _M_SEEN.get(m) or _m_fields(m)
    return Job(
        jid.decode(),  # id
        queue,
        typ,  # type
        orjson.loads(payload),
        pri,  # priority
        RUNNING,  # status
        int(att),  # attempts
        maxr,  # max_retries
        timeout,
        None if run is None else int(run),  # run_at
        None if idem is None else idem.decode(),  # idempotency_key (inline: a call costs ~60 ns)
        None if err is None else err.decode(),  # last_error
        [] if errs is None else decode_errors(errs),  # errors
        None,  # result
        int(ca),  # created_at
        now,  # updated_at
        now,  # started_at
        None,  # finished_at
        int(lease),
    )


def decode_job(job_id: str, queue: str, f: dict[bytes, bytes]) -> Job:
    """A job from its hash (HGETALL); jobs written before ``m`` have one field each."""

    def g(name: str) -> bytes | None:
        return f.get(name.encode())

    m = g("m")
    if m is not None:
        typ, pri, maxr, tmo = split_m(m)
        payload = g("p") or b"null"
    else:
        typ, pri, maxr, tmo = (g("type") or b"").decode(), num(g("pri")), num(g("maxr")), num(g("tmo"))
        payload = g("payload") or b"null"
    errs = g("errs")
    res = g("res")
    prog = g("prog")
    ca = num(g("ca"))
    sa = None if g("sa") is None else num(g("sa"))
    fa = None if g("fa") is None else num(g("fa"))
    return Job(
        id=job_id,
        queue=queue,
        type=typ,
        payload=orjson.loads(payload),
        priority=pri,
        status=S((g("st") or b"PENDING").decode()),
        attempts=num(g("att")),
        max_retries=maxr,
        timeout=tmo / 1000,
        run_at=None if g("run") is None else num(g("run")),
        idempotency_key=opt_text(g("idem")),
        last_error=opt_text(g("err")),
        errors=decode_errors(errs),
        result=orjson.loads(res) if res else None,
        created_at=ca,
        # claim and complete leave ua alone (a field less to write): the latest transition time
        updated_at=max(num(g("ua")), ca, sa or 0, fa or 0),
        started_at=sa,
        finished_at=fa,
        lease=num(g("lease")),
        progress_info=orjson.loads(prog) if prog else None,
        lease_ms=None if g("lms") is None else num(g("lms")),
    )
