"""The admin UI routes: page, assets and config with their security headers, and the two JSON reads."""

from __future__ import annotations

import re
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Api, MakeApp, error_code, error_fields

from gotaskq.api import create_app
from gotaskq.api.admin import ASSETS, admin_routes

pytest_plugins = ["api_support"]

ADMIN, API = "admin-secret", "api-secret"
UI_PATHS = ["/admin", "/admin/", "/admin/config.json", *(f"/admin/static/{name}" for name in ASSETS)]
JSON_READS = ["/queue/default/jobs", "/queue/default/stats", "/admin/jobs"]
STATIC_DIR = resources.files("gotaskq").joinpath("admin_static")
HTML_SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc")

MakeAdmin = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_admin(make_app: MakeApp) -> AsyncIterator[MakeAdmin]:
    """``await make_admin(**settings)``: the API with the admin routes mounted, started."""
    async with AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Api:
            app = make_app(**overrides)
            web = create_app(app)
            if not any(getattr(r, "path", None) == "/admin" for r in web.router.routes):
                web.router.routes.extend(admin_routes())  # until create_app mounts them itself
            await stack.enter_async_context(web.router.lifespan_context(web))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://test")
            await stack.enter_async_context(client)
            return Api(app, web, client)

        yield make


@pytest.fixture
async def admin(make_admin: MakeAdmin) -> Api:
    return await make_admin()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_secured(r: httpx.Response) -> None:
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    assert "set-cookie" not in r.headers


