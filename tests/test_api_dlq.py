"""The /dlq routes: list, inspect, replay (one, all, concurrently) and delete dead jobs."""

from __future__ import annotations

import asyncio

import pytest
from api_support import Api, error_code, error_fields

pytest_plugins = ["api_support"]


async def test_list_dead_jobs(api: Api) -> None:
    first = await api.dead_job()
    second = await api.dead_job()
    await api.job()
    r = await api.client.get("/dlq")
    assert r.status_code == 200
    body = r.json()
    assert [j["id"] for j in body["jobs"]] == [second, first]
    assert all(j["status"] == "DEAD" and j["last_error"] == "boom" for j in body["jobs"])
    assert body["next_cursor"] is None
    assert (await api.client.get("/dlq?queue=default&limit=&cursor=")).json() == body


async def test_list_dead_is_paged(api: Api) -> None:
    ids = [await api.dead_job() for _ in range(3)]
    seen: list[str] = []
    cursor = ""
    for _ in range(3):
        page = (await api.client.get("/dlq", params={"queue": "default", "limit": 1, "cursor": cursor})).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert cursor is None


async def test_list_dead_of_every_queue(api: Api) -> None:
    await api.client.post("/queue/other")
    a = await api.dead_job("default")
    b = await api.dead_job("other")
    r = await api.client.get("/dlq")
    assert {j["id"] for j in r.json()["jobs"]} == {a, b}
    only = await api.client.get("/dlq", params={"queue": "other"})
    assert [j["id"] for j in only.json()["jobs"]] == [b]


@pytest.mark.parametrize("limit", ["5000", "1000", "99999999999999999999999"])
async def test_large_limit_is_capped(api: Api, limit: str) -> None:
    await api.dead_job()
    r = await api.client.get("/dlq", params={"limit": limit})
    assert r.status_code == 200
    assert len(r.json()["jobs"]) == 1


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "1e3", " 5", "+5", "000"])
async def test_bad_limit_is_422(api: Api, limit: str) -> None:
    r = await api.client.get("/dlq", params={"limit": limit})
    assert r.status_code == 422
    assert error_code(r) == "validation_error"
    assert set(error_fields(r)) == {"limit"}


@pytest.mark.parametrize("cursor", ["garbage", "default:x:y", "::", "a b:1:2"])
async def test_bad_cursor_is_422(api: Api, cursor: str) -> None:
    r = await api.client.get("/dlq", params={"cursor": cursor, "queue": "default"})
    assert r.status_code == 422
    assert "cursor" in error_fields(r)
    r = await api.client.get("/dlq", params={"cursor": cursor})
    assert r.status_code == 422


@pytest.mark.parametrize("queue", ["a b", "a\nb", "x\x00", "{q}", "default\n"])
async def test_bad_queue_param_is_422(api: Api, queue: str) -> None:
    for method, path in [("GET", "/dlq"), ("POST", "/dlq/replay"), ("DELETE", "/dlq")]:
        r = await api.client.request(method, path, params={"queue": queue})
        assert r.status_code == 422, (method, path)
        assert error_fields(r) == {"queue": "invalid queue name"}


async def test_unknown_queue_param_is_404(api: Api) -> None:
    for method, path in [("GET", "/dlq"), ("POST", "/dlq/replay"), ("DELETE", "/dlq")]:
        r = await api.client.request(method, path, params={"queue": "nope"})
        assert r.status_code == 404, (method, path)
        assert error_code(r) == "queue_not_found"


async def test_get_dead_job(api: Api) -> None:
    dead = await api.dead_job()
    r = await api.client.get(f"/dlq/{dead}")
    assert r.status_code == 200
    assert r.json()["id"] == dead
    assert r.json()["status"] == "DEAD"


@pytest.mark.parametrize("job_id", ["1", "x", "%0A", "1%0A"])  # "replay": 405 (test_api_misc)
async def test_get_unknown_dead_job_is_404(api: Api, job_id: str) -> None:
    r = await api.client.get(f"/dlq/{job_id}")
    assert r.status_code == 404
    assert error_code(r) == "job_not_found"


