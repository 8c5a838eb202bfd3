"""The HTTP protocol of `gotaskq serve` and `gotaskq api`: uvicorn's httptools protocol, with
a response's head and its body sent in one write.

uvicorn writes the head (status line and headers) when the app sends ``http.response.start``
and the body when it sends ``http.response.body``: two write syscalls, two TCP segments, two
reads for the client. On loopback each write cost the API ~2.6 us of CPU (perf, under
``hey -c 50`` POST /jobs: 13.6 % of its samples were in write). Here a head waits for the body
sent in the same event-loop step, and both leave in one ``writelines``; a head whose body does
not follow in that step (a streamed response) leaves at the end of the step. aiohttp coalesces
a small response's head and body the same way (aio-libs/aiohttp#10991).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # httptools: a dependency

# What uvicorn's head write ends with (the blank line after the headers). A body that happens
# to end so is held to the end of the step too: later by microseconds, never lost or reordered.
HEAD_END = b"\r\n\r\n"


class JoinedWrites:
    """The transport one connection's requests write to (uvicorn's RequestResponseCycle): a
    head is held until the next write, which takes it along, or until the loop step ends."""

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

    def release(self) -> None:
        """Send a held head now (the end of its loop step, or a close)."""
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

    def __getattr__(self, name: str) -> Any:  # the rest of the transport, as it is
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; its requests write through JoinedWrites."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # flow control keeps the transport itself
        self.transport = JoinedWrites(transport, self.loop)  # type: ignore[assignment]
