"""Request bodies: read at most MAX_BODY_BYTES from the stream, then parse them as JSON."""

from __future__ import annotations

import json
import math

import orjson
from starlette.requests import Request
from starlette.types import Receive

from .errors import ApiError, invalid_json

MAX_INT_DIGITS = 400  # beyond any float: no need to run int() on it


class OutOfRange:
    """Stands for a JSON number no float or 64-bit integer can hold; it fails every type check."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "OutOfRange"


OUT_OF_RANGE = OutOfRange()


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is larger than {limit} bytes")


async def read_body(receive: Receive, content_length: str | None, limit: int) -> bytes:
    """The body from the ASGI ``receive``, refusing with 413 as soon as the declared or
    streamed size passes ``limit``."""
    if content_length is not None and content_length.isascii() and content_length.isdigit():
        if len(content_length) > 18 or int(content_length) > limit:
            raise too_large(limit)
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the whole body in one message: most requests
        if len(body) > limit:
            raise too_large(limit)
        return body
    buf = bytearray()
    while True:
        if message["type"] == "http.disconnect":
            raise ApiError(400, "client_disconnected", "the client went away mid-body")
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            # A Content-Length may lie (or be absent when chunked): count what really arrives.
            if len(buf) + len(chunk) > limit:
                raise too_large(limit)
            buf += chunk
            if not message.get("more_body", False):
                return bytes(buf)
        message = await receive()


async def read_json(request: Request, limit: int) -> object:
    return parse_json(await read_body(request.receive, request.headers.get("content-length"), limit))


def parse_json(raw: bytes) -> object:
    """Parse with orjson; NaN, Infinity, invalid UTF-8 and nesting past 1024 are 400s.

    orjson refuses numbers beyond a double as malformed; those are re-read with the stdlib
    parser as ``OUT_OF_RANGE`` so that, e.g., a 5000-digit priority is a 422 naming the field.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "number" not in str(exc):
            raise invalid_json(f"malformed JSON: {exc}") from None
        return _parse_out_of_range(raw, str(exc))


def _parse_out_of_range(raw: bytes, reason: str) -> object:
    try:
        value = json.loads(raw.decode("utf-8"), parse_int=_int, parse_float=_float, parse_constant=_no_constant)
        # The stdlib accepts lone surrogate escapes that orjson (and our responses) cannot carry.
        orjson.dumps(value, default=_null)
    except (ValueError, RecursionError, orjson.JSONEncodeError):
        raise invalid_json(f"malformed JSON: {reason}") from None
    return value


def _int(text: str) -> int | float | OutOfRange:
    if len(text) > MAX_INT_DIGITS:
        return OUT_OF_RANGE
    n = int(text)
    if -(2**63) <= n < 2**64:
        return n
    try:
        return float(n)  # as orjson reads it: an integer beyond 64 bits becomes a float
    except OverflowError:
        return OUT_OF_RANGE


def _float(text: str) -> float | OutOfRange:
    f = float(text)
    return f if math.isfinite(f) else OUT_OF_RANGE


def _no_constant(text: str) -> object:
    raise ValueError(f"{text} is not JSON")


def _null(value: object) -> None:
    if isinstance(value, OutOfRange):
        return None
    raise TypeError


def contains_out_of_range(value: object) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, OutOfRange):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False