# -- the page and its assets -------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/admin", "/admin/"])
async def test_index_is_served_with_security_headers(admin: Api, path: str) -> None:
    r = await admin.client.get(path, headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>gotaskq admin</title>" in r.text
    assert_secured(r)


@pytest.mark.parametrize("path", UI_PATHS)
async def test_every_ui_response_is_secured(admin: Api, path: str) -> None:
    r = await admin.client.get(path, headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert_secured(r)
    head = await admin.client.head(path)
    assert head.status_code == 200


@pytest.mark.parametrize("name", sorted(ASSETS))
async def test_assets_have_their_content_type(admin: Api, name: str) -> None:
    r = await admin.client.get(f"/admin/static/{name}")
    assert r.headers["content-type"] == ASSETS[name]
    assert r.content == STATIC_DIR.joinpath(name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/static/admin.py",
        "/admin/static/..%2Fadmin.py",
        "/admin/static/..%2F..%2Fapi%2Fadmin.py",
        "/admin/static/%2e%2e%2f%2e%2e%2fconfig.py",
        "/admin/static/../api/admin.py",
        "/admin/static/.",
        "/admin/static/",
        "/admin/static/INDEX.HTML",
        "/admin/static/app.js%00.py",
        "/admin/static/%2Fetc%2Fpasswd",
    ],
)
async def test_static_serves_nothing_else(admin: Api, path: str) -> None:
    r = await admin.client.get(path)
    assert r.status_code == 404
    assert error_code(r) == "not_found"
    assert "import" not in r.text


def test_assets_ship_inside_the_package() -> None:
    for name in ASSETS:
        assert STATIC_DIR.joinpath(name).is_file(), name


def test_assets_ship_in_the_wheel(tmp_path: Path) -> None:
    builder_mod = pytest.importorskip("hatchling.builders.wheel")
    root = Path(__file__).resolve().parent.parent
    wheel = next(iter(builder_mod.WheelBuilder(str(root)).build(directory=str(tmp_path), versions=["standard"])))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {f"gotaskq/admin_static/{name}" for name in ASSETS} <= names


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def test_index_has_no_inline_code() -> None:
    parser = _Tags()
    parser.feed(STATIC_DIR.joinpath("index.html").read_text())
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts and all((a.get("src") or "").startswith("/admin/static/") for a in scripts)
    assert parser.script_text == ""
    for tag, attrs in parser.tags:
        assert tag != "style"
        assert "style" not in attrs, tag
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for ref in (attrs.get("src"), attrs.get("href")):
            if ref is not None and not ref.startswith("#"):
                assert ref.startswith("/admin/static/") and ref.rsplit("/", 1)[1] in ASSETS, ref


def test_app_js_never_writes_html() -> None:
    scripts = [name for name in ASSETS if name.endswith(".js")]
    assert "app.js" in scripts and len(scripts) > 1
    code = ""
    for name in scripts:
        js = STATIC_DIR.joinpath(name).read_text()
        code += "\n".join(line for line in js.splitlines() if not line.lstrip().startswith("//"))
    for sink in HTML_SINKS:
        assert sink not in code, sink
    assert not re.search(r"setAttribute\(\s*[\"'](on|style|href)", code)
    assert not re.search(r"\.style\b|https?://(?!www\.w3\.org/2000/svg)", code)  # no inline style, no CDN
    assert 'credentials: "omit"' in code
    assert "localStorage.setItem(TOKEN_KEY" not in code and "document.cookie" not in code


def test_every_module_is_an_asset() -> None:
    """Each ES module import names a shipped asset (a missing one would 404 under the CSP)."""
    for name in [n for n in ASSETS if n.endswith(".js")]:
        for imported in re.findall(r'from "\./([^"]+)"', STATIC_DIR.joinpath(name).read_text()):
            assert imported in ASSETS, (name, imported)


# -- config ----------------------------------------------------------------------------------
async def test_config_defaults(admin: Api) -> None:
    r = await admin.client.get("/admin/config.json")
    assert r.json() == {"auth_required": False, "readonly": False}
    assert r.headers["cache-control"] == "no-store"


async def test_config_with_token_and_readonly_has_no_secret(make_admin: MakeAdmin) -> None:
    api = await make_admin(admin_token=ADMIN, api_token=API, admin_readonly=True)
    r = await api.client.get("/admin/config.json")
    assert r.status_code == 200
    assert r.json() == {"auth_required": True, "readonly": True}
    assert ADMIN not in r.text and API not in r.text


async def test_ui_is_open_so_that_it_can_ask_for_the_token(make_admin: MakeAdmin) -> None:
    api = await make_admin(admin_token=ADMIN, api_token=API)
    for path in UI_PATHS:
        assert (await api.client.get(path)).status_code == 200, path


# -- GET /queue/{name}/jobs ------------------------------------------------------------------
async def test_jobs_by_state(admin: Api) -> None:
    dead = await admin.dead_job()
    running = (await admin.job(priority=10))["id"]
    batch = await admin.app.backend.claim("default", 1, 30_000)
    assert [c.job.id for c in batch.jobs] == [running]
    pending = [(await admin.job())["id"] for _ in range(2)]
    scheduled = (await admin.job(delay=3600))["id"]
    expected = {"pending": pending[::-1], "scheduled": [scheduled], "running": [running], "dead": [dead]}
    for state, ids in expected.items():
        r = await admin.client.get("/queue/default/jobs", params={"state": state})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [j["id"] for j in body["jobs"]] == ids, state
        assert {j["status"] for j in body["jobs"]} == {state.upper()}
        assert body["next_cursor"] is None
    default = (await admin.client.get("/queue/default/jobs")).json()
    assert [j["id"] for j in default["jobs"]] == pending[::-1]
    upper = (await admin.client.get("/queue/default/jobs", params={"state": "DEAD"})).json()
    assert [j["id"] for j in upper["jobs"]] == [dead]


async def test_jobs_are_paged_newest_first(admin: Api) -> None:
    ids = [(await admin.job(payload={"n": n}))["id"] for n in range(7)]
    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = ""
    while cursor is not None:
        r = await admin.client.get("/queue/default/jobs", params={"state": "pending", "limit": 3, "cursor": cursor})
        page = r.json()
        sizes.append(len(page["jobs"]))
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
    assert sizes == [3, 3, 1]
    assert seen == ids[::-1]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"state": "bogus"}, "state"),
        ({"state": "cancelled"}, "state"),
        ({"limit": "0"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
    ],
)
async def test_jobs_bad_query_is_422(admin: Api, query: dict[str, str], field: str) -> None:
    r = await admin.client.get("/queue/default/jobs", params=query)
    assert r.status_code == 422
    assert error_code(r) == "validation_error"
    assert field in error_fields(r)


