"""The HTTP protocol the server runs (gotaskq.http_protocol): each response's head and body in
one write, through a real uvicorn server on loopback and on a recording transport."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
import uvicorn

from gotaskq import cli_run
from gotaskq.api import create_app
from gotaskq.app import App
from gotaskq.config import Settings
from gotaskq.http_protocol import JoinedWrites, OneWriteHttpToolsProtocol

HEAD = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n"


class Recording:
    """A transport that records what is sent, as one entry per write call."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def writelines(self, parts: Any) -> None:
        self.sent.append(b"".join(parts))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.sent.append(b"<close>")
        self.closed = True

    def write_eof(self) -> None:
        self.sent.append(b"<eof>")

    def abort(self) -> None:
        self.sent.append(b"<abort>")
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else default


def joined() -> tuple[Recording, JoinedWrites]:
    rec = Recording()
    return rec, JoinedWrites(rec, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_a_head_and_the_body_sent_in_the_same_step_leave_in_one_write() -> None:
    rec, t = joined()
    t.write(HEAD)
    assert rec.sent == []
    t.write(b"{}")
    assert rec.sent == [HEAD + b"{}"]
    await asyncio.sleep(0)
    assert rec.sent == [HEAD + b"{}"]  # the end of the step finds nothing held


async def test_a_head_without_its_body_in_that_step_leaves_at_the_end_of_the_step() -> None:
    rec, t = joined()
    t.write(HEAD)
    await asyncio.sleep(0)
    assert rec.sent == [HEAD]
    t.write(b"{}")  # a streamed body, later
    assert rec.sent == [HEAD, b"{}"]


async def test_a_held_head_is_a_copy_of_what_the_caller_passed() -> None:
    rec, t = joined()
    head = bytearray(HEAD)
    t.write(head)  # type: ignore[arg-type]
    head[:4] = b"XXXX"  # the caller reuses its buffer within the step
    await asyncio.sleep(0)
    assert rec.sent == [HEAD]


async def test_other_writes_leave_at_once() -> None:
    rec, t = joined()
    t.write(b"5\r\nhello\r\n")
    assert rec.sent == [b"5\r\nhello\r\n"]


async def test_a_close_sends_a_held_head_first_and_a_gone_client_gets_nothing() -> None:
    rec, t = joined()
    t.write(HEAD)
    t.close()
    assert rec.sent == [HEAD, b"<close>"]
    assert t.is_closing()

    rec, t = joined()
    t.write(HEAD)
    rec.closed = True  # the connection was lost before the step ended
    await asyncio.sleep(0)
    assert rec.sent == []
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's


async def test_whatever_else_reaches_the_transport_sends_a_held_head_first() -> None:
    rec, t = joined()
    t.write(HEAD)
    t.writelines([b"a", b"b"])
    t.write(HEAD)
    t.write_eof()
    assert rec.sent == [HEAD + b"ab", HEAD, b"<eof>"]
    rec, t = joined()
    t.write(HEAD)
    t.abort()  # an abort discards what is buffered
    await asyncio.sleep(0)
    assert rec.sent == [b"<abort>"]


class _Counted(OneWriteHttpToolsProtocol):
    """Records each write call that reaches the connection's real transport."""

    writes: list[bytes] = []

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        real = transport

        class Spy:
            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            def write(self, data: bytes) -> None:
                _Counted.writes.append(bytes(data))
                real.write(data)

            def writelines(self, parts: Any) -> None:
                _Counted.writes.append(b"".join(parts))
                real.writelines(parts)

        super().connection_made(Spy())  # type: ignore[arg-type]


async def _lifespan(receive: Any, send: Any) -> None:
    """The lifespan protocol of a bare ASGI app: start, then wait for the shutdown."""
    while (await receive())["type"] != "lifespan.shutdown":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def _serve(asgi: Any, run: Any) -> Any:
    config = uvicorn.Config(asgi, host="127.0.0.1", port=0, lifespan="on", log_config=None, http=_Counted)
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        return await run(port)
    finally:
        await server.shutdown()


async def _exchange(port: int, request: bytes, responses: int) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        out = []
        for _ in range(responses):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
            out.append(head + await asyncio.wait_for(reader.readexactly(length), 10))
        return out
    finally:
        writer.close()


async def test_post_jobs_through_uvicorn_answers_each_response_in_one_write() -> None:
    _Counted.writes = []
    body = b'{"type":"noop","payload":{"n":1}}'
    one = b"POST /jobs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    app = App(Settings(num_workers=0))
    got = await _serve(create_app(app), lambda port: _exchange(port, one + one, 2))  # keep-alive, pipelined
    assert [r.split(b"\r\n", 1)[0] for r in got] == [b"HTTP/1.1 201 Created"] * 2
    assert all(b'"payload":{"n":1}' in r for r in got)
    assert _Counted.writes == got  # each response, head and body, was one write

    _Counted.writes = []
    got = await _serve(create_app(app), lambda port: _head(port, b"HEAD /healthz HTTP/1.1\r\nhost: x\r\n\r\n"))
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\n")
    assert _Counted.writes == [got]  # a head with no body to wait for leaves at the end of its step


async def _head(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()


async def test_a_streamed_response_through_uvicorn_is_whole_and_in_order() -> None:
    _Counted.writes = []

    async def streamed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]})
        await asyncio.sleep(0.01)  # the body comes steps later: the head went out alone
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def"})

    got = await _serve(streamed, lambda port: _exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", 1))
    assert got[0].startswith(b"HTTP/1.1 200 OK\r\n") and got[0].endswith(b"\r\n\r\nabcdef")
    assert len(_Counted.writes) == 3 and b"".join(_Counted.writes) == got[0]


def test_the_server_runs_the_one_write_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    class Fake:
        def __init__(self, config: uvicorn.Config, app: Any) -> None:
            seen.append(config.http)

        def run(self) -> None:
            pass

    monkeypatch.setattr(cli_run, "Server", Fake)
    monkeypatch.setattr(cli_run, "leave_job_threads", lambda code: None)
    cli_run.run_server(object(), object(), Settings(num_workers=0))
    assert seen == [OneWriteHttpToolsProtocol]


def test_a_held_last_chunk_reaches_a_client_that_half_closes_on_uvloop() -> None:
    """uvloop closes the transport on a client's EOF, before the loop's next pass would send a
    held write: the chunked body's last chunk (it ends with a blank line) went missing."""
    import socket
    import threading

    import uvloop

    held, eof_sent = threading.Event(), threading.Event()

    async def chunked(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})  # chunked
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b""})  # b"0\r\n\r\n", held
        held.set()
        eof_sent.wait(10)  # the client's FIN is queued before this step ends

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            assert held.wait(10)
            s.shutdown(socket.SHUT_WR)
            eof_sent.set()
            got = b""
            while chunk := s.recv(4096):
                got += chunk
            return got

    async def main() -> bytes:
        return cast(
            bytes,
            await _serve(chunked, lambda port: asyncio.get_running_loop().run_in_executor(None, client, port)),
        )

    got = uvloop.run(main())
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"3\r\nabc\r\n0\r\n\r\n")
