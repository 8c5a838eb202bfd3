"""Bearer tokens: API_TOKEN guards /jobs, ADMIN_TOKEN guards /queue and /dlq, ADMIN_READONLY."""

from __future__ import annotations

import logging

import pytest
from api_support import Api, MakeApi, error_code

pytest_plugins = ["api_support"]

API, ADMIN = "api-secret", "admin-secret"

JOB_ROUTES = [("POST", "/jobs"), ("POST", "/jobs/batch"), ("GET", "/jobs/1"), ("DELETE", "/jobs/1")]
ADMIN_READS = [("GET", "/queue"), ("GET", "/queue/default"), ("GET", "/dlq"), ("GET", "/dlq/1")]
ADMIN_WRITES = [
    ("POST", "/queue/q2"),
    ("POST", "/queue/default/pause"),
    ("POST", "/queue/default/resume"),
    ("POST", "/dlq/replay?queue=default"),
    ("DELETE", "/dlq?queue=default"),
    ("POST", "/dlq/1/replay"),
    ("DELETE", "/dlq/1"),
]
ADMIN_ROUTES = ADMIN_READS + ADMIN_WRITES
OPEN_ROUTES = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json")]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(api: Api, method: str, path: str, headers: dict[str, str] | None = None) -> int:
    body = {"jobs": [{"type": "t"}]} if path == "/jobs/batch" else {"type": "t"}
    r = await api.client.request(method, path, headers=headers, json=body if method == "POST" else None)
    if r.status_code == 401:
        assert error_code(r) == "unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"
    return r.status_code


@pytest.mark.parametrize(("method", "path"), JOB_ROUTES + ADMIN_ROUTES + OPEN_ROUTES)
async def test_everything_open_without_tokens(api: Api, method: str, path: str) -> None:
    assert await call(api, method, path) not in (401, 403)


async def test_both_tokens(make_api: MakeApi) -> None:
    api = await make_api(api_token=API, admin_token=ADMIN)
    for method, path in JOB_ROUTES:
        assert await call(api, method, path) == 401
        assert await call(api, method, path, bearer("wrong")) == 401
        # The admin UI reads jobs: the admin token may read (GET), never write, job routes.
        assert (await call(api, method, path, bearer(ADMIN)) == 401) == (method != "GET")
        assert await call(api, method, path, bearer(API)) not in (401, 403)
    for method, path in ADMIN_ROUTES:
        assert await call(api, method, path) == 401
        assert await call(api, method, path, bearer(API)) == 401, "the API token is not enough"
        assert await call(api, method, path, bearer(ADMIN)) not in (401, 403)
    for method, path in OPEN_ROUTES:
        assert await call(api, method, path) == 200


async def test_only_admin_token_leaves_jobs_open(make_api: MakeApi) -> None:
    api = await make_api(admin_token=ADMIN)
    for method, path in JOB_ROUTES:
        assert await call(api, method, path) not in (401, 403)
    for method, path in ADMIN_ROUTES:
        assert await call(api, method, path) == 401
        assert await call(api, method, path, bearer(ADMIN)) not in (401, 403)


async def test_only_api_token_leaves_admin_open(make_api: MakeApi) -> None:
    api = await make_api(api_token=API)
    for method, path in JOB_ROUTES:
        assert await call(api, method, path) == 401
    for method, path in ADMIN_ROUTES:
        assert await call(api, method, path) not in (401, 403)


@pytest.mark.parametrize(
    "header",
    [
        f"bearer {API}",
        f"BEARER {API}",
        f"Bearer  {API}",
    ],
)
async def test_scheme_is_case_insensitive(make_api: MakeApi, header: str) -> None:
    api = await make_api(api_token=API)
    assert await call(api, "GET", "/jobs/1", {"Authorization": header}) == 404


@pytest.mark.parametrize(
    "header",
    [f"Basic {API}", API, "Bearer", "Bearer ", f"Bearer {API}x", f"Bearer {API[:-1]}", f"Token {API}", "Bearer \x7f"],
)
async def test_wrong_credentials(make_api: MakeApi, header: str) -> None:
    api = await make_api(api_token=API)
    assert await call(api, "GET", "/jobs/1", {"Authorization": header}) == 401


async def test_non_ascii_tokens_never_500(make_api: MakeApi) -> None:
    api = await make_api(api_token="tökén-☃")
    ok = await api.client.get("/jobs/1", headers=[(b"Authorization", "Bearer tökén-☃".encode())])
    assert ok.status_code == 404
    latin = await api.client.get("/jobs/1", headers=[(b"Authorization", b"Bearer t\xf6k\xe9n")])
    assert latin.status_code == 401


@pytest.mark.parametrize(("method", "path"), ADMIN_WRITES)
async def test_admin_readonly_refuses_writes(make_api: MakeApi, method: str, path: str) -> None:
    api = await make_api(admin_readonly=True)
    r = await api.client.request(method, path)
    assert r.status_code == 403
    assert error_code(r) == "read_only"


async def test_admin_readonly_allows_reads_and_jobs(make_api: MakeApi) -> None:
    api = await make_api(admin_readonly=True)
    for method, path in ADMIN_READS + JOB_ROUTES:
        assert await call(api, method, path) not in (401, 403)
    assert (await api.app.queue_info("default")).paused is False


async def test_admin_readonly_checks_the_token_first(make_api: MakeApi) -> None:
    api = await make_api(admin_token=ADMIN, admin_readonly=True)
    assert await call(api, "POST", "/queue/x") == 401
    r = await api.client.post("/queue/x", headers=bearer(ADMIN))
    assert r.status_code == 403
    assert error_code(r) == "read_only"


async def test_warns_when_no_token_is_set(make_api: MakeApi, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gotaskq.api"):
        await make_api()
    assert any("API_TOKEN" in rec.getMessage() for rec in caplog.records)


async def test_no_warning_with_a_token(make_api: MakeApi, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gotaskq.api"):
        await make_api(admin_token=ADMIN)
    assert not any("API_TOKEN" in rec.getMessage() for rec in caplog.records)
