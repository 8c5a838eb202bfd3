"""``/`` and ``/docs`` (gotaskq.api.docs_page), in-process and in headless Chromium against a real
``gotaskq serve``; and the README against the app: every route, the limits and defaults it quotes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import _free_port
from starlette.routing import Route

from gotaskq import App, Settings
from gotaskq.api import create_app
from gotaskq.api.admin import ASSETS as ADMIN_ASSETS
from gotaskq.api.admin import CSP, SECURITY_HEADERS
from gotaskq.api.docs_page import ASSETS, asset
from gotaskq.job import MAX_DELAY_S

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
UI_TIMEOUT_MS = 10_000
START_DEADLINE_S = 20.0


def client(root_path: str = "") -> httpx.AsyncClient:
    web = create_app(App(Settings()))  # these routes need no started backend
    transport = httpx.ASGITransport(app=web, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://gotaskq.test")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with client() as c:
        yield c


# -- in process --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_root_redirects_to_the_admin_ui(http: httpx.AsyncClient, method: str) -> None:
    r = await http.request(method, "/")
    assert r.status_code == 307
    assert r.headers["location"] == "/admin"


async def test_root_redirect_keeps_a_path_prefix() -> None:
    async with client(root_path="/gq") as c:
        r = await c.get("/gq/")
    assert r.status_code == 307
    assert r.headers["location"] == "/gq/admin"


async def test_docs_page_is_served_with_the_admin_csp(http: httpx.AsyncClient) -> None:
    r = await http.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert r.headers[name] == value, name
    assert "trusted-types 'none'" in r.headers["content-security-policy"]
    assert r.content == asset("index.html")


@pytest.mark.parametrize("name", sorted(ASSETS))
async def test_each_asset_is_served(http: httpx.AsyncClient, name: str) -> None:
    r = await http.get(f"/docs/static/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"] == ASSETS[name]
    assert r.headers["content-security-policy"] == CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.content == asset(name) and r.content


@pytest.mark.parametrize("name", ["nope.js", "..%2Fdocs_page.py", "%2e%2e", "app.js", "favicon.svg"])
async def test_other_files_are_404(http: httpx.AsyncClient, name: str) -> None:
    r = await http.get(f"/docs/static/{name}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_pages_are_not_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert not {"/", "/docs", "/docs/static/{file}"} & set(paths)
    assert "/admin" in paths  # the admin UI stays documented


def test_index_loads_only_shipped_assets() -> None:
    html = asset("index.html").decode()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs, html
    for ref in refs:
        assert "//" not in ref and not ref.startswith("/"), f"{ref}: relative URLs only (no CDN, any path prefix)"
        if ref.startswith("docs/static/"):
            assert ref.removeprefix("docs/static/") in ASSETS, ref
        elif ref.startswith("admin/static/"):  # the icon is the admin UI's
            assert ref.removeprefix("admin/static/") in ADMIN_ASSETS, ref
    assert {"docs/static/docs.js", "docs/static/docs.css"} <= set(refs)


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_assets_have_no_inline_code_and_no_html_sinks(name: str) -> None:
    text = asset(name).decode()
    assert "http://" not in text and "https://" not in text, "no CDN, no external link"
    if name.endswith(".html"):
        assert all(re.search(r"\ssrc=", tag) for tag in re.findall(r"<script[^>]*>", text)), "no inline script"
        assert "<style" not in text and " style=" not in text and not re.search(r"\son[a-z]+=", text)
    if name.endswith(".js"):
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, sink


# -- the README against the app ----------------------------------------------------------------


def served_routes() -> list[tuple[str, str]]:
    out = []
    for route in create_app(App(Settings())).routes:
        assert isinstance(route, Route)
        out += [(method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return out


@pytest.mark.parametrize(("method", "path"), served_routes())
def test_readme_names_every_route(method: str, path: str) -> None:
    # "GET /admin/" must not count as found inside "GET /admin/jobs": the path ends there.
    assert re.search(re.escape(f"{method} {path}") + r"(?![\w/{}.-])", README), f"README.md lacks `{method} {path}`"


def test_readme_quotes_the_delay_and_run_at_limit() -> None:
    days = MAX_DELAY_S // 86_400
    assert days == 366
    assert f'"delay" s 0..{MAX_DELAY_S} ({days} days)' in README
    assert f"up to {days} days ahead" in README


def test_readme_and_example_env_give_the_real_smtp_from_default() -> None:
    default = Settings().smtp_from
    assert f"| `SMTP_FROM` | {default} |" in README
    assert f"\nSMTP_FROM={default}\n" in (ROOT / "example.env").read_text()


@pytest.mark.parametrize("var", ["GOTASKQ_URL", "API_TOKEN", "ADMIN_TOKEN"])
def test_readme_and_example_env_document_the_cli_variables(var: str) -> None:
    cli = (ROOT / "gotaskq").glob("cli*.py")
    assert any(var in p.read_text() for p in cli), f"the CLI no longer reads {var}: update the docs"
    assert var in README
    assert var in (ROOT / "example.env").read_text()


# -- in Chromium, against a real server ---------------------------------------------------------


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``gotaskq serve`` on the in-memory backend (the docs need no Redis)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("docs-serve") / "serve.log"
    drop = ("REDIS_URL", "USE_REDIS", "API_TOKEN", "ADMIN_TOKEN", "GOTASKQ_HANDLERS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HOST="127.0.0.1", PORT=str(port), NUM_WORKERS="0", LOG_LEVEL="WARNING")
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gotaskq", "serve"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gotaskq serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    tab = context.new_page()
    tab.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            errors.append(f"console: {msg.text}")
            if msg.type == "error" or re.search(r"Content Security Policy|Trusted Type|Refused to", msg.text)
            else None
        ),
    )
    yield tab
    tab.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
    context.close()
    assert not errors, errors


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _top_fields(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    s = _resolve(doc, schema)
    names = [n for part in s.get("allOf", ()) for n in _top_fields(doc, part)]
    return names + [n for n in s.get("properties", {}) if n not in names]


# Runs in the page; a function, not an expression: the page's CSP refuses eval.
READ_OPERATIONS = """() => [...document.querySelectorAll("section.op")].map((s) => ({
  op: s.dataset.op,
  summary: s.querySelector(".summary").textContent,
  params: [...s.querySelectorAll("tr[data-param]")].map((r) => r.dataset.param),
  fields: [...s.querySelectorAll("tr[data-field]")].map((r) => r.dataset.field),
  statuses: [...s.querySelectorAll("tr[data-status]")].map((r) => r.dataset.status),
  body: [...s.querySelectorAll("h4")].some((h) => h.textContent === "Request body"),
}))"""


@pytest.mark.e2e
def test_docs_page_lists_every_operation_in_chromium(server_url: str, page: Any) -> None:
    doc = httpx.get(f"{server_url}/openapi.json").json()
    page.goto(f"{server_url}/docs")
    page.wait_for_selector('body[data-rendered="1"]')
    shown = {o["op"]: o for o in page.evaluate(READ_OPERATIONS)}

    expected = set()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            label = f"{method.upper()} {path}"
            expected.add(label)
            got = shown.get(label)
            assert got is not None, f"{label} is not on the page"
            assert got["summary"] == op["summary"], label
            assert got["params"] == [p["name"] for p in op.get("parameters", ())], label
            assert got["statuses"] == sorted(op["responses"]), label  # the page sorts them
            assert got["body"] == ("requestBody" in op), label
            if "requestBody" in op:
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                top = [f for f in got["fields"] if "." not in f]
                assert top == _top_fields(doc, schema), label
    assert set(shown) == expected

    claim = page.locator('section.op[data-op="POST /queue/{name}/claim"]')
    assert "/queue/{name}/claim" in claim.locator("h3").text_content()
    assert "POST" in claim.locator("h3 .method").text_content()
    post_jobs = page.locator('section.op[data-op="POST /jobs"]')
    for field in ("type", "payload", "queue", "priority", "delay", "run_at", "idempotency_key"):
        assert post_jobs.locator(f'tr[data-field="{field}"]').count() == 1, field
    assert "0..10" in post_jobs.locator('tr[data-field="priority"]').text_content()
    assert "POST /jobs" in page.locator("#toc").text_content().replace("\xa0", " ")

    page.fill("#filter", "claim")
    page.wait_for_function("() => document.querySelectorAll('section.op:not([hidden])').length === 1")
    assert page.locator("section.op:not([hidden])").get_attribute("data-op") == "POST /queue/{name}/claim"


@pytest.mark.e2e
def test_a_schema_link_leads_to_its_section(server_url: str, page: Any) -> None:
    page.goto(f"{server_url}/docs#op-post-jobs")
    page.wait_for_selector('body[data-rendered="1"]')
    page.locator('section.op[data-op="POST /jobs"] .body-head a').click()
    assert page.url.endswith("#schema-JobRequest")
    job_request = page.locator("#schema-JobRequest")
    assert job_request.locator('tr[data-field="max_retries"]').count() == 1
    assert page.locator('#schema-QueueSettings tr[data-field="rate_limit.per"]').count() == 1


@pytest.mark.e2e
def test_root_opens_the_admin_ui_in_chromium(server_url: str, page: Any) -> None:
    page.goto(f"{server_url}/")
    assert page.url == f"{server_url}/admin"
    page.wait_for_selector('body[data-rendered="1"]')
