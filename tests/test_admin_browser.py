"""The admin UI end to end: headless Chromium against the real ``gotaskq serve`` on a real Redis.

Screenshots of every page go to a folder under pytest's temp dir; the run prints its path.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import xss_handlers
from conftest import RedisServer

pytestmark = pytest.mark.e2e

TESTS_DIR = Path(__file__).resolve().parent
TOKEN = "s3cret-admin-token"
API_TOKEN = "s3cret-api-token"
START_DEADLINE_S = 20.0
UI_TIMEOUT_MS = 15_000  # a live refresh comes every 3 s; a loaded CI machine may take several
SERVER_TIMEOUT_S = 30.0  # for a worker to act (claim, fail, kill) on a loaded CI machine
PAGE_SIZE = 50  # PAGE_SIZE of app.js
# Playwright evaluates string expressions with eval, which the page's CSP refuses: pass functions.
ROWS_ARE = "n => document.querySelectorAll('#dlq-jobs tbody tr[data-job]').length === n"
DESKTOP = {"width": 1280, "height": 860}
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 375, "height": 812}


def expect(target: Any) -> Any:
    """Playwright's retrying assertions with our timeout (an own Expect: the global one stays as it is).

    Imported here: without Playwright the ``browser`` fixture skips (or, in CI, fails) these tests.
    """
    from playwright.sync_api import Expect

    retrying = Expect()
    retrying.set_options(timeout=UI_TIMEOUT_MS)
    return retrying(target)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_command() -> list[str]:
    return [sys.executable, "-m", "gotaskq", "serve"]


@dataclass
class Server:
    """One ``gotaskq serve`` process and an HTTP client for arranging its data."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    token: str | None = None
    api_token: str | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=10.0)

    @property
    def job_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"} if self.api_token else {}

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"gotaskq serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self.client.get("/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"gotaskq serve did not answer /healthz in {START_DEADLINE_S}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    # -- arranging data over the HTTP API --------------------------------------------------
    def queue(self, name: str) -> None:
        r = self.client.post(f"/queue/{name}")
        assert r.status_code in (200, 201), r.text

    def job(self, queue: str, type: str = "noop", **fields: Any) -> str:
        r = self.client.post("/jobs", json={"type": type, "queue": queue, **fields}, headers=self.job_headers)
        assert r.status_code == 201, r.text
        job_id: str = r.json()["id"]
        return job_id

    def get_job(self, job_id: str) -> dict[str, Any]:
        r = self.client.get(f"/jobs/{job_id}", headers=self.job_headers)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def wait_status(self, job_id: str, status: str, timeout: float = SERVER_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job["status"] == status:
                return job
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} is {job['status']}, not {status}, after {timeout}s")
            time.sleep(0.05)

    def wait_dead_count(self, queue: str, n: int, timeout: float = SERVER_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while (dead := self.client.get(f"/queue/{queue}").json()["dead"]) != n:
            if time.monotonic() > deadline:
                pytest.fail(f"queue {queue} has {dead} dead jobs, not {n}, after {timeout}s")
            time.sleep(0.05)

    def dead_job(self, queue: str, type: str = "fail", **fields: Any) -> str:
        job_id = self.job(queue, type, max_retries=0, **fields)
        self.wait_status(job_id, "DEAD")
        return job_id


MakeServer = Callable[..., Server]


@pytest.fixture(scope="module")
def make_server(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeServer]:
    """``make_server(ADMIN_TOKEN=...)``: a started ``gotaskq serve`` on its own Redis database."""
    redis_server.flushall()
    started: list[Server] = []
    command = serve_command()

    def make(**env: str) -> Server:
        port = _free_port()
        log = tmp_path_factory.mktemp("serve") / "serve.log"
        base = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "ADMIN_TOKEN", "ADMIN_READONLY")}
        pythonpath = os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH", "")) if p)
        full_env = {
            **base,
            "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/{len(started) + 1}",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "BASE_DELAY": "10",
            "MAX_DELAY": "50",
            "LOG_LEVEL": "WARNING",
            "SHUTDOWN_GRACE": "1s",  # a job still running at the end is released, not waited for
            "GOTASKQ_HANDLERS": "xss_handlers,test_admin_handlers",
            "PYTHONPATH": pythonpath,
            **env,
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(command, env=full_env, stdout=out, stderr=subprocess.STDOUT)
        server = Server(f"http://127.0.0.1:{port}", proc, log, env.get("ADMIN_TOKEN"), env.get("API_TOKEN"))
        started.append(server)
        server.wait_healthy()
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(make_server: MakeServer) -> Server:
    return make_server()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("admin-screenshots")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def announce() -> None:
        # Shown even without -s: capturing is suspended around the print, as capsys.disabled() does.
        if capture is None:
            print(f"\nadmin UI screenshots: {folder}")
            return
        with capture.global_and_fixture_disabled():
            print(f"\nadmin UI screenshots: {folder}")

    announce()
    yield folder
    announce()


@dataclass
class Tab:
    """A page plus everything it did: requests sent, uncaught errors, CSP/Trusted Types reports."""

    page: Any
    base: str
    shots: Path
    requests: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, hash: str = "", view: str | None = None) -> None:
        url = f"{self.base}/admin{hash}"
        if self.page.url == url:
            self.page.reload()
        else:
            # Going from /admin#/a to /admin#/b keeps the document, and the hashchange that renders
            # #/b comes later: until then the marks of #/a (same view, rendered) would pass wait_view.
            if hash and self.page.url.split("#")[0] == f"{self.base}/admin":
                self.page.evaluate("() => { delete document.body.dataset.view; }")
            self.page.goto(url)
        if view is not None:
            self.wait_view(view)

    def wait_view(self, view: str) -> None:
        self.page.wait_for_selector(f'body[data-rendered="1"][data-view="{view}"]', timeout=UI_TIMEOUT_MS)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def confirm(self, button: Any) -> None:
        button.click()
        dialog = self.page.locator("#confirm")
        dialog.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
        self.page.locator("#confirm-yes").click()
        dialog.wait_for(state="hidden", timeout=UI_TIMEOUT_MS)

    def flash(self, pattern: str) -> str:
        box = self.page.locator("#flash")
        box.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
        self.page.wait_for_function(
            "p => new RegExp(p).test(document.getElementById('flash-text').textContent)",
            arg=pattern,
            timeout=UI_TIMEOUT_MS,
        )
        text: str = self.page.locator("#flash-text").text_content()
        return text

    def search(self, job_id: str) -> None:
        self.page.fill("#search-id", job_id)
        self.page.press("#search-id", "Enter")
        self.page.wait_for_selector(f'body[data-view="job"][data-rendered="1"] #job-id:text-is("{job_id}")')

    def assert_clean(self) -> None:
        assert not self.errors, self.errors
        for req in self.requests:
            path = req.url.split("?")[0]
            if req.method == "GET":
                assert not re.search(r"/(pause|resume|replay)$", path), f"mutation over GET: {req.url}"
            assert "cookie" not in req.headers, req.url


