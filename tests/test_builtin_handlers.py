import email
import email.policy
import http.server
import logging
import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from gotaskq.builtin_handlers import register_builtins
from gotaskq.config import Settings
from gotaskq.handlers import HandlerRegistry
from gotaskq.job import Job
from gotaskq.states import JobStatus

WAIT_S = 5.0  # upper bound of every wait on a test server


def make_job(job_type: str, payload: Any) -> Job:
    return Job(
        id="1",
        queue="default",
        type=job_type,
        payload=payload,
        priority=0,
        status=JobStatus.RUNNING,
        attempts=1,
        max_retries=3,
        timeout=30.0,
    )


async def run(job_type: str, payload: Any, settings: Settings | None = None) -> Any:
    registry = HandlerRegistry()
    register_builtins(registry, settings or Settings())
    registered = registry.get(job_type)
    assert registered is not None and registered.is_async
    return await registered.fn(make_job(job_type, payload))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_registers_every_builtin() -> None:
    registry = HandlerRegistry()
    register_builtins(registry, Settings())
    assert registry.types() == ["email", "fail", "logger", "noop", "sleep", "webhook"]


# --- noop, logger, sleep, fail ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_noop() -> None:
    assert await run("noop", {"anything": 1}) is None


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.asyncio
async def test_logger_logs_payload_at_info() -> None:
    log = logging.getLogger("gotaskq.jobs")
    handler, old_level = ListHandler(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        assert await run("logger", {"hello": "world"}) is None
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    [record] = handler.records
    assert record.levelno == logging.INFO
    assert '{"hello":"world"}' in record.getMessage()
    assert {k: record.__dict__[k] for k in ("job_id", "queue", "job_type")} == {
        "job_id": "1",
        "queue": "default",
        "job_type": "logger",
    }


@pytest.mark.asyncio
@pytest.mark.parametrize("seconds", [0, 0.01])
async def test_sleep(seconds: float) -> None:
    start = time.monotonic()
    assert await run("sleep", {"seconds": seconds}) is None
    assert time.monotonic() - start >= seconds


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "payload",
    [
        {"seconds": -1},
        {"seconds": 3601},
        {"seconds": "5"},
        {"seconds": True},
        {},
        [1],
        None,
        {"seconds": float("nan")},
    ],
)
async def test_sleep_rejects_bad_seconds(payload: Any) -> None:
    with pytest.raises(ValueError, match="sleep job"):
        await run("sleep", payload)


@pytest.mark.asyncio
async def test_fail_always_raises() -> None:
    with pytest.raises(RuntimeError, match=r"^fail job: always fails$"):
        await run("fail", None)


# --- webhook ---------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class WebhookServer:
    base: str
    received: list[Received] = field(default_factory=list)
    release_slow: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    """A real HTTP server on 127.0.0.1: /ok 200, /created 201, /fail 500, /moved 302, /slow hangs."""
    srv_state = WebhookServer(base="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = orjson.loads(self.rfile.read(length)) if length else None
            srv_state.received.append(Received(self.path, dict(self.headers.items()), body))
            if self.path == "/slow":
                srv_state.release_slow.wait(WAIT_S)
            status = {"/ok": 200, "/created": 201, "/fail": 500, "/moved": 302}.get(self.path, 404)
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv_state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv_state
    finally:
        srv_state.release_slow.set()
        server.shutdown()
        server.server_close()
        thread.join(WAIT_S)


@pytest.mark.asyncio
async def test_webhook_2xx_posts_whole_payload_by_default(webhook_server: WebhookServer) -> None:
    payload = {"url": webhook_server.base + "/ok", "event": "signup", "n": 1}
    assert await run("webhook", payload) == {"status": 200}
    [req] = webhook_server.received
    assert req.path == "/ok"
    assert req.body == payload
    assert req.headers["Content-Type"] == "application/json"


@pytest.mark.asyncio
async def test_webhook_sends_body_and_headers(webhook_server: WebhookServer) -> None:
    payload = {
        "url": webhook_server.base + "/created",
        "body": [1, "two", {"three": None}],
        "headers": {"X-Signature": "abc"},
        "timeout": 5,
    }
    assert await run("webhook", payload) == {"status": 201}
    [req] = webhook_server.received
    assert req.body == [1, "two", {"three": None}]
    assert req.headers["X-Signature"] == "abc"


@pytest.mark.asyncio
async def test_webhook_500_fails_naming_the_status(webhook_server: WebhookServer) -> None:
    with pytest.raises(RuntimeError, match="HTTP 500"):
        await run("webhook", {"url": webhook_server.base + "/fail"})
    assert len(webhook_server.received) == 1


@pytest.mark.asyncio
async def test_webhook_does_not_follow_redirects(webhook_server: WebhookServer) -> None:
    with pytest.raises(RuntimeError, match="HTTP 302"):
        await run("webhook", {"url": webhook_server.base + "/moved"})
    assert [r.path for r in webhook_server.received] == ["/moved"]


@pytest.mark.asyncio
async def test_webhook_timeout(webhook_server: WebhookServer) -> None:
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"timed out|ReadTimeout"):
        await run("webhook", {"url": webhook_server.base + "/slow", "timeout": 0.2})
    assert time.monotonic() - start < WAIT_S


