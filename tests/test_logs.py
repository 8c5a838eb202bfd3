import io
import logging
import re
from collections.abc import Iterator

import orjson
import pytest

from gotaskq import logs
from gotaskq.job import Job
from gotaskq.logs import job_log_extra, setup_logging
from gotaskq.states import JobStatus


@pytest.fixture(autouse=True)
def restore_gotaskq_logger() -> Iterator[None]:
    """setup_logging changes a process-wide logger: put it back for the other tests."""
    logger = logging.getLogger("gotaskq")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def make_job() -> Job:
    return Job(
        id="42",
        queue="emails",
        type="email",
        payload={},
        priority=0,
        status=JobStatus.RUNNING,
        attempts=2,
        max_retries=3,
        timeout=30.0,
    )


def test_job_log_extra() -> None:
    assert job_log_extra(make_job()) == {"job_id": "42", "queue": "emails", "job_type": "email", "attempt": 2}


def test_text_format_with_job_fields() -> None:
    out = io.StringIO()
    setup_logging("INFO", "text", stream=out)
    logging.getLogger("gotaskq.worker").info("job %s done", "42", extra=job_log_extra(make_job()))
    line = out.getvalue().strip()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO gotaskq\.worker: job 42 done "
        r"job_id=42 queue=emails type=email attempt=2",
        line,
    ), line


def test_text_format_without_job_fields_and_with_exception() -> None:
    out = io.StringIO()
    setup_logging("INFO", "text", stream=out)
    log = logging.getLogger("gotaskq.api")
    log.info("plain")
    try:
        raise KeyError("boom")
    except KeyError:
        log.exception("it broke")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("INFO gotaskq.api: plain")
    assert "job_id=" not in lines[0]
    assert lines[1].endswith("ERROR gotaskq.api: it broke")
    assert "Traceback" in lines[2]
    assert "KeyError: 'boom'" in out.getvalue()


def test_json_format() -> None:
    out = io.StringIO()
    setup_logging("DEBUG", "json", stream=out)
    log = logging.getLogger("gotaskq.worker")
    log.debug("claimed", extra={**job_log_extra(make_job()), "worker": 3})
    log.warning("no job fields")
    first, second = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "DEBUG"
    assert first["logger"] == "gotaskq.worker"
    assert first["msg"] == "claimed"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    job_fields = {k: first[k] for k in ("job_id", "queue", "job_type", "attempt")}
    assert job_fields == {"job_id": "42", "queue": "emails", "job_type": "email", "attempt": 2}
    assert first["worker"] == 3
    assert second["msg"] == "no job fields"
    assert "job_id" not in second


def test_json_exception_and_unserialisable_extra() -> None:
    out = io.StringIO()
    setup_logging("INFO", "json", stream=out)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("gotaskq").exception("oops", extra={"thing": object()})
    obj = orjson.loads(out.getvalue())
    assert "ZeroDivisionError" in obj["exc"]
    assert obj["thing"].startswith("<object object")


def test_level_filters() -> None:
    out = io.StringIO()
    setup_logging("warning", "text", stream=out)
    log = logging.getLogger("gotaskq.x")
    log.info("hidden")
    log.warning("shown")
    assert "hidden" not in out.getvalue()
    assert "shown" in out.getvalue()


def test_idempotent_and_switches_format() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("INFO", "text", stream=first)
    setup_logging("INFO", "json", stream=second)
    setup_logging("INFO", "json", stream=second)
    logging.getLogger("gotaskq.y").info("once")
    assert first.getvalue() == ""
    lines = second.getvalue().splitlines()
    assert len(lines) == 1
    assert orjson.loads(lines[0])["msg"] == "once"


def test_keeps_foreign_handlers_and_does_not_propagate() -> None:
    logger = logging.getLogger("gotaskq")
    foreign = logging.NullHandler()
    logger.addHandler(foreign)
    setup_logging("INFO", "text", stream=io.StringIO())
    setup_logging("INFO", "text", stream=io.StringIO())
    assert foreign in logger.handlers
    # one handler of ours however often it is called (other tests' capture handlers may be
    # attached to the logger meanwhile: count ours, not all)
    assert sum(isinstance(h, logs._GotaskqHandler) for h in logger.handlers) == 1
    assert logger.propagate is False


@pytest.mark.parametrize(("level", "fmt"), [("LOUD", "text"), ("INFO", "xml")])
def test_rejects_bad_arguments(level: str, fmt: str) -> None:
    with pytest.raises(ValueError):
        setup_logging(level, fmt, stream=io.StringIO())
