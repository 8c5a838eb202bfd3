"""Logging set-up of the ``gotaskq`` logger tree: readable text lines or JSON lines."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import orjson

from .job import Job, iso_ms

FORMATS = ("text", "json")

# Job fields a record may carry (via ``extra=job_log_extra(job)``) and their text labels.
JOB_FIELDS = {"job_id": "job_id", "queue": "queue", "job_type": "type", "attempt": "attempt"}

# Everything a bare LogRecord has; any other attribute came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def job_log_extra(job: Job) -> dict[str, object]:
    """The ``extra=`` mapping that tags a log record with the job it is about."""
    return {"job_id": job.id, "queue": job.queue, "job_type": job.type, "attempt": job.attempts}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    """The record's ``extra=`` fields, job fields first in a fixed order."""
    d = record.__dict__
    out = {k: d[k] for k in JOB_FIELDS if k in d}
    out.update((k, v) for k, v in d.items() if k not in _RECORD_ATTRS and k not in JOB_FIELDS)
    return out


class TextFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678Z INFO gotaskq.worker: message job_id=7 queue=q type=t attempt=1``."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            iso_ms(int(record.created * 1000)) or "",
            record.levelname,
            f"{record.name}: {record.getMessage()}",
        ]
        for key, value in _extras(record).items():
            parts.append(f"{JOB_FIELDS.get(key, key)}={value}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: ts, level, logger, msg, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "ts": iso_ms(int(record.created * 1000)),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            obj.setdefault(key, value)
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        # default=str: an odd extra (a Path, an exception) must not lose the whole line
        return orjson.dumps(obj, default=str).decode()


class _GotaskqHandler(logging.StreamHandler[TextIO]):
    """Marks the handler this module installed, so a second set-up replaces it."""


def setup_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Configure the ``gotaskq`` logger tree; safe to call again (it replaces its handler).

    ``level`` is a level name (DEBUG, INFO, WARNING, ERROR); ``fmt`` is ``text`` or ``json``;
    ``stream`` defaults to stderr.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    logger = logging.getLogger("gotaskq")
    for old in [h for h in logger.handlers if isinstance(h, _GotaskqHandler)]:
        logger.removeHandler(old)
    handler = _GotaskqHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(numeric)
    # our handler already wrote the line; a root handler (basicConfig, a host app) would repeat it
    logger.propagate = False
