"""POST /jobs, POST /jobs/batch, GET and DELETE /jobs/{id} through the real ASGI app."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from api_support import Api, MakeApi, error_code, error_fields

from gotaskq.errors import BackendUnavailable
from gotaskq.states import JobStatus

pytest_plugins = ["api_support"]


async def test_create_job_with_defaults(make_api: MakeApi) -> None:
    api = await make_api(max_retries=7, job_timeout=42.0)
    r = await api.client.post("/jobs", json={"type": "email", "payload": {"to": "a@b.c"}})
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/json"
    job = r.json()
    assert job["type"] == "email"
    assert job["payload"] == {"to": "a@b.c"}
    assert job["queue"] == "default"
    assert (job["priority"], job["max_retries"], job["timeout"]) == (0, 7, 42.0)
    assert job["status"] == "PENDING"
    assert "Idempotent-Replayed" not in r.headers
    stored = await api.app.get_job(job["id"])
    assert stored is not None and stored.to_dict() == job


async def test_create_job_every_field(api: Api) -> None:
    body = {
        "type": "report.build",
        "payload": [1, "two", None, {"x": 1.5}],
        "queue": "default",
        "priority": 10,
        "delay": 60,
        "max_retries": 0,
        "timeout": 0.5,
        "idempotency_key": "k" * 255,
    }
    r = await api.client.post("/jobs", json=body)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "SCHEDULED"
    assert job["run_at"] is not None
    assert (job["priority"], job["max_retries"], job["timeout"]) == (10, 0, 0.5)
    assert job["idempotency_key"] == "k" * 255


async def test_payload_defaults_to_null(api: Api) -> None:
    assert (await api.job())["payload"] is None


@pytest.mark.parametrize(
    "field", ["payload", "queue", "priority", "delay", "run_at", "max_retries", "timeout", "idempotency_key"]
)
async def test_null_means_default(api: Api, field: str) -> None:
    r = await api.client.post("/jobs", json={"type": "t", field: None})
    assert r.status_code == 201, r.text
    defaults = {"payload": None, "queue": "default", "priority": 0, "run_at": None, "max_retries": 3, "timeout": 300.0}
    assert {k: r.json()[k] for k in defaults} == defaults


@pytest.mark.parametrize(
    "run_at",
    ["2099-01-02T03:04:05Z", "2099-01-02t03:04:05.123456789z", "2099-01-02 03:04:05+02:00", 4070912645, 4070912645.5],
)
async def test_run_at_beyond_the_horizon_is_422(api: Api, run_at: object) -> None:
    r = await api.client.post("/jobs", json={"type": "t", "run_at": run_at})
    assert r.status_code == 422
    assert set(error_fields(r)) == {"run_at"}


async def test_run_at_rfc3339_within_horizon(api: Api) -> None:
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    r = await api.client.post("/jobs", json={"type": "t", "run_at": soon})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "SCHEDULED"
    assert r.json()["run_at"].startswith(soon[:16])


async def test_run_at_epoch_seconds(api: Api) -> None:
    r = await api.client.post("/jobs", json={"type": "t", "run_at": time.time() + 600})
    assert r.status_code == 201
    assert r.json()["status"] == "SCHEDULED"


async def test_run_at_in_the_past_runs_now(api: Api) -> None:
    r = await api.client.post("/jobs", json={"type": "t", "run_at": "2020-01-01T00:00:00+00:00"})
    assert r.status_code == 201
    assert r.json()["status"] == "PENDING"


@pytest.mark.parametrize(
    "run_at",
    ["tomorrow", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "2026-01-01T00:00:60Z", "", True, [], {}],
)
async def test_run_at_invalid(api: Api, run_at: object) -> None:
    r = await api.client.post("/jobs", json={"type": "t", "run_at": run_at})
    assert r.status_code == 422
    assert error_code(r) == "validation_error"
    assert "run_at" in error_fields(r)


async def test_run_at_with_nonzero_delay_is_refused(api: Api) -> None:
    r = await api.client.post("/jobs", json={"type": "t", "run_at": time.time() + 60, "delay": 5})
    assert r.status_code == 422
    assert "run_at" in error_fields(r)
    ok = await api.client.post("/jobs", json={"type": "t", "run_at": time.time() + 60, "delay": 0})
    assert ok.status_code == 201


async def test_unknown_fields_are_named(api: Api) -> None:
    r = await api.client.post("/jobs", json={"type": "t", "prio": 1, "extra": True})
    assert r.status_code == 422
    assert error_code(r) == "validation_error"
    assert error_fields(r) == {"prio": "unknown field", "extra": "unknown field"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", 5),
        ("type", ""),
        ("type", "has space"),
        ("type", "email\n"),
        ("type", None),
        ("queue", "bad name"),
        ("queue", "default\n"),
        ("queue", 1),
        ("priority", "5"),
        ("priority", True),
        ("priority", 1.5),
        ("priority", 11.0),
        ("priority", -1),
        ("priority", 11),
        ("priority", 18446744073709551615),
        ("priority", 18446744073709551616),
        ("delay", "5"),
        ("delay", False),
        ("delay", -1),
        ("delay", 10**9),
        ("delay", 31622400.01),
        ("max_retries", 101),
        ("max_retries", 2.5),
        ("max_retries", True),
        ("timeout", 0),
        ("timeout", -1),
        ("timeout", "30s"),
        ("timeout", 10**6),
        ("timeout", 0.0009),
        ("timeout", 86400.01),
        ("idempotency_key", ""),
        ("idempotency_key", "k" * 256),
        ("idempotency_key", 12),
    ],
)
async def test_wrong_field_is_named(api: Api, field: str, value: object) -> None:
    r = await api.client.post("/jobs", json={"type": "t", field: value})
    assert r.status_code == 422, r.text
    assert error_code(r) == "validation_error"
    assert set(error_fields(r)) == {field}


async def test_type_is_required(api: Api) -> None:
    r = await api.client.post("/jobs", json={"payload": 1})
    assert r.status_code == 422
    assert error_fields(r) == {"type": "is required"}


async def test_every_bad_field_is_named_at_once(api: Api) -> None:
    r = await api.client.post("/jobs", json={"priority": "5", "timeout": 0, "queue": "a b", "x": 1})
    assert r.status_code == 422
    assert set(error_fields(r)) == {"type", "priority", "timeout", "queue", "x"}


@pytest.mark.parametrize("body", [[], [1], "job", 5, None, True])
async def test_body_must_be_an_object(api: Api, body: object) -> None:
    r = await api.client.post("/jobs", content=orjson.dumps(body))
    assert r.status_code == 422
    assert error_fields(r) == {"body": "must be a JSON object"}


async def test_idempotent_replay_and_conflict(api: Api) -> None:
    body = {"type": "t", "payload": {"n": 1}, "idempotency_key": "order-1"}
    first = await api.client.post("/jobs", json=body)
    assert first.status_code == 201
    again = await api.client.post("/jobs", json=body)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await api.client.post("/jobs", json={**body, "payload": {"n": 2}})
    assert other.status_code == 409
    assert error_code(other) == "idempotency_conflict"
    assert (await api.app.queue_info("default")).pending == 1


async def test_unknown_queue_is_404(api: Api) -> None:
    r = await api.client.post("/jobs", json={"type": "t", "queue": "nope"})
    assert r.status_code == 404
    assert error_code(r) == "queue_not_found"


async def test_auto_create_queues(make_api: MakeApi) -> None:
    api = await make_api(auto_create_queues=True)
    r = await api.client.post("/jobs", json={"type": "t", "queue": "fresh"})
    assert r.status_code == 201
    assert (await api.app.queue_info("fresh")).pending == 1


async def test_queue_full_is_429_with_retry_after(make_api: MakeApi) -> None:
    api = await make_api(max_queue_depth=2)
    await api.job()
    await api.job()
    r = await api.client.post("/jobs", json={"type": "t"})
    assert r.status_code == 429
    assert error_code(r) == "queue_full"
    assert r.headers["Retry-After"] == "1"


async def test_backend_unavailable_is_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down(*args: Any) -> Any:
        raise BackendUnavailable("connection refused")

    monkeypatch.setattr(api.app.backend, "enqueue", down)
    monkeypatch.setattr(api.app.backend, "get_job", down)
    r = await api.client.post("/jobs", json={"type": "t"})
    assert r.status_code == 503
    assert error_code(r) == "backend_unavailable"
    assert (await api.client.get("/jobs/1")).status_code == 503


async def test_redis_connection_error_is_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    async def down(*args: Any) -> Any:
        raise RedisConnectionError("Error 111 connecting")

    monkeypatch.setattr(api.app.backend, "get_job", down)
    r = await api.client.get("/jobs/1")
    assert r.status_code == 503
    assert error_code(r) == "backend_unavailable"


# -- malformed and hostile bodies -----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"type": "t",}',
        b"{'type': 't'}",
        b'{"type": "\xff\xfe"}',
        b'{"type": "t", "payload": NaN}',
        b'{"type": "t", "payload": Infinity}',
        b'{"type": "t", "payload": -Infinity}',
        b'{"type": "t", "payload": "\\ud800"}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"type": "t", "payload": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b'{"type": "t"} trailing',
        b"\xef\xbb\xbf{}",
    ],
)
async def test_malformed_json_is_400(api: Api, raw: bytes) -> None:
    r = await api.client.post("/jobs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert error_code(r) == "invalid_json"


async def test_huge_integer_priority_is_422(api: Api) -> None:
    r = await api.client.post("/jobs", content=b'{"type": "t", "priority": ' + b"9" * 5000 + b"}")
    assert r.status_code == 422
    assert set(error_fields(r)) == {"priority"}


@pytest.mark.parametrize("number", [b"9" * 5000, b"-" + b"9" * 5000, b"1e400", b"1" * 400 + b".5"])
async def test_huge_numbers_in_fields_are_422(api: Api, number: bytes) -> None:
    raw = b'{"type": "t", "delay": %s, "timeout": %s, "run_at": %s}' % (number, number, number)
    r = await api.client.post("/jobs", content=raw)
    assert r.status_code == 422, r.text
    assert {"delay", "timeout", "run_at"} <= set(error_fields(r))


@pytest.mark.parametrize(
    "payload", [b"9" * 5000, b'[1, {"a": ' + b"9" * 5000 + b"}]", b"1e999", b'"\\ud800", "x": ' + b"9" * 500]
)
async def test_huge_number_in_payload_is_never_500(api: Api, payload: bytes) -> None:
    r = await api.client.post("/jobs", content=b'{"type": "t", "payload": ' + payload + b"}")
    assert r.status_code in (400, 201)
    if r.status_code == 400:
        assert error_code(r) == "invalid_json"


async def test_huge_number_then_garbage_is_400(api: Api) -> None:
    r = await api.client.post("/jobs", content=b'{"type": "t", "priority": ' + b"9" * 500 + b", }")
    assert r.status_code == 400


async def test_large_but_representable_integers_in_payload(api: Api) -> None:
    r = await api.client.post(
        "/jobs", content=b'{"type": "t", "payload": [18446744073709551615, -9223372036854775808]}'
    )
    assert r.status_code == 201
    assert r.json()["payload"] == [18446744073709551615, -9223372036854775808]


async def test_payload_nested_beyond_what_can_be_stored_is_422(api: Api) -> None:
    deep = b"[" * 600 + b"]" * 600
    r = await api.client.post("/jobs", content=b'{"type": "t", "payload": ' + deep + b"}")
    assert r.status_code in (400, 422)


async def test_unicode_payload_round_trips(api: Api) -> None:
    job = await api.job(payload={"text": "héllo \u2603 \U0001f600", "nul": "\x00"})
    assert job["payload"] == {"text": "héllo \u2603 \U0001f600", "nul": "\x00"}


# -- batch --------------------------------------------------------------------------------------


async def test_batch_creates_all(api: Api) -> None:
    jobs = [{"type": "t", "payload": i, "priority": i % 3} for i in range(5)]
    r = await api.client.post("/jobs/batch", json={"jobs": jobs})
    assert r.status_code == 201, r.text
    out = r.json()["jobs"]
    assert [j["payload"] for j in out] == list(range(5))
    assert len({j["id"] for j in out}) == 5
    assert (await api.app.queue_info("default")).pending == 5


async def test_batch_is_all_or_nothing(api: Api) -> None:
    jobs: list[object] = [{"type": "t"}, {"type": "t"}, {"type": "t", "priority": "x"}, 7, {"type": "t", "zz": 1}]
    r = await api.client.post("/jobs/batch", json={"jobs": jobs})
    assert r.status_code == 422
    assert error_fields(r) == {
        "jobs[2].priority": "must be an integer from 0 to 10",
        "jobs[3]": "must be a JSON object",
        "jobs[4].zz": "unknown field",
    }
    assert (await api.app.queue_info("default")).pending == 0


@pytest.mark.parametrize("body", [{"jobs": []}, {"jobs": {}}, {"jobs": None}, {}, {"jobs": "t"}])
async def test_batch_needs_a_list_of_jobs(api: Api, body: dict[str, Any]) -> None:
    r = await api.client.post("/jobs/batch", json=body)
    assert r.status_code == 422
    assert "jobs" in error_fields(r)


async def test_batch_size_limit(api: Api) -> None:
    ok = await api.client.post("/jobs/batch", json={"jobs": [{"type": "t"}] * 1000})
    assert ok.status_code == 201
    too_many = await api.client.post("/jobs/batch", json={"jobs": [{"type": "t"}] * 1001})
    assert too_many.status_code == 422
    assert "jobs" in error_fields(too_many)


async def test_batch_unknown_top_level_field(api: Api) -> None:
    r = await api.client.post("/jobs/batch", json={"jobs": [{"type": "t"}], "queue": "x"})
    assert r.status_code == 422
    assert error_fields(r) == {"queue": "unknown field"}


@pytest.mark.parametrize("body", [[{"type": "t"}], "x", None])
async def test_batch_body_must_be_an_object(api: Api, body: object) -> None:
    r = await api.client.post("/jobs/batch", content=orjson.dumps(body))
    assert r.status_code == 422


async def test_batch_to_missing_queue_is_404(api: Api) -> None:
    r = await api.client.post("/jobs/batch", json={"jobs": [{"type": "t", "queue": "nope"}]})
    assert r.status_code == 404
    assert error_code(r) == "queue_not_found"


async def test_batch_malformed_json(api: Api) -> None:
    r = await api.client.post("/jobs/batch", content=b'{"jobs": [')
    assert r.status_code == 400
    assert error_code(r) == "invalid_json"


async def test_batch_huge_priority_is_422_with_path(api: Api) -> None:
    raw = b'{"jobs": [{"type": "t"}, {"type": "t", "priority": ' + b"9" * 5000 + b"}]}"
    r = await api.client.post("/jobs/batch", content=raw)
    assert r.status_code == 422
    assert set(error_fields(r)) == {"jobs[1].priority"}


# -- read and cancel ------------------------------------------------------------------------------


async def test_get_job(api: Api) -> None:
    job = await api.job(payload={"a": 1})
    r = await api.client.get(f"/jobs/{job['id']}")
    assert r.status_code == 200
    assert r.json() == job


@pytest.mark.parametrize(
    "job_id", ["1", "abc", "1.5", "-1", "1e3", "123%0A", "%00", "9" * 21, "%FF", "%20", "%E2%98%83", "1%2F2"]
)
async def test_unknown_or_garbage_job_id_is_404(api: Api, job_id: str) -> None:
    for method in ("GET", "DELETE"):
        r = await api.client.request(method, f"/jobs/{job_id}")
        assert r.status_code == 404, (method, job_id, r.text)
        assert error_code(r) in ("job_not_found", "not_found")


async def test_cancel_pending_and_scheduled(api: Api) -> None:
    for delay in (0, 60):
        job = await api.job(delay=delay)
        r = await api.client.delete(f"/jobs/{job['id']}")
        assert r.status_code == 200
        assert r.json()["status"] == "CANCELLED"
        assert r.json()["id"] == job["id"]
    info = await api.app.queue_info("default")
    assert (info.pending, info.scheduled) == (0, 0)


async def test_cancel_twice_is_409_naming_the_status(api: Api) -> None:
    job = await api.job()
    await api.client.delete(f"/jobs/{job['id']}")
    r = await api.client.delete(f"/jobs/{job['id']}")
    assert r.status_code == 409
    assert error_code(r) == "invalid_state"
    assert "CANCELLED" in r.json()["error"]["message"]


async def test_cancel_running_is_409(api: Api) -> None:
    job = await api.job()
    await api.app.backend.claim("default", 1, 30_000)
    r = await api.client.delete(f"/jobs/{job['id']}")
    assert r.status_code == 409
    assert "RUNNING" in r.json()["error"]["message"]
    stored = await api.app.get_job(job["id"])
    assert stored is not None and stored.status is JobStatus.RUNNING
