"""POST /jobs is served before Starlette's stack (jobs.serve_create_job) unless the app is
mounted under a root_path, where the Starlette route serves it. Both must answer alike:
every case here goes to both, and the answers are compared field by field."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from api_support import MakeApp

from gotaskq.api import create_app, jobs
from gotaskq.api.errors import CatchAll
from gotaskq.errors import BackendUnavailable

pytest_plugins = ["api_support"]

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 1024
VOLATILE = {"id", "created_at", "updated_at", "run_at"}  # differ between two runs
SHOWN_HEADERS = ("content-type", "idempotent-replayed", "www-authenticate", "retry-after")

Request = dict[str, Any]  # keyword arguments of httpx.AsyncClient.post("/jobs", ...)
# name → the requests to send in order; the last answer is compared
CASES: dict[str, list[Request]] = {
    "created": [{"json": {"type": "t", "payload": {"n": 1, "s": "é"}, "priority": 3}, "headers": AUTH}],
    "scheduled": [{"json": {"type": "t", "delay": 60}, "headers": AUTH}],
    "idempotent replay": [{"json": {"type": "t", "idempotency_key": "k"}, "headers": AUTH}] * 2,
    "idempotency conflict": [
        {"json": {"type": "t", "idempotency_key": "k"}, "headers": AUTH},
        {"json": {"type": "u", "idempotency_key": "k"}, "headers": AUTH},
    ],
    "no token": [{"json": {"type": "t"}}],
    "wrong token": [{"json": {"type": "t"}, "headers": {"Authorization": "Bearer nope"}}],
    "wrong scheme": [{"json": {"type": "t"}, "headers": {"Authorization": f"Basic {TOKEN}"}}],
    "invalid fields": [{"json": {"type": "t", "priority": 99, "extra": 1, "timeout": 0}, "headers": AUTH}],
    "type missing": [{"json": {"payload": 1}, "headers": AUTH}],
    "not an object": [{"json": [1, 2], "headers": AUTH}],
    "malformed": [{"content": b'{"type": ', "headers": AUTH}],
    "empty body": [{"content": b"", "headers": AUTH}],
    "NaN": [{"content": b'{"type": "t", "payload": NaN}', "headers": AUTH}],
    "huge number": [{"content": b'{"type": "t", "priority": 1' + b"0" * 500 + b"}", "headers": AUTH}],
    "too large": [{"content": b'{"type": "t", "payload": "' + b"x" * LIMIT + b'"}', "headers": AUTH}],
    "lying length": [
        {"content": b'{"type": "t", "payload": "' + b"x" * LIMIT + b'"}', "headers": {**AUTH, "Content-Length": "9"}}
    ],
    "declared too large": [{"content": b"{}", "headers": {**AUTH, "Content-Length": "99999999999999999999"}}],
    "unknown queue": [{"json": {"type": "t", "queue": "nope"}, "headers": AUTH}],
    "queue full": [{"json": {"type": "t"}, "headers": AUTH}] * 3,
}


def shown(r: httpx.Response) -> dict[str, Any]:
    """What a client sees, less what differs between two runs (ids, times)."""
    body = r.json()
    if "error" in body:
        body["error"]["message"] = re.sub(r"[0-9]{6,}", "<id>", body["error"]["message"])
    else:
        body = {k: v for k, v in body.items() if k not in VOLATILE}
    return {"status": r.status_code, "headers": {h: r.headers.get(h) for h in SHOWN_HEADERS}, "body": body}


Post = Callable[[Request], Awaitable[httpx.Response]]


@pytest.fixture
async def clients(make_app: MakeApp, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[[str], Post]]:
    """``clients(mount)`` → a POST /jobs function on a fresh app, ``"fast"`` at the root or
    ``"routed"`` under root_path /api; each asserts which path served it."""
    served_fast = 0
    serve = jobs.serve_create_job

    async def counting(*args: Any) -> None:
        nonlocal served_fast
        served_fast += 1
        await serve(*args)

    monkeypatch.setattr(jobs, "serve_create_job", counting)
    async with AsyncExitStack() as stack:

        def make(mount: str) -> Post:
            app = make_app(api_token=TOKEN, max_body_bytes=LIMIT, max_queue_depth=2, auto_create_queues=False)
            web = create_app(app)
            root = "" if mount == "fast" else "/api"
            transport = httpx.ASGITransport(app=web, root_path=root)
            client = httpx.AsyncClient(transport=transport, base_url=f"http://test{root}")
            started = False

            async def post(request: Request) -> httpx.Response:
                nonlocal started
                if not started:
                    await stack.enter_async_context(web.router.lifespan_context(web))
                    await stack.enter_async_context(client)
                    started = True
                before = served_fast
                r = await client.post("/jobs", **request)
                assert (served_fast > before) == (mount == "fast"), f"{mount} request took the other path"
                return r

            return post

        yield make


@pytest.mark.parametrize("case", list(CASES))
async def test_both_paths_answer_alike(clients: Callable[[str], Post], case: str) -> None:
    answers = {}
    for mount in ("fast", "routed"):
        post = clients(mount)
        for request in CASES[case]:
            r = await post(request)
        answers[mount] = shown(r)
    assert answers["fast"] == answers["routed"]
    assert answers["fast"]["status"] < 500, answers["fast"]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [(BackendUnavailable("down"), 503, "backend_unavailable"), (RuntimeError("bug"), 500, "internal")],
)
async def test_both_paths_map_backend_errors_alike(
    clients: Callable[[str], Post], monkeypatch: pytest.MonkeyPatch, error: Exception, status: int, code: str
) -> None:
    answers = {}
    for mount in ("fast", "routed"):
        post = clients(mount)
        await post({"json": {"type": "t"}, "headers": AUTH})  # starts the app; the default queue exists

        async def broken(*args: Any) -> Any:
            raise error

        from gotaskq.app import App

        monkeypatch.setattr(App, "submit", broken)
        r = await post({"json": {"type": "t"}, "headers": AUTH})
        monkeypatch.undo()
        answers[mount] = shown(r)
    assert answers["fast"] == answers["routed"]
    assert answers["fast"]["status"] == status
    assert answers["fast"]["body"]["error"]["code"] == code


def test_the_fast_path_skips_no_middleware_but_catch_all(make_app: MakeApp) -> None:
    """POST /jobs bypasses Starlette's middleware: a middleware added to create_app must be
    applied to jobs.serve_create_job as well, and then this list updated."""
    web = create_app(make_app())
    assert [m.cls for m in web.user_middleware] == [CatchAll]
