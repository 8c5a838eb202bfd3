"""Job search (GET /queue/{name}/jobs and GET /admin/jobs with filters), POST /admin/bulk and
POST /jobs/{id}/run-now, through the real ASGI app on every store."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api, MakeApi, error_code, error_fields

from gotaskq.api import admin_bulk, admin_search
from gotaskq.backends.base import Completion

pytest_plugins = ["api_support"]


async def dead(api: Api, queue: str = "default", type: str = "t", error: str = "boom") -> str:
    """A DEAD job of ``type`` whose last error is ``error`` (claimed and failed, no worker)."""
    job = await api.job(queue, type=type, max_retries=0, priority=10)
    batch = await api.app.backend.claim(queue, 1, 30_000)
    assert batch.jobs[0].job.id == job["id"]
    await api.app.backend.fail(batch.jobs[0].job, batch.jobs[0].token, error, 0)
    return str(job["id"])


async def retrying(api: Api, queue: str = "default", error: str = "flaky") -> str:
    """A SCHEDULED job with attempts 1: failed once, retried in an hour."""
    job = await api.job(queue, max_retries=3, priority=10)
    batch = await api.app.backend.claim(queue, 1, 30_000)
    await api.app.backend.fail(batch.jobs[0].job, batch.jobs[0].token, error, 3_600_000)
    return str(job["id"])


async def ids(api: Api, path: str, **params: Any) -> list[str]:
    r = await api.client.get(path, params=params)
    assert r.status_code == 200, r.text
    return [j["id"] for j in r.json()["jobs"]]


async def all_pages(api: Api, path: str, **params: Any) -> tuple[list[str], int]:
    """Every id over the pages (following next_cursor), and how many requests it took."""
    seen: list[str] = []
    cursor, requests = "", 0
    while cursor is not None:
        r = await api.client.get(path, params={**params, "cursor": cursor})
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [j["id"] for j in body["jobs"]]
        cursor, requests = body["next_cursor"], requests + 1
    assert len(seen) == len(set(seen)), "a job was listed twice"
    return seen, requests


# -- filters -----------------------------------------------------------------------------------
async def test_filters_by_type_error_id_and_retries(api: Api) -> None:
    a1 = await dead(api, type="mail.send", error="TimeoutError: SMTP timed out")
    b1 = await dead(api, type="report", error="KeyError: 'user'")
    a2 = await dead(api, type="mail.send", error="ConnectionError: refused")
    path = "/queue/default/jobs"
    assert await ids(api, path, state="dead", type="mail.send") == [a2, a1]
    assert await ids(api, path, state="dead", error="smtp TIMED") == [a1]  # case does not matter
    assert await ids(api, path, state="dead", type="mail.send", error="keyerror") == []
    assert await ids(api, path, state="dead", id=b1[-12:]) == [b1]
    assert await ids(api, path, state="dead", type="", error="", id="") == [a2, b1, a1]  # empty: no filter
    again = await retrying(api, error="flaky backend")
    delayed = (await api.job(delay=3600))["id"]
    assert set(await ids(api, path, state="scheduled")) == {again, delayed}
    assert await ids(api, path, state="scheduled", retried="true") == [again]
    assert await ids(api, path, state="scheduled", retried="false") == [delayed]
    r = await api.client.get(path, params={"state": "dead", "type": "report"})
    assert r.json()["scanned"] == 3


async def test_filtered_pages_stop_at_the_limit_and_continue(api: Api) -> None:
    jobs = [(await api.job(type="x" if n % 2 else "y"))["id"] for n in range(11)]
    xs = [j for n, j in enumerate(jobs) if n % 2][::-1]
    seen, requests = await all_pages(api, "/queue/default/jobs", type="x", limit=2)
    assert seen == xs and requests == 3  # 2 + 2 + 1: each page ends right after its last match


async def test_a_search_examines_a_bounded_number_of_jobs(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_search, "SCAN_BUDGET", 4)
    jobs = [(await api.job(type="rare" if n in (1, 9) else "common"))["id"] for n in range(12)]
    r = await api.client.get("/queue/default/jobs", params={"type": "rare", "limit": 50})
    body = r.json()
    assert body["scanned"] == 4 and body["next_cursor"] is not None
    seen, requests = await all_pages(api, "/queue/default/jobs", type="rare", limit=50)
    assert seen == [jobs[9], jobs[1]] and requests == 3


async def test_search_across_queues(api: Api) -> None:
    for name in ("b", "a", "c"):
        assert (await api.client.post(f"/queue/{name}")).status_code == 201
    expected = {q: [await dead(api, q, error=f"err in {q}") for _ in range(2)][::-1] for q in ("a", "b", "c")}
    everything, _ = await all_pages(api, "/admin/jobs", limit=3)
    assert everything == expected["a"] + expected["b"] + expected["c"]  # queues by name, newest first
    assert (await ids(api, "/admin/jobs", error="IN B")) == expected["b"]
    assert (await ids(api, "/admin/jobs", queue="c", state="dead")) == expected["c"]
    pending = (await api.job("b"))["id"]
    assert (await ids(api, "/admin/jobs", state="pending")) == [pending]


async def test_done_jobs_are_listed(api: Api) -> None:
    job = await api.job()
    batch = await api.app.backend.claim("default", 1, 30_000)
    await api.app.backend.complete("default", [Completion(job["id"], batch.jobs[0].token, b'{"ok": 1}')])
    r = await api.client.get("/queue/default/jobs", params={"state": "done"})
    assert r.status_code == 200
    assert [(j["id"], j["status"], j["result"]) for j in r.json()["jobs"]] == [(job["id"], "DONE", {"ok": 1})]


async def test_stats_cover_a_day(api: Api) -> None:
    r = await api.client.get("/queue/default/stats", params={"minutes": "1440"})
    assert r.status_code == 200
    rows = r.json()["minutes"]
    assert len(rows) <= 1440 and [m["minute"] for m in rows] == sorted(m["minute"] for m in rows)


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/queue/default/jobs", {"type": "no spaces"}, "type"),
        ("/queue/default/jobs", {"type": "x" * 129}, "type"),
        ("/queue/default/jobs", {"id": "12a"}, "id"),
        ("/queue/default/jobs", {"id": "1" * 21}, "id"),
        ("/queue/default/jobs", {"error": "e" * 201}, "error"),
        ("/queue/default/jobs", {"retried": "maybe"}, "retried"),
        ("/admin/jobs", {"state": "bogus"}, "state"),
        ("/admin/jobs", {"queue": "bad name"}, "queue"),
        ("/admin/jobs", {"cursor": "nope"}, "cursor"),
        ("/admin/jobs", {"limit": "0"}, "limit"),
    ],
)
async def test_bad_filters_are_422(api: Api, path: str, query: dict[str, str], field: str) -> None:
    r = await api.client.get(path, params=query)
    assert r.status_code == 422, r.text
    assert error_code(r) == "validation_error"
    assert field in error_fields(r)


async def test_search_of_an_unknown_queue_is_404(api: Api) -> None:
    for path, params in [("/admin/jobs", {"queue": "nope"}), ("/queue/nope/jobs", {"type": "x"})]:
        r = await api.client.get(path, params=params)
        assert r.status_code == 404 and error_code(r) == "queue_not_found"


# -- bulk actions ------------------------------------------------------------------------------
async def bulk(api: Api, body: object) -> dict[str, Any]:
    r = await api.client.post("/admin/bulk", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_bulk_by_ids_reports_each_failure(api: Api) -> None:
    d1, d2 = await dead(api), await dead(api)
    pending = (await api.job())["id"]
    missing = "123456789"
    out = await bulk(api, {"action": "replay", "ids": [d1, pending, d2, missing, d1]})
    assert out["matched"] == 4 and out["done"] == 2 and out["more"] is False
    assert [(f["id"], f["error"]) for f in out["failed"]] == [(pending, "invalid_state"), (missing, "job_not_found")]
    assert {(await api.client.get(f"/jobs/{i}")).json()["status"] for i in (d1, d2)} == {"PENDING"}


async def test_bulk_by_filter(api: Api) -> None:
    keep = await dead(api, error="ValueError: keep me")
    gone = [await dead(api, error="TimeoutError: slow") for _ in range(3)]
    out = await bulk(api, {"action": "delete", "filter": {"state": "dead", "queue": "default", "error": "timeout"}})
    assert (out["matched"], out["done"], out["failed"]) == (3, 3, [])
    assert await ids(api, "/queue/default/jobs", state="dead") == [keep]
    assert [(await api.client.get(f"/dlq/{i}")).status_code for i in gone] == [404] * 3

    delayed = [(await api.job(type="later", delay=3600))["id"] for _ in range(2)]
    other = (await api.job(type="other", delay=3600))["id"]
    out = await bulk(api, {"action": "cancel", "filter": {"state": "scheduled", "type": "later"}})  # every queue
    assert (out["matched"], out["done"]) == (2, 2)
    assert {(await api.client.get(f"/jobs/{i}")).json()["status"] for i in delayed} == {"CANCELLED"}
    assert (await api.client.get(f"/jobs/{other}")).json()["status"] == "SCHEDULED"


async def test_bulk_run_now_of_the_retries(api: Api) -> None:
    again = [await retrying(api) for _ in range(2)]
    delayed = (await api.job(delay=3600))["id"]
    out = await bulk(api, {"action": "run_now", "filter": {"state": "scheduled", "retried": True}})
    assert (out["matched"], out["done"]) == (2, 2)
    assert {(await api.client.get(f"/jobs/{i}")).json()["status"] for i in again} == {"PENDING"}
    assert (await api.client.get(f"/jobs/{delayed}")).json()["status"] == "SCHEDULED"


async def test_bulk_is_bounded(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_bulk, "MAX_BULK", 3)
    for _ in range(5):
        await api.job(delay=3600)
    out = await bulk(api, {"action": "cancel", "filter": {"state": "scheduled", "queue": "default"}})
    assert (out["matched"], out["done"], out["more"]) == (3, 3, True)
    out = await bulk(api, {"action": "cancel", "filter": {"state": "scheduled", "queue": "default"}})
    assert (out["matched"], out["more"]) == (2, False)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ([], {"body"}),
        ({"ids": ["1"]}, {"action"}),
        ({"action": "explode", "ids": ["1"]}, {"action"}),
        ({"action": "replay"}, {"ids", "filter"}),
        ({"action": "replay", "ids": ["1"], "filter": {"state": "dead"}}, {"ids", "filter"}),
        ({"action": "replay", "ids": []}, {"ids"}),
        ({"action": "replay", "ids": ["1x"]}, {"ids"}),
        ({"action": "replay", "ids": [1]}, {"ids"}),
        ({"action": "replay", "ids": ["1"] * 1001}, {"ids"}),
        ({"action": "replay", "filter": {}}, {"filter.state"}),
        ({"action": "replay", "filter": {"state": "DEAD"}}, {"filter.state"}),
        ({"action": "replay", "filter": {"state": "dead", "queue": "a b"}}, {"filter.queue"}),
        ({"action": "replay", "filter": {"state": "dead", "type": "a b", "id": "x"}}, {"filter.type", "filter.id"}),
        ({"action": "replay", "filter": {"state": "dead", "retried": "yes"}}, {"filter.retried"}),
        ({"action": "replay", "filter": {"state": "dead", "extra": 1}}, {"filter.extra"}),
        ({"action": "replay", "filter": "dead"}, {"filter"}),
        ({"action": "replay", "ids": ["1"], "dry_run": True}, {"dry_run"}),
    ],
)
async def test_bad_bulk_bodies_are_422(api: Api, body: object, fields: set[str]) -> None:
    r = await api.client.post("/admin/bulk", json=body)
    assert r.status_code == 422, r.text
    assert error_code(r) == "validation_error"
    assert set(error_fields(r)) == fields


async def test_bulk_malformed_json_is_400_and_unknown_queue_404(api: Api) -> None:
    r = await api.client.post("/admin/bulk", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and error_code(r) == "invalid_json"
    r = await api.client.post("/admin/bulk", json={"action": "replay", "filter": {"state": "dead", "queue": "nope"}})
    assert r.status_code == 404 and error_code(r) == "queue_not_found"


# -- run now -----------------------------------------------------------------------------------
async def test_run_now(api: Api) -> None:
    later = (await api.job(delay=3600))["id"]
    r = await api.client.post(f"/jobs/{later}/run-now")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "PENDING"
    assert await ids(api, "/queue/default/jobs", state="pending") == [later]
    r = await api.client.post(f"/jobs/{later}/run-now")  # PENDING already
    assert r.status_code == 409 and error_code(r) == "invalid_state"
    for missing in ("123456789", "not-an-id"):
        r = await api.client.post(f"/jobs/{missing}/run-now")
        assert r.status_code == 404, missing
    assert (await api.client.get(f"/jobs/{later}/run-now")).status_code == 405


# -- tokens and read-only ------------------------------------------------------------------------
async def test_writes_need_the_admin_token_and_are_refused_when_read_only(make_api: MakeApi) -> None:
    guarded = await make_api(admin_token="adm", api_token="jobs")
    later = (
        await guarded.client.post("/jobs", json={"type": "t", "delay": 60}, headers={"Authorization": "Bearer jobs"})
    ).json()
    for headers in ({}, {"Authorization": "Bearer jobs"}):
        r = await guarded.client.post(f"/jobs/{later['id']}/run-now", headers=headers)
        assert r.status_code == 401
        r = await guarded.client.post("/admin/bulk", json={"action": "cancel", "ids": [later["id"]]}, headers=headers)
        assert r.status_code == 401
    r = await guarded.client.post(f"/jobs/{later['id']}/run-now", headers={"Authorization": "Bearer adm"})
    assert r.status_code == 200

    readonly = await make_api(admin_readonly=True)
    job = await readonly.job(delay=60)
    assert (await readonly.client.post(f"/jobs/{job['id']}/run-now")).status_code == 403
    r = await readonly.client.post("/admin/bulk", json={"action": "cancel", "ids": [job["id"]]})
    assert r.status_code == 403 and error_code(r) == "read_only"
    assert (await readonly.client.get("/admin/jobs", params={"state": "scheduled"})).status_code == 200