MakeTab = Callable[..., Tab]


@pytest.fixture
def make_tab(browser: Any, shots: Path) -> Iterator[MakeTab]:
    contexts: list[Any] = []
    tabs: list[Tab] = []

    def make(server: Server, viewport: dict[str, int] = DESKTOP, color_scheme: str = "light") -> Tab:
        context = browser.new_context(viewport=viewport, color_scheme=color_scheme)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        tab = Tab(page, server.url, shots)
        page.on("request", lambda req: tab.requests.append(req))
        page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))

        def on_console(msg: Any) -> None:
            if re.search(r"Content Security Policy|Trusted Type|Refused to", msg.text):
                tab.errors.append(f"console: {msg.text}")

        page.on("console", on_console)
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        tab.assert_clean()
    for context in contexts:
        assert context.cookies() == [], "the admin UI must not use cookies"
        context.close()


def main_buttons(tab: Tab) -> list[str]:
    """The buttons of the page that could change something (not: chart range, filter, paging)."""
    texts: list[str] = tab.page.locator("main button:not(.range-btn, #filter-apply, .pager button)").all_text_contents()
    return texts


# -- the tests -------------------------------------------------------------------------------
def test_dlq_replay_watch_delete_and_pause_resume(server: Server, make_tab: MakeTab) -> None:
    server.queue("e2e")
    dead = server.dead_job("e2e", payload={"order": 42, "note": "first try"})
    tab = make_tab(server)
    page = tab.page

    served = server.client.get("/admin")
    assert (
        served.headers["x-frame-options"] == "DENY"
        and "default-src 'self'" in served.headers["content-security-policy"]
    )
    tab.open("", "overview")
    assert not page.is_visible("#readonly-badge") and not page.is_visible("#sign-out")
    row = page.locator('#queues tr[data-queue="e2e"]')
    assert row.locator("td").nth(3).text_content() == "1"  # dead
    page.wait_for_selector('body[data-stats-rendered="1"]')
    tab.shot("01-overview")

    row.locator("th a").click()
    tab.wait_view("queue")
    tab.confirm(page.locator("#pause-queue"))
    assert "paused" in tab.flash("Queue e2e paused")
    page.wait_for_selector("#paused-badge")
    assert server.client.get("/queue/e2e").json()["paused"] is True
    page.click('a.tab:has-text("dead")')
    page.wait_for_selector(f'#jobs tr[data-job="{dead}"]')
    tab.shot("02-queue-paused")

    page.click('a[data-nav="dlq"]')
    tab.wait_view("dlq")
    dlq_row = page.locator(f'#dlq-jobs tr[data-job="{dead}"]')
    dlq_row.wait_for()
    tab.shot("03-dlq")
    dlq_row.locator("button.replay").click()  # asked, then declined: nothing happens
    page.locator("#confirm-no").click()
    assert server.client.get(f"/dlq/{dead}").status_code == 200
    tab.confirm(dlq_row.locator("button.replay"))
    assert "now PENDING" in tab.flash(f"Job {dead} replayed")
    page.wait_for_selector(f'#dlq-jobs tr[data-job="{dead}"]', state="detached")

    tab.search(dead)
    page.wait_for_selector('body[data-job-status="PENDING"]')
    expect(page.locator('dd[data-field="Attempts / max_retries"]')).to_have_text("0 / 0")
    expect(page.locator("#job-payload")).to_contain_text('"order": 42')
    tab.shot("04-job-pending")

    page.locator('dd[data-field="Queue"] a').click()
    tab.wait_view("queue")
    tab.confirm(page.locator("#resume-queue"))
    tab.flash("Queue e2e resumed")
    assert server.client.get("/queue/e2e").json()["paused"] is False

    tab.search(dead)  # auto-refresh shows the worker taking it and killing it again
    assert page.is_checked("#auto-refresh")
    page.wait_for_selector('body[data-job-status="DEAD"]', timeout=SERVER_TIMEOUT_S * 1000)
    expect(page.locator("#job-errors")).to_contain_text("fail job: always fails")
    expect(page.locator('dd[data-field="Attempts / max_retries"]')).to_have_text("1 / 0")
    tab.shot("05-job-dead")

    tab.confirm(page.locator("#delete-job"))
    tab.flash(f"Dead job {dead} deleted")
    tab.wait_view("dlq")
    assert server.client.get(f"/dlq/{dead}").status_code == 404
    mutations = [(r.method, r.url.split("?")[0].removeprefix(server.url)) for r in tab.requests if r.method != "GET"]
    assert mutations == [
        ("POST", "/queue/e2e/pause"),
        ("POST", f"/dlq/{dead}/replay"),
        ("POST", "/queue/e2e/resume"),
        ("DELETE", f"/dlq/{dead}"),
    ]


