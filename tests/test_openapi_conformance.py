"""The server against its own /openapi.json: schemathesis, every check on, on the real ASGI app.

Every operation of the document is called with data generated from it, valid (each must be
accepted: 2xx, or 404/409 for a resource that is not there or not in that state) and
invalid (each must be refused with a 4xx), plus undeclared methods (405 with Allow) and
missing parameters; every answer must have a declared status, content type, headers and
body. Any non-conformance fails the test. Loopback only: schemathesis calls the ASGI app
in-process on the in-memory backend. Bounded and derandomized so CI runs it the same way
every time, in about twenty seconds.

Two things the generator is told, both declared in the document:

* run_at's horizon moves with the clock (now + 366 days). The document gives it as the
  ``maximum`` of the epoch-seconds form, computed when it is served; the test freezes the
  clock of the validator so that the document and the server agree to the millisecond
  (otherwise a number a few ms past the served maximum is "invalid" yet accepted).
* A schedule's ``cron`` and ``timezone`` have formats of their own (``cron``,
  ``iana-time-zone``), which JSON Schema cannot spell out: the strategies below draw valid ones
  (cron expressions from every field form, zones from the system's zoneinfo).
* JSON Schema has no bound for a date-time string. The document's pattern for the RFC 3339
  form only lists local dates from 1971 to two days before the horizon (in range whatever
  the offset); schemathesis draws from it, except for ``format: date-time`` strings, which
  it draws from any year 1 to 9999: the strategy below draws them from that same range.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from unittest import mock
from zoneinfo import available_timezones

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.specs.openapi.formats import STRING_FORMATS
from starlette.applications import Starlette

from gotaskq import App, Settings
from gotaskq.api import create_app
from gotaskq.backends.memory import MemoryBackend
from gotaskq.job import MAX_DELAY_MS

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 40  # per operation and phase; about 20 s for the whole document on 2 cores
FROZEN_MS = int(time.time() * 1000)
HORIZON_MS = FROZEN_MS + MAX_DELAY_MS


@st.composite
def run_at_text(draw: st.DrawFn) -> str:
    """An RFC 3339 time the run_at pattern of the document allows (see the module docstring)."""
    day = 86_400_000
    ms = draw(st.integers(366 * day, HORIZON_MS - 3 * day))
    offset = timezone(timedelta(minutes=draw(st.integers(-14 * 60, 14 * 60))))
    at = datetime.fromtimestamp(ms // 1000, tz=UTC).astimezone(offset)
    digits = draw(st.integers(0, 9))
    fraction = "." + f"{ms % 1000:03d}{draw(st.integers(0, 999_999)):06d}"[:digits] if digits else ""
    text = at.strftime("%Y-%m-%dT%H:%M:%S") + fraction + at.strftime("%z")[:3] + ":" + at.strftime("%z")[3:]
    if at.utcoffset() == timedelta(0) and draw(st.booleans()):
        text = text[: -len("+00:00")] + "Z"
    return draw(st.sampled_from([text, text.lower()]))


@st.composite
def cron_text(draw: st.DrawFn) -> str:
    """A cron expression of 5 fields, each *, */step, a number, a range or a list (all valid)."""
    fields = []
    for lo, hi in ((0, 59), (0, 23), (1, 28), (1, 12), (0, 7)):
        a = draw(st.integers(lo, hi))
        b = draw(st.integers(a, hi))
        fields.append(
            draw(st.sampled_from(["*", f"*/{draw(st.integers(1, hi - lo + 1))}", str(a), f"{a}-{b}", f"{a},{b}"]))
        )
    return " ".join(fields)


def _app() -> Starlette:
    settings_ = Settings()
    return create_app(App(settings_, MemoryBackend(settings_), builtins=False))


def _frozen_clock() -> int:
    return FROZEN_MS


# Formats of the document's own (registered before the schema is read: strategies are built then).
schemathesis.openapi.format("cron", cron_text())
schemathesis.openapi.format("iana-time-zone", st.sampled_from(sorted(available_timezones())))

# The document is read once, here (schemathesis.pytest.from_fixture, which would read it in a
# fixture, does not run on pytest 9: it sets Function._nodeid); the clock is frozen for that.
with mock.patch("gotaskq.job.now_ms", _frozen_clock):
    schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@pytest.fixture(autouse=True)
def frozen_validator_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The clock of the run_at check stopped where the document's was, and RFC 3339 run_at
    values drawn from the range the document states (see the module docstring)."""
    monkeypatch.setattr("gotaskq.job.now_ms", _frozen_clock)
    original = STRING_FORMATS.get("date-time")
    schemathesis.openapi.format("date-time", run_at_text())
    yield
    if original is not None:
        STRING_FORMATS["date-time"] = original


load_all_checks()
# Every check schemathesis has, as `--checks all` runs them. use_after_free and
# ensure_resource_availability only ever fire in stateful runs (they compare a DELETE with
# the next call); they are on here too and simply find nothing to compare.
ALL_CHECKS = list(CHECKS.get_all())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # The body strategies of a document this size are slow to draw; that is not a server fault.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
def test_server_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=ALL_CHECKS)
