"""Jobs to and from their Redis form: the enqueue record and the job hash's short fields."""

from __future__ import annotations

import math

import orjson

from ...job import Job, NewJob, decode_errors
from ...states import JobStatus

S = JobStatus


def job_record(job_id: str, spec: NewJob) -> bytes:
    """One argument per job (see enqueue.lua): the idempotency key last, as it may hold a newline."""
    run_at = -1 if spec.run_at_ms is None else spec.run_at_ms
    head = (
        f"{job_id}\n{spec.type}\n{spec.priority} {spec.delay_ms} {run_at} {spec.max_retries} "
        f"{math.ceil(spec.timeout * 1000)}\n{spec.fingerprint() if spec.idempotency_key else ''}\n"
    )
    return head.encode() + spec.payload_json + b"\n" + (spec.idempotency_key or "").encode()


def text(v: bytes | str) -> str:
    return v if isinstance(v, str) else v.decode()


def opt_text(v: bytes | None) -> str | None:
    return None if v is None else v.decode()


def num(v: bytes | int | None, default: int = 0) -> int:
    return default if v is None else int(v)


def claimed_job(queue: str, row: list[bytes], now: int) -> Job:
    """A job from one of claim.lua's rows: {id, lease, att, type, payload, pri, maxr, tmo, run, idem, ca, err, errs}."""
    jid, lease, att, typ, payload, pri, maxr, tmo, run, idem, ca, err, errs = row
    return Job(
        id=jid.decode(),
        queue=queue,
        type=typ.decode(),
        payload=orjson.loads(payload),
        priority=int(pri),
        status=S.RUNNING,
        attempts=int(att),
        max_retries=int(maxr),
        timeout=int(tmo) / 1000,
        run_at=None if run is None else int(run),
        idempotency_key=opt_text(idem),
        last_error=opt_text(err),
        errors=decode_errors(errs),
        created_at=int(ca),
        updated_at=now,
        started_at=now,
        lease=int(lease),
    )


def decode_job(job_id: str, queue: str, f: dict[bytes, bytes]) -> Job:
    """A job from its hash (HGETALL)."""

    def g(name: str) -> bytes | None:
        return f.get(name.encode())

    errs = g("errs")
    res = g("res")
    prog = g("prog")
    return Job(
        id=job_id,
        queue=queue,
        type=(g("type") or b"").decode(),
        payload=orjson.loads(g("payload") or b"null"),
        priority=num(g("pri")),
        status=S((g("st") or b"PENDING").decode()),
        attempts=num(g("att")),
        max_retries=num(g("maxr")),
        timeout=num(g("tmo")) / 1000,
        run_at=None if g("run") is None else num(g("run")),
        idempotency_key=opt_text(g("idem")),
        last_error=opt_text(g("err")),
        errors=decode_errors(errs),
        result=orjson.loads(res) if res else None,
        created_at=num(g("ca")),
        updated_at=num(g("ua") or g("ca")),
        started_at=None if g("sa") is None else num(g("sa")),
        finished_at=None if g("fa") is None else num(g("fa")),
        lease=num(g("lease")),
        progress_info=orjson.loads(prog) if prog else None,
        lease_ms=None if g("lms") is None else num(g("lms")),
    )
