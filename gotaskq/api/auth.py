"""Bearer-token guards: API_TOKEN for job routes, ADMIN_TOKEN (and ADMIN_READONLY) for the rest."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from enum import Enum

from starlette.requests import Request
from starlette.responses import Response

from ..config import Settings
from .errors import ApiError
from .state import gotaskq_app

Endpoint = Callable[[Request], Awaitable[Response]]
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Area(Enum):
    JOBS = "jobs"
    ADMIN = "admin"
    WORKER = "worker"  # the external worker protocol: WORKER_TOKEN, else API_TOKEN


def guarded(area: Area, endpoint: Endpoint) -> Endpoint:
    """``endpoint`` behind the token of ``area``; admin writes refused when ADMIN_READONLY."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        check(request.headers.get("authorization"), request.method, gotaskq_app(request).settings, area)
        return await endpoint(request)

    return wrapper


def check(authorization: str | None, method: str, settings: Settings, area: Area) -> None:
    """Refuse a request to ``area`` whose Authorization header does not carry its token."""
    if area is Area.WORKER:
        token = settings.worker_token or settings.api_token
    else:
        token = settings.api_token if area is Area.JOBS else settings.admin_token
    # The admin area shows jobs too: the admin token may read them (GET) wherever the UI does.
    admin_reads = area is Area.JOBS and method == "GET" and settings.admin_token
    if admin_reads and bearer_matches(authorization, settings.admin_token or ""):
        return
    if token and not bearer_matches(authorization, token):
        raise ApiError(
            401,
            "unauthorized",
            f"this route needs the {area.value} bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if area is Area.ADMIN and settings.admin_readonly and method in MUTATING:
        raise ApiError(403, "read_only", "the admin API is read-only (ADMIN_READONLY)")


def bearer_matches(header: str | None, token: str) -> bool:
    if header is None:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Starlette decodes headers as latin-1: encoding back gives the bytes the client sent.
    return hmac.compare_digest(given.strip().encode("latin-1"), token.encode("utf-8"))