@pytest.mark.asyncio
async def test_webhook_connection_refused() -> None:
    with pytest.raises(RuntimeError, match=r"^webhook job: POST 127\.0\.0\.1 failed"):
        await run("webhook", {"url": f"http://127.0.0.1:{free_port()}/", "timeout": WAIT_S})


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "payload",
    [
        {"url": "ftp://127.0.0.1/x"},
        {"url": "file:///etc/passwd"},
        {"url": "not a url"},
        {"url": "http://"},
        {"url": 5},
        {},
        "http://127.0.0.1/",
        {"url": "http://127.0.0.1/", "timeout": 31},
        {"url": "http://127.0.0.1/", "timeout": 0},
        {"url": "http://127.0.0.1/", "headers": {"X-N": 1}},
        {"url": "http://127.0.0.1/", "headers": ["X-N: 1"]},
    ],
)
async def test_webhook_rejects_bad_payload(payload: Any) -> None:
    with pytest.raises(ValueError, match="webhook job"):
        await run("webhook", payload)


# --- email -----------------------------------------------------------------------------------


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    def settings(self, **kw: Any) -> Settings:
        return Settings(smtp_host="127.0.0.1", smtp_port=self.port, **kw)


class MailboxHandler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("nobody@"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.box.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def start_mailbox(**smtp_kw: Any) -> tuple[Mailbox, Controller]:
    box = Mailbox(port=free_port())
    controller = Controller(MailboxHandler(box), hostname="127.0.0.1", port=box.port, ready_timeout=WAIT_S, **smtp_kw)
    controller.start()
    return box, controller


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box, controller = start_mailbox()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def auth_mailbox() -> Iterator[Mailbox]:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        # handled=False: aiosmtpd then answers 535 itself instead of leaving the client waiting
        return AuthResult(success=data.password == b"s3cret", handled=False)

    box, controller = start_mailbox(authenticator=authenticator, auth_require_tls=False)
    box.logins = logins
    try:
        yield box
    finally:
        controller.stop()


@pytest.mark.asyncio
async def test_email_is_delivered(mailbox: Mailbox) -> None:
    payload = {"to": "alice@example.test", "subject": "Hello", "body": "Hi Alice,\nwelcome."}
    result = await run("email", payload, mailbox.settings(smtp_from="robot@example.test"))
    assert result == {"sent_to": ["alice@example.test"]}
    [(mail_from, rcpt_tos, content)] = mailbox.messages
    assert mail_from == "robot@example.test"
    assert rcpt_tos == ["alice@example.test"]
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert msg["Subject"] == "Hello"
    assert msg["To"] == "alice@example.test"
    text = msg.get_content()
    assert text.replace("\r\n", "\n").strip() == "Hi Alice,\nwelcome."


@pytest.mark.asyncio
async def test_email_list_message_alias_from_and_refused(mailbox: Mailbox) -> None:
    payload = {
        "to": ["a@example.test", "nobody@example.test", "b@example.test"],
        "subject": "Report",
        "message": "see attached",
        "from": "reports@example.test",
    }
    result = await run("email", payload, mailbox.settings())
    assert result == {"sent_to": ["a@example.test", "b@example.test"]}
    [(mail_from, rcpt_tos, content)] = mailbox.messages
    assert mail_from == "reports@example.test"
    assert rcpt_tos == ["a@example.test", "b@example.test"]
    assert b"see attached" in content


@pytest.mark.asyncio
async def test_email_logs_in_when_user_is_set(auth_mailbox: Mailbox) -> None:
    settings = auth_mailbox.settings(smtp_user="bot", smtp_password="s3cret")
    payload = {"to": "c@example.test", "subject": "s", "body": "b"}
    assert await run("email", payload, settings) == {"sent_to": ["c@example.test"]}
    assert auth_mailbox.logins == [(b"bot", b"s3cret")]
    assert len(auth_mailbox.messages) == 1


@pytest.mark.asyncio
async def test_email_wrong_password_fails(auth_mailbox: Mailbox) -> None:
    settings = auth_mailbox.settings(smtp_user="bot", smtp_password="wrong")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        await run("email", {"to": "c@example.test", "subject": "s", "body": "b"}, settings)
    assert auth_mailbox.messages == []


@pytest.mark.asyncio
async def test_email_without_smtp_host_raises() -> None:
    with pytest.raises(RuntimeError, match=r"^email handler: SMTP_HOST is not configured$"):
        await run("email", {"to": "a@example.test", "subject": "s", "body": "b"}, Settings())


@pytest.mark.asyncio
async def test_other_handlers_work_without_smtp_host() -> None:
    assert await run("noop", None, Settings()) is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "payload",
    [
        {"subject": "s", "body": "b"},
        {"to": [], "subject": "s", "body": "b"},
        {"to": ["a@example.test", 3], "subject": "s", "body": "b"},
        {"to": "a@example.test", "body": "b"},
        {"to": "a@example.test", "subject": "s"},
        {"to": "a@example.test", "subject": "s\nBcc: evil@example.test", "body": "b"},
        {"to": "a@example.test\r\nBcc: evil@example.test", "subject": "s", "body": "b"},
        {"to": "a@example.test", "subject": "s", "body": "b", "from": ""},
        "not an object",
    ],
)
async def test_email_rejects_bad_payload(mailbox: Mailbox, payload: Any) -> None:
    with pytest.raises(ValueError, match="email job"):
        await run("email", payload, mailbox.settings())
    assert mailbox.messages == []
