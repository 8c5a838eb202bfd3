"""Regressions: /openapi.json disagreed with the server (item 12 of the review).

Each test is named after one defect; each failed before the fix. The last one checks the rule
that fixed them all: the JobRequest schema and the server's checks, both derived from
gotaskq.job.JOB_REQUEST_FIELDS, agree on a table of bodies (with a JSON Schema validator).
They import nothing of the fix, so that they also run (and fail) against the code before it.
"""

from __future__ import annotations

import time
from typing import Any

import jsonschema_rs
import pytest
from api_support import Api, error_code, error_fields

pytest_plugins = ["api_support"]

OPTIONAL_FIELDS = ["payload", "queue", "priority", "delay", "run_at", "max_retries", "timeout", "idempotency_key"]
MAX_DELAY_S = 366 * 24 * 3600  # the documented limit, written out: not read from the code under test


async def openapi(api: Api) -> dict[str, Any]:
    r = await api.client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


async def job_request_schema(api: Api) -> dict[str, Any]:
    schema: dict[str, Any] = (await openapi(api))["components"]["schemas"]["JobRequest"]
    return schema


@pytest.mark.parametrize(("field", "value"), [("priority", 7.0), ("max_retries", 2.0), ("priority", 1e1)])
async def test_priority_integral_float_accepted(api: Api, field: str, value: float) -> None:
    r = await api.client.post("/jobs", json={"type": "t", field: value})
    assert r.status_code == 201, r.text
    assert r.json()[field] == int(value) and type(r.json()[field]) is int


@pytest.mark.parametrize(("field", "value"), [("priority", 7.5), ("max_retries", 2.000001), ("priority", 11.0)])
async def test_priority_fractional_float_is_422(api: Api, field: str, value: float) -> None:
    r = await api.client.post("/jobs", json={"type": "t", field: value})
    assert r.status_code == 422
    assert set(error_fields(r)) == {field}


async def test_null_rule_uniform(api: Api) -> None:
    """null on any optional field is the field not given (it used to be 422 for priority,
    delay and queue, and the default for timeout); type has no default: null is a 422."""
    schema = await job_request_schema(api)
    plain = await api.job()
    for name in OPTIONAL_FIELDS:
        r = await api.client.post("/jobs", json={"type": "t", name: None})
        assert r.status_code == 201, (name, r.text)
        same = {k: v for k, v in r.json().items() if k not in ("id", "created_at", "updated_at")}
        assert same == {k: v for k, v in plain.items() if k not in ("id", "created_at", "updated_at")}, name
        declared = schema["properties"][name]
        allows_null = (
            ("type" not in declared and "anyOf" not in declared)  # payload: any JSON value
            or "null" in declared.get("type", [])
            or {"type": "null"} in declared.get("anyOf", [])
        )
        assert allows_null, name
    r = await api.client.post("/jobs", json={"type": None})
    assert r.status_code == 422
    assert set(error_fields(r)) == {"type"}
    assert schema["properties"]["type"]["type"] == "string"


@pytest.mark.parametrize(("path", "allow"), [("/jobs/batch", "POST"), ("/dlq/replay", "POST")])
@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
async def test_get_jobs_batch_is_405_with_allow(api: Api, path: str, allow: str, method: str) -> None:
    """A literal path next to a ``{id}`` one: not a lookup of the job "batch" (404)."""
    r = await api.client.request(method, path)
    assert r.status_code == 405
    assert r.headers["Allow"] == allow
    assert error_code(r) == "method_not_allowed"


async def test_dlq_empty_queue_param_is_422(api: Api) -> None:
    r = await api.client.get("/dlq?queue=")
    assert r.status_code == 422
    assert error_fields(r) == {"queue": "invalid queue name"}
    assert (await api.client.get("/dlq")).status_code == 200  # absent: every queue


