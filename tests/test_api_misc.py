"""Health, readiness, metrics, OpenAPI, routing errors, the catch-all, body limits, lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from api_support import Api, MakeApi, MakeApp, error_code, serve
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import Route

from gotaskq.api import create_app
from gotaskq.errors import BackendUnavailable, GotaskqError

pytest_plugins = ["api_support"]


# -- operations -----------------------------------------------------------------------------------


async def test_healthz(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def down() -> None:
        raise BackendUnavailable("down")

    monkeypatch.setattr(api.app.backend, "ping", down)
    r = await api.client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz(api: Api) -> None:
    r = await api.client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


@pytest.mark.parametrize("exc", [BackendUnavailable("down"), ConnectionRefusedError(), TimeoutError()])
async def test_readyz_when_backend_is_down(api: Api, monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    async def down() -> None:
        raise exc

    monkeypatch.setattr(api.app.backend, "ping", down)
    r = await api.client.get("/readyz")
    assert r.status_code == 503
    assert error_code(r) == "backend_unavailable"


async def test_metrics(api: Api) -> None:
    await api.job()
    await api.job(delay=30)
    await api.dead_job()
    r = await api.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == CONTENT_TYPE_LATEST
    text = r.text
    assert 'gotaskq_queue_depth{queue="default",state="pending"} 1.0' in text
    assert 'gotaskq_queue_depth{queue="default",state="scheduled"} 1.0' in text
    assert 'gotaskq_queue_depth{queue="default",state="dead"} 1.0' in text
    assert 'gotaskq_jobs_enqueued_total{queue="default"} 3.0' in text
    assert "gotaskq_backend_up 1.0" in text


async def test_metrics_see_queues_created_elsewhere(api: Api) -> None:
    await api.app.backend.create_queue("made-by-another-process")
    text = (await api.client.get("/metrics")).text
    assert 'gotaskq_queue_depth{queue="made-by-another-process",state="pending"} 0.0' in text


# -- OpenAPI ---------------------------------------------------------------------------------------


async def test_openapi_documents_every_route(api: Api) -> None:
    r = await api.client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    served: set[tuple[str, str]] = set()
    for route in api.web.routes:
        assert isinstance(route, Route)
        if not route.include_in_schema:  # /, /docs: pages, not operations (tests/test_docs_page.py)
            continue
        for method in route.methods or ():
            if method != "HEAD":
                served.add((route.path, method.lower()))
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served == documented


async def test_openapi_operations_are_complete(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    responses = doc["components"]["responses"]
    schemas = doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["summary"] and op["responses"], (path, method)
            for resp in op["responses"].values():
                if "$ref" in resp:
                    assert resp["$ref"].removeprefix("#/components/responses/") in responses
            if "{" in path:
                declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
                assert declared == {path.split("{")[1].split("}")[0]}, (path, method)
    for resp in responses.values():
        assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert set(schemas["JobRequest"]["properties"]) == {
        "type",
        "payload",
        "queue",
        "priority",
        "delay",
        "run_at",
        "max_retries",
        "timeout",
        "idempotency_key",
    }


async def test_openapi_lists_each_error_status(api: Api) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]

    def codes(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    post_jobs = paths["/jobs"]["post"]
    assert post_jobs["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobRequest"
    }
    assert {"200", "201", "400", "401", "404", "409", "413", "422", "429", "503"} <= codes("/jobs", "post")
    assert {"201", "400", "413", "422", "429"} <= codes("/jobs/batch", "post")
    assert {"200", "404", "409"} <= codes("/jobs/{id}", "delete")
    assert {"200", "201", "403", "422"} <= codes("/queue/{name}", "post")
    assert {"204", "403", "404", "409"} <= codes("/dlq/{id}", "delete")
    assert {"200", "404", "409"} <= codes("/dlq/{id}/replay", "post")
    assert {"200", "422"} <= codes("/dlq", "get")
    assert {"200", "503"} <= codes("/readyz", "get")


# -- routing errors and the catch-all ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/nope", "/docs/nope", "/admin/nope", "/jobs/1/extra", "/queue/a/b/c", "/dlq/1/replay/x", "/%00"]
)
async def test_unknown_route_is_404(api: Api, path: str) -> None:
    r = await api.client.get(path)
    assert r.status_code == 404
    assert error_code(r) == "not_found"
    assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/jobs", {"POST"}),
        ("PUT", "/jobs/1", {"GET", "HEAD", "DELETE"}),
        ("DELETE", "/queue", {"GET", "HEAD"}),
        ("PATCH", "/dlq", {"GET", "HEAD", "DELETE"}),
        ("POST", "/healthz", {"GET", "HEAD"}),
        ("GET", "/dlq/replay", {"POST"}),  # the literal path, not /dlq/{id} with id "replay"
        ("GET", "/jobs/batch", {"POST"}),
    ],
)
async def test_wrong_method(api: Api, method: str, path: str, allowed: set[str]) -> None:
    r = await api.client.request(method, path)
    assert r.status_code == 405
    assert error_code(r) == "method_not_allowed"
    assert set(r.headers["Allow"].split(", ")) == allowed


async def test_head_is_served_for_get_routes(api: Api) -> None:
    r = await api.client.head("/healthz")
    assert r.status_code == 200


@pytest.mark.parametrize("exc", [RuntimeError("bug"), GotaskqError("odd"), KeyError("x")])
async def test_unexpected_error_is_500_json_and_logged(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, exc: Exception
) -> None:
    async def broken(*args: Any) -> Any:
        raise exc

    monkeypatch.setattr(api.app.backend, "get_job", broken)
    with caplog.at_level(logging.ERROR, logger="gotaskq.api"):
        r = await api.client.get("/jobs/1")
    assert r.status_code == 500
    assert error_code(r) == "internal"
    assert r.json()["error"]["message"] == "internal server error"
    assert any(rec.exc_info is not None for rec in caplog.records)


# -- request bodies ------------------------------------------------------------------------------------

LIMIT = 1024


def job_body(size: int) -> bytes:
    """A valid job request of exactly ``size`` bytes."""
    head, tail = b'{"type": "t", "payload": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_body_at_the_limit_is_accepted(make_api: MakeApi) -> None:
    api = await make_api(max_body_bytes=LIMIT)
    r = await api.client.post("/jobs", content=job_body(LIMIT))
    assert r.status_code == 201


@pytest.mark.parametrize("path", ["/jobs", "/jobs/batch"])
async def test_body_over_the_limit_is_413(make_api: MakeApi, path: str) -> None:
    api = await make_api(max_body_bytes=LIMIT)
    r = await api.client.post(path, content=job_body(LIMIT + 1))
    assert r.status_code == 413
    assert error_code(r) == "payload_too_large"
    assert (await api.app.queue_info("default")).pending == 0


@pytest.mark.parametrize("declared", [str(LIMIT + 1), "9" * 5000, "18446744073709551616"])
async def test_declared_length_over_the_limit_is_413_before_reading(make_api: MakeApi, declared: str) -> None:
    api = await make_api(max_body_bytes=LIMIT)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        sent += 1
        yield b"{}"

    r = await api.client.post("/jobs", content=body(), headers={"Content-Length": declared})
    assert r.status_code == 413
    assert sent == 0


async def test_lying_content_length_is_413(make_api: MakeApi) -> None:
    api = await make_api(max_body_bytes=LIMIT)
    r = await api.client.post("/jobs", content=job_body(LIMIT * 5), headers={"Content-Length": "20"})
    assert r.status_code == 413
    assert error_code(r) == "payload_too_large"


@pytest.mark.parametrize("declared", ["abc", "-5", "", "1.5"])
async def test_garbage_content_length_is_never_500(make_api: MakeApi, declared: str) -> None:
    api = await make_api(max_body_bytes=LIMIT)
    r = await api.client.post("/jobs", content=job_body(100), headers={"Content-Length": declared})
    assert r.status_code == 201
    big = await api.client.post("/jobs", content=job_body(LIMIT + 1), headers={"Content-Length": declared})
    assert big.status_code == 413


async def test_chunked_body_over_the_limit_stops_reading(make_api: MakeApi) -> None:
    api = await make_api(max_body_bytes=LIMIT)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"type": "t", "payload": "'
        while sent < 10_000:
            sent += 1
            yield b"x" * 256

    r = await api.client.post("/jobs", content=endless())
    assert "content-length" not in r.request.headers
    assert r.status_code == 413
    assert error_code(r) == "payload_too_large"
    assert sent <= LIMIT // 256 + 1


async def test_chunked_body_under_the_limit(make_api: MakeApi) -> None:
    api = await make_api(max_body_bytes=LIMIT)

    async def chunks() -> AsyncIterator[bytes]:
        for part in (b'{"type":', b' "t", "pay', b'load": [1, 2]}'):
            yield part

    r = await api.client.post("/jobs", content=chunks())
    assert r.status_code == 201
    assert r.json()["payload"] == [1, 2]


async def test_disconnect_mid_body_is_not_500(api: Api) -> None:
    messages = iter(
        [
            {"type": "http.request", "body": b'{"type": ', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/jobs",
        "raw_path": b"/jobs",
        "query_string": b"",
        "headers": [],
        "server": ("t", 80),
        "client": ("c", 1),
        "root_path": "",
    }
    await api.web(scope, receive, send)
    assert sent[0]["status"] == 400


# -- create_app and its lifespan -------------------------------------------------------------------


async def test_state_holds_the_app(make_app: MakeApp) -> None:
    app = make_app()
    web = create_app(app)
    assert web.state.gotaskq is app


async def test_lifespan_starts_and_closes_the_app(make_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    calls: list[str] = []
    real_connect, real_close = app.backend.connect, app.backend.close

    async def connect() -> None:
        calls.append("connect")
        await real_connect()

    async def close() -> None:
        calls.append("close")
        await real_close()

    monkeypatch.setattr(app.backend, "connect", connect)
    monkeypatch.setattr(app.backend, "close", close)
    async with AsyncExitStack() as stack:
        api = await serve(stack, app)
        assert calls == ["connect"]
        assert (await api.client.get("/queue/default")).status_code == 200
    assert calls == ["connect", "close"]


class FakeWorker:
    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        self.running.set()
        await self.stopped.wait()

    async def stop(self) -> None:
        self.stopped.set()


async def test_run_workers_starts_and_stops_a_worker(make_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()
    worker = FakeWorker()
    monkeypatch.setattr(app, "worker", lambda: worker)
    async with AsyncExitStack() as stack:
        await serve(stack, app, run_workers=True)
        await asyncio.wait_for(worker.running.wait(), 5)
        assert not worker.stopped.is_set()
    assert worker.stopped.is_set()


async def test_without_run_workers_no_worker_is_made(make_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app()

    def no_worker() -> None:
        raise AssertionError("worker() must not be called")

    monkeypatch.setattr(app, "worker", no_worker)
    async with AsyncExitStack() as stack:
        api = await serve(stack, app)
        assert (await api.client.get("/healthz")).status_code == 200