def test_cancel_paging_and_bulk_dlq_actions(server: Server, make_tab: MakeTab) -> None:
    server.queue("bulk")
    later = server.job("bulk", delay=3600)
    n = PAGE_SIZE + 5
    r = server.client.post("/jobs/batch", json={"jobs": [{"type": "fail", "queue": "bulk", "max_retries": 0}] * n})
    assert r.status_code == 201, r.text
    server.wait_dead_count("bulk", n)
    tab = make_tab(server)
    page = tab.page

    tab.open(f"#/job/{later}", "job")
    page.wait_for_selector('body[data-job-status="SCHEDULED"]')
    tab.confirm(page.locator("#cancel-job"))
    assert "now CANCELLED" in tab.flash(f"Job {later} cancelled")
    page.wait_for_selector('body[data-job-status="CANCELLED"]')
    expect(page.locator("#cancel-job")).to_have_count(0)

    tab.open("#/dlq/bulk", "dlq")
    first_page = rows_of(tab, "dlq-jobs")
    assert len(first_page) == PAGE_SIZE
    api_page = server.client.get("/dlq", params={"queue": "bulk", "limit": PAGE_SIZE}).json()["jobs"]
    assert first_page == [j["id"] for j in api_page]  # the API's order: newest death first
    died = [j["finished_at"] for j in api_page]
    assert died == sorted(died, reverse=True)
    page.click("button.pager-next")
    page.wait_for_function(ROWS_ARE, arg=n - PAGE_SIZE)
    second_page = rows_of(tab, "dlq-jobs")
    assert len(second_page) == n - PAGE_SIZE and not set(first_page) & set(second_page)
    assert page.locator("button.pager-next").count() == 0
    page.reload()  # "Newer" still knows the way back
    tab.wait_view("dlq")
    page.wait_for_function(ROWS_ARE, arg=n - PAGE_SIZE)
    page.click("button.pager-prev")
    page.wait_for_function(ROWS_ARE, arg=PAGE_SIZE)
    assert "cursor=" not in page.url
    dlq_requests = [r.url for r in tab.requests if "/admin/jobs?" in r.url]
    assert dlq_requests and all(f"limit={PAGE_SIZE}" in u for u in dlq_requests)

    tab.confirm(page.locator("#replay-all"))
    assert tab.flash("Replayed") == f"Replayed {n} dead job(s) of bulk."
    server.wait_dead_count("bulk", n)  # the worker kills them again
    page.reload()
    tab.wait_view("dlq")
    page.wait_for_selector("#dlq-jobs tbody tr[data-job]")
    tab.confirm(page.locator("#purge"))
    assert tab.flash("Deleted") == f"Deleted {n} dead job(s) of bulk."
    page.wait_for_selector("#dlq-jobs tr.empty")
    assert server.client.get("/dlq", params={"queue": "bulk"}).json()["jobs"] == []