async def test_jobs_of_unknown_or_invalid_queue(admin: Api) -> None:
    r = await admin.client.get("/queue/nope/jobs")
    assert r.status_code == 404
    assert error_code(r) == "queue_not_found"
    r = await admin.client.get("/queue/bad%20name/jobs")
    assert r.status_code == 422
    assert error_fields(r) == {"queue": "invalid queue name"}


async def test_jobs_limit_is_capped(admin: Api) -> None:
    await admin.job()
    r = await admin.client.get("/queue/default/jobs", params={"limit": "999999"})
    assert r.status_code == 200
    assert len(r.json()["jobs"]) == 1


# -- GET /queue/{name}/stats -------------------------------------------------------------------
async def test_stats_shape_and_counts(admin: Api) -> None:
    await admin.dead_job()
    r = await admin.client.get("/queue/default/stats")
    assert r.status_code == 200
    body = r.json()
    assert body["queue"] == "default"
    assert len(body["minutes"]) == 15
    assert all(set(m) == {"minute", "done", "failed", "dead"} for m in body["minutes"])
    minutes = [m["minute"] for m in body["minutes"]]
    assert minutes == sorted(minutes)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z", minutes[-1])
    assert sum(m["failed"] for m in body["minutes"]) == 1
    assert sum(m["dead"] for m in body["minutes"]) == 1
    short = (await admin.client.get("/queue/default/stats", params={"minutes": "3"})).json()
    assert len(short["minutes"]) == 3


@pytest.mark.parametrize("minutes", ["0", "1441", "abc", "-5", "1.5", "99999"])
async def test_stats_bad_minutes_is_422(admin: Api, minutes: str) -> None:
    r = await admin.client.get("/queue/default/stats", params={"minutes": minutes})
    assert r.status_code == 422
    assert set(error_fields(r)) == {"minutes"}


async def test_stats_of_unknown_queue_is_404(admin: Api) -> None:
    r = await admin.client.get("/queue/nope/stats")
    assert r.status_code == 404
    assert error_code(r) == "queue_not_found"


# -- auth and read-only ----------------------------------------------------------------------
@pytest.mark.parametrize("path", JSON_READS)
async def test_json_reads_need_the_admin_token(make_admin: MakeAdmin, path: str) -> None:
    api = await make_admin(admin_token=ADMIN, api_token=API)
    for headers in ({}, bearer("wrong"), bearer(API), {"Authorization": ADMIN}, {"Cookie": f"token={ADMIN}"}):
        r = await api.client.get(path, headers=headers)
        assert r.status_code == 401, headers
        assert error_code(r) == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    assert (await api.client.get(path, headers=bearer(ADMIN))).status_code == 200


async def test_readonly_reads_work_and_mutations_are_refused(make_admin: MakeAdmin) -> None:
    api = await make_admin(admin_readonly=True)
    dead = await api.dead_job()
    for path in JSON_READS:
        assert (await api.client.get(path)).status_code == 200
    for method, path in [
        ("POST", "/queue/default/pause"),
        ("POST", "/queue/default/resume"),
        ("POST", f"/dlq/{dead}/replay"),
        ("DELETE", f"/dlq/{dead}"),
        ("POST", "/dlq/replay?queue=default"),
        ("DELETE", "/dlq?queue=default"),
    ]:
        r = await api.client.request(method, path)
        assert r.status_code == 403, (method, path)
        assert error_code(r) == "read_only"
    assert (await api.client.get(f"/dlq/{dead}")).json()["status"] == "DEAD"


def test_admin_routes_are_reads_but_bulk_and_run_now() -> None:
    writes = {"/admin/bulk", "/jobs/{id}/run-now"}
    for r in admin_routes():
        path = getattr(r, "path", "")
        allowed = {"POST"} if path in writes else {"GET", "HEAD"}
        assert set(getattr(r, "methods", set())) <= allowed, r


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_admin_routes_refuse_other_methods(admin: Api, method: str) -> None:
    for path in ["/admin", "/admin/config.json", "/admin/static/app.js", *JSON_READS]:
        r = await admin.client.request(method, path)
        assert r.status_code == 405, (method, path)
