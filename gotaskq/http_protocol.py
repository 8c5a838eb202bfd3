"""The HTTP protocol of `gotaskq serve` and `gotaskq api`: uvicorn's httptools protocol, with
a response's head and its body sent in one write.

uvicorn writes the head (status line and headers) when the app sends ``http.response.start``
and the body when it sends ``http.response.body``: two write syscalls, two TCP segments, two
reads for the client. On loopback each write cost the API ~2.6 us of CPU (perf, under
``hey -c 50`` POST /jobs: 13.6 % of its samples were in write). Here a head waits for the body
sent in the same event-loop step, and both leave in one ``writelines``; a head whose body does
not follow in that step (HEAD, a streamed response) leaves on the loop's next pass (call_soon),
or before the connection closes or takes the client's EOF, whichever comes first. aiohttp
likewise holds a small response's headers for its body (aio-libs/aiohttp#10991).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # httptools: a dependency

# What uvicorn's head write ends with (the blank line after the headers). A body that happens
# to end so (a chunked body's last chunk, too) is held the same way: later by microseconds.
HEAD_END = b"\r\n\r\n"


class JoinedWrites:
    """The transport a connection's protocol and its requests (uvicorn's RequestResponseCycle)
    write to: a head is held until the next write, which takes it along, or until the loop's
    next pass. Whatever else reaches the transport sends a held head first."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))  # uvloop: one writev, no copy
        elif data[-4:] == HEAD_END:
            self._held = data if type(data) is bytes else bytes(data)  # kept past the caller's step
            self._loop.call_soon(self.release)
        else:
            self._transport.write(data)

    def writelines(self, parts: Iterable[bytes]) -> None:
        held = self._held
        self._held = None
        self._transport.writelines(parts if held is None else (held, *parts))

    def release(self) -> None:
        """Send a held head now (the loop's next pass, a close, the client's EOF)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():  # the client is gone: nobody to send it to
                self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.release()
        self._transport.close()

    def write_eof(self) -> None:
        self.release()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None  # abort discards what is buffered: a held head is part of that
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # the rest of the transport, as it is
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; its requests write through JoinedWrites."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # flow control keeps the transport itself
        self.joined = JoinedWrites(transport, self.loop)
        self.transport = self.joined  # type: ignore[assignment]

    def eof_received(self) -> None:
        # uvloop closes the transport itself once this returns (a client's half-close), before
        # the loop's next pass would send a held head: send it now.
        self.joined.release()
        super().eof_received()