def test_token_prompt(make_server: MakeServer, make_tab: MakeTab) -> None:
    server = make_server(ADMIN_TOKEN=TOKEN, API_TOKEN=API_TOKEN)
    dead = server.dead_job("default")
    later = server.job("default", delay=3600)
    tab = make_tab(server)
    page = tab.page

    tab.open("", "signin")
    tab.shot("06-token-prompt")
    assert page.locator("#queues").count() == 0
    page.fill("#token-input", "wrong-token")
    page.press("#token-input", "Enter")
    page.wait_for_selector('#token-error:text("refused")')
    assert page.evaluate("sessionStorage.length") == 0

    tab.requests.clear()
    page.fill("#token-input", TOKEN)
    page.press("#token-input", "Enter")
    tab.wait_view("overview")
    assert page.is_visible("#sign-out")
    assert page.evaluate("sessionStorage.getItem('gotaskq.adminToken')") == TOKEN
    assert page.evaluate("localStorage.getItem('gotaskq.adminToken')") is None
    page.reload()  # the token stays for this tab's session
    tab.wait_view("overview")
    page.wait_for_selector('#queues tr[data-queue="default"]')

    tab.open("#/queue/default", "queue")
    tab.confirm(page.locator("#pause-queue"))
    tab.flash("Queue default paused")
    tab.confirm(page.locator("#resume-queue"))
    tab.flash("Queue default resumed")
    api_calls = [r for r in tab.requests if re.search(r"/(queue|dlq)(/|$|\?)", r.url)]
    assert api_calls and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in api_calls)

    # With API_TOKEN set too, the admin token still reads every job the UI shows (issue 14):
    tab.search(dead)
    page.wait_for_selector('body[data-job-status="DEAD"]')
    expect(page.locator("#replay-job")).to_be_visible()
    tab.open(f"#/job/{later}", "job")
    page.wait_for_selector('body[data-job-status="SCHEDULED"]')
    assert page.locator("#load-error").count() == 0 or not page.locator("#load-error").is_visible()
    assert page.evaluate("sessionStorage.getItem('gotaskq.adminToken')") == TOKEN

    page.click("#sign-out")
    tab.wait_view("signin")
    assert page.evaluate("sessionStorage.length") == 0
    unauth = httpx.get(f"{server.url}/queue/default/jobs")
    assert unauth.status_code == 401


def test_readonly_mode(make_server: MakeServer, make_tab: MakeTab) -> None:
    server = make_server(ADMIN_READONLY="true")
    dead = server.dead_job("default")
    later = server.job("default", delay=3600)
    tab = make_tab(server)
    page = tab.page

    tab.open("", "overview")
    assert page.is_visible("#readonly-badge")
    tab.open("#/queue/default", "queue")
    assert main_buttons(tab) == []
    tab.open("#/dlq/default", "dlq")
    page.wait_for_selector(f'#dlq-jobs tr[data-job="{dead}"]')
    assert main_buttons(tab) == []
    tab.shot("07-dlq-readonly")
    for job_id in (dead, later):
        tab.search(job_id)
        assert main_buttons(tab) == []
    for method, path in [("POST", f"/dlq/{dead}/replay"), ("POST", "/queue/default/pause"), ("DELETE", f"/dlq/{dead}")]:
        r = server.client.request(method, path)
        assert r.status_code == 403 and r.json()["error"]["code"] == "read_only"
    assert all(r.method == "GET" for r in tab.requests)


def test_job_data_is_rendered_as_text(server: Server, make_tab: MakeTab) -> None:
    server.queue("xss")
    payload = xss_handlers.hostile_payload()
    dead = server.dead_job("xss", "evil", payload=payload, idempotency_key=xss_handlers.IMG_ONERROR)
    done = server.job("xss", "evil_ok", payload=payload)
    server.wait_status(done, "DONE")
    tab = make_tab(server)
    page = tab.page
    page.add_init_script(f"window.{xss_handlers.SENTINEL} = undefined;")

    tab.open("", "overview")
    tab.open("#/dlq/xss", "dlq")
    error_cell = page.locator(f'#dlq-jobs tr[data-job="{dead}"] td.error-cell')
    assert error_cell.text_content().startswith(f"RuntimeError: {xss_handlers.SCRIPT_TAG} {xss_handlers.IMG_ONERROR}")
    tab.shot("08-xss-dlq")
    tab.open("#/queue/xss?state=dead", "queue")
    page.wait_for_selector(f'#jobs tr[data-job="{dead}"]')

    tab.search(dead)
    payload_text = page.locator("#job-payload").text_content()
    for attack in xss_handlers.ATTACKS:
        assert attack.replace('"', '\\"') in payload_text, attack
    assert page.locator("#job-last-error").text_content() == f"RuntimeError: {xss_handlers.ERROR_TEXT}"
    assert xss_handlers.ERROR_TEXT in page.locator("#job-errors").text_content()
    assert page.locator('dd[data-field="Idempotency key"]').text_content() == xss_handlers.IMG_ONERROR
    tab.shot("09-xss-dead-job")

    tab.search(done)
    result_text = page.locator("#job-result").text_content()
    for attack in xss_handlers.ATTACKS:
        assert attack.replace('"', '\\"') in result_text, attack
    tab.shot("10-xss-done-job")

    # Each hostile route is rendered (its own page, not the one before it) before the checks below.
    tab.open("#/job/<img src=x onerror=window.__xss_fired=5>", "job")
    expect(page.locator("#job-missing")).to_be_visible()
    tab.open("#/queue/%3Csvg%20onload%3Dwindow.__xss_fired%3D6%3E", "queue")
    expect(page.locator("#load-error")).to_be_visible()

    assert page.evaluate(f"typeof window.{xss_handlers.SENTINEL}") == "undefined"
    assert page.locator("img, script:not([src]), iframe, object, embed").count() == 0
    assert page.locator('a[href^="javascript:" i]').count() == 0


