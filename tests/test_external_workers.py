"""Workers in any language: claim, heartbeat, complete and fail over HTTP, fenced by the lease,
on every store through the real ASGI app."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from api_support import Api, error_code, error_fields

pytest_plugins = ["api_support"]


async def external_queue(api: Api, name: str = "ext") -> None:
    r = await api.client.post(f"/queue/{name}", json={"external": True})
    assert r.status_code == 201 and r.json()["external"] is True


async def test_claim_needs_an_external_queue(api: Api) -> None:
    r = await api.client.post("/queue/default/claim", json={})
    assert r.status_code == 409 and error_code(r) == "queue_not_external"
    assert error_code(await api.client.post("/queue/nope/claim")) == "queue_not_found"
    await external_queue(api)
    await api.job("ext")
    inproc = await api.app.backend.claim("ext", 10, 30_000)
    assert inproc.jobs == [], "in-process workers never claim from an external queue"


async def test_claim_heartbeat_complete(api: Api) -> None:
    await external_queue(api)
    ids = [(await api.job("ext", payload={"i": i}))["id"] for i in range(2)]
    r = await api.client.post("/queue/ext/claim", json={"max": 5, "lease": 10, "worker": "w-1"})
    assert r.status_code == 200, r.text
    jobs = r.json()["jobs"]
    assert sorted(j["id"] for j in jobs) == sorted(ids)
    job = jobs[0]
    assert job["status"] == "RUNNING" and job["attempts"] == 1 and job["lease_token"] and job["lease_expires_at"]
    hb = await api.client.post(f"/jobs/{job['id']}/heartbeat", json={"lease_token": job["lease_token"], "lease": 20})
    assert hb.status_code == 200 and hb.json()["lease_expires_at"] > job["lease_expires_at"]
    wrong = await api.client.post(f"/jobs/{job['id']}/heartbeat", json={"lease_token": "999999"})
    assert wrong.status_code == 409 and error_code(wrong) == "lease_lost"
    done = await api.client.post(f"/jobs/{job['id']}/complete", json={"lease_token": job["lease_token"], "result": [1]})
    assert done.status_code == 200 and done.json()["status"] == "DONE" and done.json()["result"] == [1]
    again = await api.client.post(f"/jobs/{job['id']}/complete", json={"lease_token": job["lease_token"]})
    assert again.status_code == 409 and error_code(again) == "lease_lost"
    assert (await api.client.get(f"/jobs/{job['id']}")).json()["result"] == [1], "nothing changed"
    assert error_code(await api.client.post("/jobs/123456789/complete", json={"lease_token": "1"})) == "job_not_found"


async def test_fail_retries_then_dead_and_no_retry_goes_straight_to_the_dlq(api: Api) -> None:
    await external_queue(api)
    retried = await api.job("ext", max_retries=3)
    (job,) = (await api.client.post("/queue/ext/claim")).json()["jobs"]
    body = {"lease_token": job["lease_token"], "error": "Boom: no", "traceback": "at line 3"}
    r = await api.client.post(f"/jobs/{retried['id']}/fail", json=body)
    assert r.status_code == 200 and r.json()["status"] == "SCHEDULED"
    assert r.json()["errors"][-1]["error"] == "Boom: no" and r.json()["errors"][-1]["traceback"] == "at line 3"
    for _ in range(100):  # the backoff is short in tests: claim it again
        claimed = (await api.client.post("/queue/ext/claim")).json()["jobs"]
        if claimed:
            break
        await asyncio.sleep(0.05)
    (job,) = claimed
    r = await api.client.post(
        f"/jobs/{job['id']}/fail", json={"lease_token": job["lease_token"], "error": "x", "retry": False}
    )
    assert r.status_code == 200 and r.json()["status"] == "DEAD" and r.json()["attempts"] == 2
    dlq = (await api.client.get("/dlq", params={"queue": "ext"})).json()["jobs"]
    assert [j["id"] for j in dlq] == [retried["id"]]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/queue/ext/claim", {"max": 0}, "max"),
        ("/queue/ext/claim", {"max": 101}, "max"),
        ("/queue/ext/claim", {"lease": 0}, "lease"),
        ("/queue/ext/claim", {"wait": 31}, "wait"),
        ("/queue/ext/claim", {"later": 1}, "later"),
        ("/jobs/1/heartbeat", {}, "lease_token"),
        ("/jobs/1/complete", {"lease_token": 5}, "lease_token"),
        ("/jobs/1/fail", {"lease_token": "1"}, "error"),
        ("/jobs/1/fail", {"lease_token": "1", "error": "e", "retry": "no"}, "retry"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field(api: Api, path: str, body: dict[str, Any], field: str) -> None:
    await external_queue(api)
    r = await api.client.post(path, json=body)
    assert r.status_code == 422, r.text
    assert field in error_fields(r)


async def test_a_long_poll_answers_as_soon_as_a_job_is_enqueued(api: Api) -> None:
    await external_queue(api)
    t0 = time.monotonic()
    waiting = asyncio.create_task(api.client.post("/queue/ext/claim", json={"wait": 5}))
    await asyncio.sleep(0.2)
    job = await api.job("ext")
    r = await asyncio.wait_for(waiting, 5)
    elapsed = time.monotonic() - t0
    assert [j["id"] for j in r.json()["jobs"]] == [job["id"]]
    assert elapsed < 1.5, f"answered {elapsed:.2f} s after the start (0.2 s after the enqueue is the goal)"
    empty = await api.client.post("/queue/ext/claim", json={"wait": 0.3})
    assert empty.json() == {"jobs": []}


async def test_an_expired_lease_is_recovered_and_the_late_complete_is_refused(api: Api) -> None:
    await external_queue(api)
    job = await api.job("ext", max_retries=2)
    (first,) = (await api.client.post("/queue/ext/claim", json={"lease": 0.1})).json()["jobs"]
    await asyncio.sleep(0.2)
    rec = await api.app.backend.recover_expired("ext")
    assert rec.requeued == [job["id"]]
    (second,) = (await api.client.post("/queue/ext/claim", json={"lease": 10})).json()["jobs"]
    assert second["attempts"] == 2 and second["lease_token"] != first["lease_token"]
    late = await api.client.post(f"/jobs/{job['id']}/complete", json={"lease_token": first["lease_token"]})
    assert late.status_code == 409 and error_code(late) == "lease_lost"
    ok = await api.client.post(f"/jobs/{job['id']}/complete", json={"lease_token": second["lease_token"]})
    assert ok.status_code == 200 and ok.json()["status"] == "DONE"


async def test_worker_token_guards_the_worker_routes(make_api: Any) -> None:
    api: Api = await make_api(api_token="api-secret", admin_token="admin-secret", worker_token="worker-secret")
    admin = {"Authorization": "Bearer admin-secret"}
    await api.client.post("/queue/ext", json={"external": True}, headers=admin)
    assert (await api.client.post("/queue/ext/claim")).status_code == 401
    assert (
        await api.client.post("/queue/ext/claim", headers={"Authorization": "Bearer api-secret"})
    ).status_code == 401
    ok = await api.client.post("/queue/ext/claim", headers={"Authorization": "Bearer worker-secret"})
    assert ok.status_code == 200
    only_api: Api = await make_api(api_token="api-secret")
    await only_api.client.post("/queue/ext", json={"external": True})
    assert (await only_api.client.post("/queue/ext/claim")).status_code == 401
    r = await only_api.client.post("/queue/ext/claim", headers={"Authorization": "Bearer api-secret"})
    assert r.status_code == 200, "without WORKER_TOKEN the worker routes follow API_TOKEN"


async def test_an_applied_completion_answers_200_even_if_the_reread_fails(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by chaos --external: a connection that died in a Redis restart failed the re-read
    after the completion was applied; the 503 made the worker's retry a confusing 409."""
    from gotaskq.errors import BackendUnavailable

    await external_queue(api)
    job = await api.job("ext")
    (claimed,) = (await api.client.post("/queue/ext/claim")).json()["jobs"]
    backend = api.app.backend
    real_get = backend.get_job
    calls = 0

    async def flaky_get(job_id: str) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:  # the first read (the job before completing) works, the re-read does not
            raise BackendUnavailable("redis unreachable: Connection closed by server")
        return await real_get(job_id)

    monkeypatch.setattr(backend, "get_job", flaky_get)
    r = await api.client.post(f"/jobs/{job['id']}/complete", json={"lease_token": claimed["lease_token"], "result": 7})
    assert r.status_code == 200 and (r.json()["status"], r.json()["result"]) == ("DONE", 7)
