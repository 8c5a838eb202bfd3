"""The /queue routes: create, list, inspect, pause, resume, and hostile queue names."""

from __future__ import annotations

import pytest
from api_support import Api, error_code, error_fields

pytest_plugins = ["api_support"]

NO_LIMITS = {"concurrency": None, "rate_limit": None, "external": False}
EMPTY = {"paused": False, "pending": 0, "scheduled": 0, "running": 0, "dead": 0, **NO_LIMITS}


async def test_create_queue_then_again(api: Api) -> None:
    r = await api.client.post("/queue/emails")
    assert r.status_code == 201
    assert r.json() == {"name": "emails", **EMPTY}
    again = await api.client.post("/queue/emails")
    assert again.status_code == 200
    assert again.json() == {"name": "emails", **EMPTY}


async def test_get_queue_counts(api: Api) -> None:
    await api.job()
    await api.job(delay=60)
    await api.job()
    await api.app.backend.claim("default", 1, 30_000)
    await api.dead_job()
    r = await api.client.get("/queue/default")
    assert r.status_code == 200
    assert r.json() == {
        "name": "default",
        "paused": False,
        "pending": 1,
        "scheduled": 1,
        "running": 1,
        "dead": 1,
        **NO_LIMITS,
    }


async def test_get_unknown_queue_is_404(api: Api) -> None:
    r = await api.client.get("/queue/nope")
    assert r.status_code == 404
    assert error_code(r) == "queue_not_found"


async def test_list_queues(api: Api) -> None:
    await api.client.post("/queue/b-queue")
    await api.client.post("/queue/a.queue")
    r = await api.client.get("/queue")
    assert r.status_code == 200
    queues = r.json()["queues"]
    assert [q["name"] for q in queues] == ["a.queue", "b-queue", "default"]
    assert queues[0] == {"name": "a.queue", **EMPTY}


async def test_pause_and_resume(api: Api) -> None:
    await api.job()
    r = await api.client.post("/queue/default/pause")
    assert r.status_code == 200
    assert r.json()["paused"] is True
    assert r.json()["pending"] == 1
    assert (await api.app.backend.claim("default", 1, 30_000)).jobs == []
    r = await api.client.post("/queue/default/resume")
    assert r.status_code == 200
    assert r.json()["paused"] is False
    assert (await api.client.get("/queue/default")).json()["paused"] is False


@pytest.mark.parametrize("action", ["pause", "resume"])
async def test_pause_unknown_queue_is_404(api: Api, action: str) -> None:
    r = await api.client.post(f"/queue/nope/{action}")
    assert r.status_code == 404
    assert error_code(r) == "queue_not_found"


BAD_NAMES = [
    "a:b",
    "a{b}",
    "%7Bq%7D",
    "a*",
    "a%2A",
    "a%3Fb",
    "a[b",
    "a%5Bb",
    "a%0Ab",
    "abc%0A",
    "%0A",
    "a%00b",
    "%00",
    "x" * 65,
    "%FF",
    "%E2%98%83",
    "a%20b",
    "a%09",
    "%25",
    "a%2Fb",
    "..",
]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_hostile_queue_names_are_refused(api: Api, name: str) -> None:
    for method, path in [
        ("POST", f"/queue/{name}"),
        ("GET", f"/queue/{name}"),
        ("POST", f"/queue/{name}/pause"),
        ("POST", f"/queue/{name}/resume"),
    ]:
        r = await api.client.request(method, path)
        # the client resolves "/queue/.." to "/": the redirect to /admin (GET), 405 otherwise
        allowed = (307, 404, 405, 422) if name == ".." else (404, 422)
        assert r.status_code in allowed, (method, path, r.text)
        if r.status_code == 422:
            assert error_code(r) == "validation_error"
            assert error_fields(r) == {"queue": "invalid queue name"}
    assert [q.name for q in await api.app.list_queues()] == ["default"]


async def test_longest_valid_name(api: Api) -> None:
    r = await api.client.post("/queue/" + "x" * 64)
    assert r.status_code == 201