def test_phone_width(server: Server, make_tab: MakeTab) -> None:
    server.queue("phone")
    dead = server.dead_job("phone", payload={"long": "x" * 300, "nested": {"list": list(range(30))}})
    server.job("phone", delay=3600)
    tab = make_tab(server, PHONE)
    page = tab.page

    def fits(name: str) -> None:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name} is {width}px wide at {PHONE['width']}px"
        tab.shot(f"phone-{name}")

    tab.open("", "overview")
    page.wait_for_selector('body[data-stats-rendered="1"]')
    fits("overview")
    tab.open("#/queue/phone?state=scheduled", "queue")
    fits("queue")
    tab.open("#/dlq", "dlq")
    fits("dlq")
    tab.search(dead)
    fits("job")
    page.locator("#replay-job").click()
    page.locator("#confirm").wait_for(state="visible")
    fits("confirm")
    page.locator("#confirm-no").click()


# -- issue 14: charts, workers, retries, bulk actions, search, queue and schedule actions -------
def dead_jobs(server: Server, queue: str, n: int, type: str = "fail", **fields: Any) -> list[str]:
    r = server.client.post(
        "/jobs/batch", json={"jobs": [{"type": type, "queue": queue, "max_retries": 0, **fields}] * n}
    )
    assert r.status_code == 201, r.text
    return [j["id"] for j in r.json()["jobs"]]


def rows_of(tab: Tab, table_id: str) -> list[str]:
    ids: list[str] = tab.page.locator(f"#{table_id} tbody tr[data-job]").evaluate_all(
        "rows => rows.map(r => r.dataset.job)"
    )
    return ids


def test_history_charts_with_a_range_switch(server: Server, make_tab: MakeTab) -> None:
    server.queue("charts")
    dead_jobs(server, "charts", 3)
    r = server.client.post("/jobs/batch", json={"jobs": [{"type": "noop", "queue": "charts", "delay": 3600}] * 1000})
    assert r.status_code == 201
    server.wait_dead_count("charts", 3)
    tab = make_tab(server)
    page = tab.page

    tab.open("", "overview")
    page.wait_for_selector('body[data-chart-range="1h"] #history-chart svg.chart rect.bar-dead')
    assert re.fullmatch(r"1,\d{3}", page.locator(".tile-scheduled .tile-n").text_content())  # thousands separators
    assert page.locator('#queues tr[data-queue="charts"] td').nth(1).text_content() == "1,000"
    legend = page.locator('#history-chart .legend [data-series="dead"] strong').text_content()
    assert int(legend.replace(",", "")) >= 3, legend  # every queue's, in the last hour
    tab.shot("11-overview-chart-1h")
    page.click('#history button[data-range="24h"]')
    page.wait_for_selector('body[data-chart-range="24h"] #history-chart svg.chart')
    assert any("minutes=1440" in r.url for r in tab.requests)
    assert page.locator('#history button[data-range="24h"]').get_attribute("aria-pressed") == "true"
    tab.shot("12-overview-chart-24h")

    tab.open("#/queue/charts", "queue")  # the range chosen is kept
    page.wait_for_selector('body[data-chart-range="24h"] #history-chart svg.chart rect.bar-dead')
    title = page.locator("#history-chart svg g.bar title").last.text_content()
    assert re.fullmatch(r"\d\d:\d\d\u2013\d\d:\d\d: done [\d,]+, failed [\d,]+, dead [\d,]+", title), title
    tab.shot("13-queue-chart")
    assert server.client.post("/queue/charts/purge").json() == {"purged": 1000}


