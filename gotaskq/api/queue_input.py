"""The queue settings a request may carry (PATCH and POST /queue/{name}): one table that both
the validation and /openapi.json's QueueSettings schema are read from."""

from __future__ import annotations

from typing import Any

from ..backends.base import UNSET, QueueSettings, RateLimit
from ..errors import InvalidInput

MAX_CONCURRENCY = 1_000_000
MAX_RATE = 1_000_000_000
MAX_PER_S = 86_400.0

# name -> (JSON Schema, what a wrong value is told)
FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "concurrency": (
        {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": MAX_CONCURRENCY,
            "description": "Jobs of the queue RUNNING at once at most, across every worker; null: no limit",
        },
        f"must be an integer from 1 to {MAX_CONCURRENCY}, or null",
    ),
    "rate_limit": (
        {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["max", "per"],
            "properties": {
                "max": {"type": "integer", "minimum": 1, "maximum": MAX_RATE},
                "per": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_PER_S},
            },
            "description": "At most max job starts in each window of per seconds, across every worker; null: none",
        },
        f'must be {{"max": integer 1..{MAX_RATE}, "per": seconds > 0 and <= {MAX_PER_S:g}}}, or null',
    ),
    "paused": ({"type": "boolean", "description": "Stop (true) or restart (false) claiming"}, "must be true or false"),
    "external": (
        {"type": "boolean", "description": "Served by external workers over HTTP (POST /queue/{name}/claim)"},
        "must be true or false",
    ),
}


def schema() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: spec for name, (spec, _) in FIELDS.items()},
        "description": "Queue settings; a field left out keeps its value",
    }


def _integer(value: object, lo: int, hi: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and lo <= value <= hi else None


def _rate_limit(value: object) -> RateLimit | None:
    if not isinstance(value, dict) or set(value) != {"max", "per"}:
        return None
    most = _integer(value["max"], 1, MAX_RATE)
    per = value["per"]
    if most is None or isinstance(per, bool) or not isinstance(per, int | float) or not 0 < per <= MAX_PER_S:
        return None
    return RateLimit(most, float(per))


NO_BODY: object = object()  # a request without a body (a bare POST creates with defaults)


def settings_from_json(obj: object) -> QueueSettings:
    """Validate a settings body (or NO_BODY); InvalidInput names each bad field."""
    if obj is NO_BODY:
        return QueueSettings()
    if not isinstance(obj, dict):
        raise InvalidInput("the body must be a JSON object", {"body": "must be a JSON object"})
    errs = {str(k)[:64]: "unknown field" for k in obj if k not in FIELDS}
    out: dict[str, object] = {}
    if "concurrency" in obj:
        value = obj["concurrency"]
        out["concurrency"] = None if value is None else _integer(value, 1, MAX_CONCURRENCY)
        if value is not None and out["concurrency"] is None:
            errs["concurrency"] = FIELDS["concurrency"][1]
    if "rate_limit" in obj:
        value = obj["rate_limit"]
        out["rate_limit"] = None if value is None else _rate_limit(value)
        if value is not None and out["rate_limit"] is None:
            errs["rate_limit"] = FIELDS["rate_limit"][1]
    for flag in ("paused", "external"):
        if flag in obj:
            if isinstance(obj[flag], bool):
                out[flag] = obj[flag]
            else:
                errs[flag] = FIELDS[flag][1]
    if errs:
        raise InvalidInput("invalid queue settings: " + ", ".join(sorted(errs)), errs)
    return QueueSettings(
        concurrency=out.get("concurrency", UNSET),
        rate_limit=out.get("rate_limit", UNSET),
        paused=out.get("paused", UNSET),
        external=out.get("external", UNSET),
    )
