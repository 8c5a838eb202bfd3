"""How every failure becomes a JSON error: the exception → status table and the handlers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from ..errors import (
    BackendUnavailable,
    GotaskqError,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    QueueBusy,
    QueueFull,
    QueueNotExternal,
    QueueNotFound,
    ScheduleNotFound,
    StaleLease,
)
from .responses import error_response

log = logging.getLogger("gotaskq.api")


class ApiError(Exception):
    """An HTTP-level refusal with its status and error code (bad JSON, too large, auth)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers


def invalid_json(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message)


STATUS: dict[type[GotaskqError], tuple[int, str]] = {
    InvalidInput: (422, "validation_error"),
    QueueNotFound: (404, "queue_not_found"),
    JobNotFound: (404, "job_not_found"),
    InvalidTransition: (409, "invalid_state"),
    IdempotencyConflict: (409, "idempotency_conflict"),
    QueueFull: (429, "queue_full"),
    QueueBusy: (409, "queue_busy"),
    QueueNotExternal: (409, "queue_not_external"),
    StaleLease: (409, "lease_lost"),
    ScheduleNotFound: (404, "schedule_not_found"),
    BackendUnavailable: (503, "backend_unavailable"),
}
HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def _lookup(exc: GotaskqError) -> tuple[int, str] | None:
    for cls, found in STATUS.items():
        if isinstance(exc, cls):
            return found
    return None


def gotaskq_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GotaskqError)
    found = _lookup(exc)
    if found is None:
        return internal_error(request, exc)
    status, code = found
    message = str(exc)
    fields: Mapping[str, str] | None = None
    headers: dict[str, str] | None = None
    if isinstance(exc, InvalidInput):
        fields = exc.fields
    elif isinstance(exc, InvalidTransition) and exc.status and exc.status not in message:
        message = f"{message} (status {exc.status})"
    elif isinstance(exc, IdempotencyConflict) and exc.job_id:
        message = f"{message} (job {exc.job_id})"
    elif isinstance(exc, QueueFull):
        headers = {"Retry-After": "1"}
    return error_response(status, code, message, fields, headers)


def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers)


def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, exc.detail, headers=exc.headers)


def backend_down(request: Request, exc: Exception) -> Response:
    # A store that was not wrapped into BackendUnavailable is still an outage, not a bug.
    log.warning("backend unreachable: %s", exc)
    return error_response(503, "backend_unavailable", "the job store cannot be reached")


def internal_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal server error")


HANDLERS: dict[type[Exception], Callable[[Request, Exception], Response]] = {
    GotaskqError: gotaskq_error,
    ApiError: api_error,
    HTTPException: http_error,
    RedisConnectionError: backend_down,
    RedisTimeoutError: backend_down,
}
EXCEPTION_HANDLERS: dict[type[Exception], ExceptionHandler] = dict(HANDLERS)


def response_for(request: Request, exc: Exception) -> Response:
    """What Starlette's handlers (and CatchAll) would answer for ``exc``: for raw ASGI routes."""
    for cls in type(exc).__mro__:
        handler = HANDLERS.get(cls)
        if handler is not None:
            return handler(request, exc)
    return internal_error(request, exc)


class CatchAll:
    """Any other exception → 500 ``internal``, logged once.

    Starlette's own ``Exception`` handler re-raises after responding, so the server logs the
    error a second time; this middleware answers and stops there.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            response = internal_error(Request(scope), exc)
            await response(scope, receive, send)