def test_workers_page_and_job_progress(server: Server, make_tab: MakeTab) -> None:
    server.queue("slow")
    # Long enough to still run when its page is read (the registry alone may take 10 s to list it),
    # short enough to show "running for" in seconds (under a minute).
    job_id = server.job("slow", "progress", payload={"seconds": 45})
    server.wait_status(job_id, "RUNNING")
    deadline = time.monotonic() + SERVER_TIMEOUT_S  # the registry is refreshed every lease/3
    while job_id not in str(server.client.get("/workers").json()):
        assert time.monotonic() < deadline, "the worker registry never listed the running job"
        time.sleep(0.2)
    tab = make_tab(server)
    page = tab.page

    tab.open("#/workers", "workers")
    row = page.locator(f'#workers tr[data-job="{job_id}"]')
    row.wait_for()
    cells = row.locator("td").all_text_contents()
    assert cells[0] == "slow" and cells[1] == "progress"
    assert re.fullmatch(r"\d+ m?s", cells[2]), cells  # running for
    assert re.fullmatch(r"in \d+ s", cells[3]), cells  # lease deadline
    assert re.search(r"\d+ / \d+", page.locator("#workers dd.busy").first.text_content())
    tab.shot("14-workers")

    tab.search(job_id)
    page.wait_for_selector('body[data-job-status="RUNNING"] #job-progress')
    assert page.locator("#job-progress").get_attribute("value") == "40"
    assert "step 2 of 5" in page.locator("main").text_content()
    for absent in ("#job-result", "#job-last-error", "#job-errors"):  # no empty boxes
        assert page.locator(absent).count() == 0, absent
    assert [t for t in page.locator("#job-facts dt").all_text_contents() if t in ("Finished", "Idempotency key")] == []
    started = page.locator('dd[data-field="Started"] time')
    assert re.fullmatch(r"(\d+ s ago|just now)", started.text_content())
    assert re.search(r"\d{2}/\d{2}/\d{4}, \d{2}:\d{2}:\d{2} \(20\d\d-", started.get_attribute("title"))
    tab.shot("15-job-progress")


def test_retries_run_now_and_tracebacks(make_server: MakeServer, make_tab: MakeTab) -> None:
    # Retry delays have full jitter, random(0, BASE_DELAY * 2**n): with 60 s one in 40 came within
    # the 1.5 s shown as "just now", or ran again by itself before "Run now". Days keep it waiting.
    server = make_server(BASE_DELAY="1000h", MAX_DELAY="2000h")
    server.queue("flaky")
    job_id = server.job("flaky", "fail", max_retries=3)
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    while (job := server.get_job(job_id))["attempts"] != 1 or job["status"] != "SCHEDULED":
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    tab = make_tab(server)
    page = tab.page

    tab.open("#/retries", "retries")
    row = page.locator(f'#retry-jobs tr[data-job="{job_id}"]')
    row.wait_for()
    assert "always fails" in row.locator("td.error-cell").text_content()
    assert re.fullmatch(r"in \d+ (d|h|min|s)( \d+ (h|min|s))?", row.locator("time").text_content())
    tab.shot("16-retries")
    tab.confirm(row.locator("button.run-now"))
    tab.flash(f"Job {job_id} runs now: PENDING")
    deadline = time.monotonic() + SERVER_TIMEOUT_S
    while server.get_job(job_id)["attempts"] != 2:  # it ran at once, failed, and waits again
        assert time.monotonic() < deadline
        time.sleep(0.05)

    tab.open("#/queue/flaky?state=retries", "queue")
    page.wait_for_selector(f'#jobs tr[data-job="{job_id}"]')
    assert page.locator("a.tab.active").get_attribute("data-state") == "retries"

    tab.search(job_id)
    page.wait_for_selector('body[data-job-status="SCHEDULED"] #run-now')
    attempts = page.locator("#job-errors details.attempt")
    assert attempts.count() == 2
    assert attempts.evaluate_all("ds => ds.filter(d => d.open).length") == 0  # tracebacks folded
    assert not page.locator("#job-errors pre.traceback").first.is_visible()
    attempts.first.locator("summary").click()
    expect(attempts.first.locator("pre.traceback")).to_be_visible()
    assert "Traceback (most recent call last)" in attempts.first.locator("pre.traceback").text_content()
    reads = len([r for r in tab.requests if r.url.endswith(f"/jobs/{job_id}")])
    # A live refresh re-renders the page (the element on screen now is replaced; waited for, not
    # guessed with a fixed sleep) and keeps the traceback unfolded.
    shown = attempts.first.element_handle()
    page.wait_for_function("d => !d.isConnected", arg=shown, timeout=UI_TIMEOUT_MS)
    assert len([r for r in tab.requests if r.url.endswith(f"/jobs/{job_id}")]) > reads
    expect(attempts).to_have_count(2)
    assert attempts.first.evaluate("d => d.open")
    assert page.locator("#job-result").count() == 0
    tab.shot("17-job-tracebacks")
    tab.confirm(page.locator("#run-now"))
    tab.flash(f"Job {job_id} runs now")