async def test_openapi_declares_timeout_delay_run_at_limits(api: Api) -> None:
    props = (await job_request_schema(api))["properties"]
    assert (props["timeout"]["minimum"], props["timeout"]["maximum"]) == (0.001, 86400)
    assert "exclusiveMinimum" not in props["timeout"]
    assert (props["delay"]["minimum"], props["delay"]["maximum"]) == (0, 31_622_400)
    number = next(s for s in props["run_at"]["anyOf"] if s.get("type") == "number")
    assert number["minimum"] == 0
    assert time.time() + MAX_DELAY_S - 60 < number["maximum"] <= time.time() + MAX_DELAY_S
    assert props["run_at"]["x-max-seconds-after-now"] == MAX_DELAY_S
    text = next(s for s in props["run_at"]["anyOf"] if s.get("type") == "string")
    assert text["format"] == "date-time" and "pattern" in text
    for name, lo, hi in [("priority", 0, 10), ("max_retries", 0, 100)]:
        assert (props[name]["type"], props[name]["minimum"], props[name]["maximum"]) == (["integer", "null"], lo, hi)


async def test_openapi_declares_run_at_xor_delay(api: Api) -> None:
    validator = jsonschema_rs.Draft202012Validator(await job_request_schema(api))
    soon = time.time() + 60
    assert not validator.is_valid({"type": "t", "run_at": soon, "delay": 5})
    assert validator.is_valid({"type": "t", "run_at": soon, "delay": 0})
    assert validator.is_valid({"type": "t", "run_at": soon, "delay": None})
    assert validator.is_valid({"type": "t", "run_at": None, "delay": 5})
    r = await api.client.post("/jobs", json={"type": "t", "run_at": soon, "delay": 5})
    assert r.status_code == 422 and "run_at" in error_fields(r)


async def test_queue_jobs_state_default_declared(api: Api) -> None:
    params = (await openapi(api))["paths"]["/queue/{name}/jobs"]["get"]["parameters"]
    state = next(p for p in params if p["name"] == "state")
    assert not state["required"] and state["schema"]["default"] == "pending"
    pending = await api.job()
    await api.job(delay=3600)
    r = await api.client.get("/queue/default/jobs")
    assert r.status_code == 200
    assert [j["id"] for j in r.json()["jobs"]] == [pending["id"]]


@pytest.mark.parametrize("cursor", ["default: 5:1", "default:+5:1", "default:1_0:1", "default:\u0661:1", "a:b:c"])
async def test_cursor_outside_declared_pattern_is_422(api: Api, cursor: str) -> None:
    r = await api.client.get("/dlq", params={"cursor": cursor})
    assert r.status_code == 422
    assert set(error_fields(r)) == {"cursor"}


@pytest.mark.parametrize(
    "body",
    [
        {"type": "t"},
        {"type": "t", "priority": 7.0, "max_retries": 0.0, "timeout": 0.001, "delay": 31_622_400},
        {"type": "t", "timeout": 86_400, "idempotency_key": "k" * 255, "payload": [1, {"a": None}]},
        {"type": "t", "queue": None, "priority": None, "delay": None, "timeout": None, "run_at": None},
        {"type": "t", "run_at": "2020-01-01T00:00:00Z"},
        {"type": "t", "run_at": "2020-01-01T00:00:00.123456789+05:30", "delay": 0},
        {"type": "t", "priority": 7.5},
        {"type": "t", "priority": -1},
        {"type": "t", "priority": True},
        {"type": "t", "priority": "1"},
        {"type": "t", "max_retries": 101},
        {"type": "t", "timeout": 0.0009},
        {"type": "t", "timeout": 0},
        {"type": "t", "timeout": 86_400.5},
        {"type": "t", "delay": 31_622_400.5},
        {"type": "t", "delay": -0.5},
        {"type": "t", "run_at": -1},
        {"type": "t", "run_at": 1e12},
        {"type": "t", "run_at": "2020-01-01T00:00:60Z"},
        {"type": "t", "run_at": "2020-01-01T00:00:00"},
        {"type": "t", "run_at": 5, "delay": 1},
        {"type": "t", "idempotency_key": ""},
        {"type": "t", "idempotency_key": "k" * 256},
        {"type": "t", "queue": "a b"},
        {"type": "t", "queue": "q" * 65},
        {"type": ""},
        {"type": None},
        {"payload": 1},
        {"type": "t", "extra": 1},
    ],
)
async def test_schema_and_server_agree(api: Api, body: dict[str, Any]) -> None:
    validator = jsonschema_rs.Draft202012Validator(await job_request_schema(api), validate_formats=True)
    r = await api.client.post("/jobs", json=body)
    assert r.status_code in (201, 422), r.text
    assert validator.is_valid(body) == (r.status_code == 201), r.text