async def test_get_live_job_from_dlq_is_404(api: Api) -> None:
    job = await api.job()
    r = await api.client.get(f"/dlq/{job['id']}")
    assert r.status_code == 404
    assert error_code(r) == "job_not_found"


async def test_replay_one(api: Api) -> None:
    dead = await api.dead_job()
    r = await api.client.post(f"/dlq/{dead}/replay")
    assert r.status_code == 200
    assert r.json()["status"] == "PENDING"
    assert r.json()["attempts"] == 0
    info = await api.app.queue_info("default")
    assert (info.pending, info.dead) == (1, 0)
    again = await api.client.post(f"/dlq/{dead}/replay")
    assert again.status_code == 409
    assert error_code(again) == "invalid_state"
    assert "PENDING" in again.json()["error"]["message"]


@pytest.mark.parametrize("job_id", ["1", "abc", "%00"])
async def test_replay_unknown_is_404(api: Api, job_id: str) -> None:
    r = await api.client.post(f"/dlq/{job_id}/replay")
    assert r.status_code == 404
    assert error_code(r) == "job_not_found"


async def test_replay_live_job_is_409(api: Api) -> None:
    job = await api.job()
    r = await api.client.post(f"/dlq/{job['id']}/replay")
    assert r.status_code == 409
    assert error_code(r) == "invalid_state"


async def test_concurrent_replays_requeue_once(api: Api) -> None:
    dead = await api.dead_job()
    results = await asyncio.gather(*(api.client.post(f"/dlq/{dead}/replay") for _ in range(5)))
    assert sorted(r.status_code for r in results) == [200, 409, 409, 409, 409]
    info = await api.app.queue_info("default")
    assert (info.pending, info.dead) == (1, 0)


async def test_delete_dead(api: Api) -> None:
    dead = await api.dead_job()
    r = await api.client.delete(f"/dlq/{dead}")
    assert r.status_code == 204
    assert r.content == b""
    assert (await api.client.get(f"/jobs/{dead}")).status_code == 404
    gone = await api.client.delete(f"/dlq/{dead}")
    assert gone.status_code == 404
    assert error_code(gone) == "job_not_found"


async def test_delete_live_job_from_dlq_is_409(api: Api) -> None:
    job = await api.job()
    r = await api.client.delete(f"/dlq/{job['id']}")
    assert r.status_code == 409
    assert error_code(r) == "invalid_state"
    assert (await api.client.get(f"/jobs/{job['id']}")).status_code == 200


async def test_replay_all(api: Api) -> None:
    await api.client.post("/queue/other")
    for _ in range(3):
        await api.dead_job()
    await api.dead_job("other")
    r = await api.client.post("/dlq/replay", params={"queue": "default"})
    assert r.status_code == 200
    assert r.json() == {"replayed": 3}
    assert (await api.app.queue_info("default")).pending == 3
    assert (await api.app.queue_info("other")).dead == 1
    assert (await api.client.post("/dlq/replay?queue=default")).json() == {"replayed": 0}


async def test_purge(api: Api) -> None:
    await api.dead_job()
    await api.dead_job()
    live = await api.job()
    r = await api.client.delete("/dlq", params={"queue": "default"})
    assert r.status_code == 200
    assert r.json() == {"deleted": 2}
    assert (await api.client.get("/dlq")).json() == {"jobs": [], "next_cursor": None}
    assert (await api.client.get(f"/jobs/{live['id']}")).status_code == 200


@pytest.mark.parametrize("query", ["", "?queue=", "?other=default"])
async def test_bulk_routes_need_a_queue(api: Api, query: str) -> None:
    for method, path in [("POST", "/dlq/replay"), ("DELETE", "/dlq")]:
        r = await api.client.request(method, path + query)
        assert r.status_code == 422
        assert error_fields(r) == {"queue": "is required"}