def test_search_select_and_bulk_actions(server: Server, make_tab: MakeTab) -> None:
    server.queue("triage")
    failing = dead_jobs(server, "triage", 3)
    bad_sleep = dead_jobs(server, "triage", 2, "sleep", payload={"seconds": "soon"})
    server.wait_dead_count("triage", 5)
    tab = make_tab(server)
    page = tab.page

    tab.open("#/dlq/triage", "dlq")
    page.fill("#filter-error", "PAYLOAD.SECONDS must")  # case does not matter
    page.press("#filter-error", "Enter")
    page.wait_for_function(ROWS_ARE, arg=2)
    assert sorted(rows_of(tab, "dlq-jobs")) == sorted(bad_sleep)
    assert "error=PAYLOAD.SECONDS" in page.url
    page.check("#select-page")
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.wait_for_selector('body[data-live-held="1"]')  # no re-render while rows are selected
    expect(page.locator("#live-state")).to_have_text("paused: rows selected")
    tab.shot("18-dlq-search-selected")
    tab.confirm(page.locator("#bulk button.bulk-replay"))
    assert tab.flash("Replay:") == "Replay: 2 of 2 done."
    server.wait_dead_count("triage", 5)  # they fail again

    page.click("#filter-clear")
    page.wait_for_function(ROWS_ARE, arg=5)
    page.fill("#filter-type", "fail")
    page.press("#filter-type", "Enter")
    page.wait_for_function(ROWS_ARE, arg=3)
    page.locator("input.select-job").first.check()
    page.check("#bulk-all")  # every job matching the view, not only the ticked one
    expect(page.locator("#bulk-count")).to_have_text("Every matching job")
    page.locator("#bulk button.bulk-delete").click()
    expect(page.locator("#confirm-text")).to_contain_text(
        "every job matching this view (state dead, type fail, queue triage)"
    )
    page.locator("#confirm-yes").click()
    assert tab.flash("Delete:") == "Delete: 3 of 3 done."
    page.wait_for_selector("#dlq-jobs tr.empty")
    assert sorted(j["id"] for j in server.client.get("/dlq", params={"queue": "triage"}).json()["jobs"]) == sorted(
        bad_sleep
    )
    assert all(server.client.get(f"/dlq/{i}").status_code == 404 for i in failing)

    later = [server.job("triage", delay=3600) for _ in range(3)]
    tab.open("#/queue/triage?state=scheduled", "queue")
    page.wait_for_function("n => document.querySelectorAll('#jobs tbody tr[data-job]').length === n", arg=3)
    page.locator(f'#jobs tr[data-job="{later[0]}"] input.select-job').check()
    tab.confirm(page.locator("#bulk button.bulk-cancel"))
    assert tab.flash("Cancel:") == "Cancel: 1 of 1 done."
    assert server.get_job(later[0])["status"] == "CANCELLED"
    page.wait_for_function("n => document.querySelectorAll('#jobs tbody tr[data-job]').length === n", arg=2)
    page.check("#select-page")
    tab.confirm(page.locator("#bulk button.bulk-run_now"))
    assert tab.flash("Run now:") == "Run now: 2 of 2 done."
    for job_id in later[1:]:
        server.wait_status(job_id, "DONE")

    tab.open("#/queue/triage?state=done", "queue")  # finished jobs are listed until their TTL
    page.wait_for_selector(f'#jobs tr[data-job="{later[1]}"]')
    assert set(later[1:]) <= set(rows_of(tab, "jobs"))
    tab.shot("19-queue-done")
    mutations = [(r.method, r.url.split("?")[0].removeprefix(server.url)) for r in tab.requests if r.method != "GET"]
    assert mutations == [("POST", "/admin/bulk")] * 4


def test_queue_settings_purge_and_delete(server: Server, make_tab: MakeTab) -> None:
    server.queue("tuned")
    for _ in range(2):
        server.job("tuned", delay=3600)
    tab = make_tab(server)
    page = tab.page

    tab.open("#/queue/tuned", "queue")
    page.click("#settings-card summary")
    page.fill("#set-concurrency", "3")
    page.fill("#set-rate-max", "1200")
    page.fill("#set-rate-per", "60")
    tab.shot("20-queue-settings")
    page.click("#save-settings")
    tab.flash("Settings of tuned saved")
    info = server.client.get("/queue/tuned").json()
    assert info["concurrency"] == 3 and info["rate_limit"] == {"max": 1200, "per": 60.0}
    page.wait_for_selector('#settings-card summary:has-text("3 at once, 1,200 per 60 s")')
    page.click("#flash-close")
    page.click("#settings-card summary")
    page.fill("#set-concurrency", "")
    page.fill("#set-rate-max", "")
    page.click("#save-settings")
    tab.flash("Settings of tuned saved")
    page.wait_for_selector('#settings-card summary:has-text("no concurrency limit, no rate limit")')
    info = server.client.get("/queue/tuned").json()
    assert info["concurrency"] is None and info["rate_limit"] is None

    tab.confirm(page.locator("#purge-queue"))
    assert tab.flash("Purged") == "Purged 2 job(s) of tuned."
    tab.confirm(page.locator("#delete-queue"))
    tab.flash("Queue tuned deleted")
    tab.wait_view("overview")
    assert server.client.get("/queue/tuned").status_code == 404


