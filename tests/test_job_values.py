"""Job values: RFC 3339 rendering of times (and its one-entry cache), NewJob.build."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gotaskq.job import iso_ms


@pytest.mark.parametrize("ms", [0, 999, 1_764_000_000_123, 1_764_000_000_999, 4_102_444_799_999])
def test_iso_ms_matches_datetime(ms: int) -> None:
    expected = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert iso_ms(ms) == f"{expected}.{ms % 1000:03d}Z"


def test_iso_ms_cache_never_answers_for_another_time() -> None:
    a, b = 1_764_000_000_123, 1_764_000_000_124
    seen = [iso_ms(t) for t in (a, a, b, a, b, b, None, a)]
    assert seen == [
        "2025-11-24T16:00:00.123Z",
        "2025-11-24T16:00:00.123Z",
        "2025-11-24T16:00:00.124Z",
        "2025-11-24T16:00:00.123Z",
        "2025-11-24T16:00:00.124Z",
        "2025-11-24T16:00:00.124Z",
        None,
        "2025-11-24T16:00:00.123Z",
    ]


def test_build_sets_every_field_as_init_would() -> None:
    from dataclasses import FrozenInstanceError, asdict, fields

    from gotaskq.job import NewJob

    built = NewJob.build(
        "t", {"a": [1]}, queue="q", priority=2, delay=1.5, max_retries=4, timeout=9, idempotency_key="k"
    )
    assert set(vars(built)) == {f.name for f in fields(NewJob)}
    assert built == NewJob(**asdict(built))
    assert built.timeout == 9.0 and type(built.timeout) is float
    with pytest.raises(FrozenInstanceError):
        built.priority = 10  # type: ignore[misc]


def test_a_job_copy_holds_every_field_and_is_a_new_object() -> None:
    from dataclasses import fields

    from gotaskq.job import Job

    values = {f.name: object() for f in fields(Job)}  # a distinct value per field, new ones too
    job = Job(**values)  # type: ignore[arg-type]
    copy = job.copy()
    assert copy is not job
    assert all(getattr(copy, name) is value for name, value in values.items())  # shallow, as replace()
    copy.status = object()  # type: ignore[assignment]
    assert job.status is values["status"]