def test_schedules_page(server: Server, make_tab: MakeTab) -> None:
    body = {"every": 3600, "job": {"type": "noop", "queue": "default", "payload": {"report": "daily"}}}
    assert server.client.put("/schedules/hourly-report", json=body).status_code == 201
    tab = make_tab(server)
    page = tab.page

    tab.open("#/schedules", "schedules")
    row = page.locator('#schedules tr[data-schedule="hourly-report"]')
    row.wait_for()
    assert row.locator("td").nth(0).text_content() == "every 1 h"
    assert re.fullmatch(r"in (59 min( \d+ s)?|1 h)", row.locator("td").nth(2).text_content())
    tab.shot("21-schedules")
    tab.confirm(row.locator("button.pause"))
    tab.flash("Schedule hourly-report paused")
    schedule = server.client.get("/schedules/hourly-report").json()
    assert schedule["paused"] is True and schedule["job"] == body["job"] and schedule["every"] == 3600
    page.wait_for_selector('#schedules tr[data-schedule="hourly-report"] .badge-paused')
    tab.confirm(row.locator("button.resume"))
    tab.flash("Schedule hourly-report resumed")
    assert server.client.get("/schedules/hourly-report").json()["paused"] is False
    tab.confirm(row.locator("button.delete"))
    tab.flash("Schedule hourly-report deleted")
    assert server.client.get("/schedules/hourly-report").status_code == 404


def test_live_updates_hold_while_text_is_selected(server: Server, make_tab: MakeTab) -> None:
    tab = make_tab(server)
    page = tab.page
    tab.open("", "overview")
    page.wait_for_selector('body[data-stats-rendered="1"]')
    page.evaluate(
        """() => {
            const range = document.createRange();
            range.selectNodeContents(document.querySelector("main h1"));
            getSelection().removeAllRanges();
            getSelection().addRange(range);
        }"""
    )
    page.wait_for_selector('body[data-live-held="1"]')
    expect(page.locator("#live-state")).to_have_text("paused: text selected")
    before = len([r for r in tab.requests if r.url.endswith("/queue")])
    heading = page.locator("main h1").element_handle()
    # Two more polls (each marks body[data-live-held]), not a fixed sleep a slow machine may outlast
    # without a poll: both must have held off.
    page.evaluate(
        """() => {
            window.__polls = 0;
            new MutationObserver(() => { window.__polls++; })
                .observe(document.body, { attributes: true, attributeFilter: ["data-live-held"] });
        }"""
    )
    page.wait_for_function("() => window.__polls >= 2", timeout=UI_TIMEOUT_MS)
    assert page.locator("#live-state").text_content() == "paused: text selected"
    assert len([r for r in tab.requests if r.url.endswith("/queue")]) == before
    assert heading.evaluate("h => h.isConnected"), "the page was re-rendered under the selection"
    page.evaluate("() => getSelection().removeAllRanges()")
    page.wait_for_selector('body[data-live-held="0"]')
    page.wait_for_function(
        "n => performance.getEntriesByType('resource').filter(e => e.name.endsWith('/queue')).length > n",
        arg=before,
    )


BROKEN_WORDS = """() => {
    const broken = [];
    for (const cell of document.querySelectorAll("#dlq-jobs th, #dlq-jobs td")) {
        const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
        for (let node = walk.nextNode(); node; node = walk.nextNode()) {
            // Words: what a person reads as one (markup-like tokens may break at their punctuation).
            for (const m of node.data.matchAll(/[\\p{L}\\p{N}_.,:;'()]+/gu)) {
                const range = document.createRange();
                range.setStart(node, m.index);
                range.setEnd(node, m.index + m[0].length);
                const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
                if (lines.size > 1) broken.push(m[0]);
            }
        }
    }
    return broken;
}"""


def test_dlq_words_are_never_broken_at_1366px_and_dark_mode(server: Server, make_tab: MakeTab) -> None:
    server.queue("wide")
    words = "the upstream payment provider answered with an unexpected status while we were reconciling"
    dead_jobs(server, "wide", 4, "sleep", payload={"seconds": words})
    dead_jobs(server, "wide", 2, "evil", payload={"note": words})
    server.wait_dead_count("wide", 6)
    tab = make_tab(server, LAPTOP)
    page = tab.page
    tab.open("#/dlq/wide", "dlq")
    page.wait_for_function(ROWS_ARE, arg=6)
    assert page.evaluate(BROKEN_WORDS) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    tab.shot("22-dlq-1366")

    dark = make_tab(server, LAPTOP, color_scheme="dark")
    dark.open("#/dlq/wide", "dlq")
    dark.page.wait_for_function(ROWS_ARE, arg=6)
    background = dark.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 22, 28)", background
    assert dark.page.evaluate(BROKEN_WORDS) == []
    dark.shot("23-dark-dlq")
    dark.open("", "overview")
    dark.page.wait_for_selector("#history-chart svg.chart")
    dark.shot("24-dark-overview")
