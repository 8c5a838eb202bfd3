"""The worker registry over HTTP: every live worker process, what it serves and runs now."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .auth import Area
from .responses import JSONResponse
from .routing import route
from .state import gotaskq_app


async def list_workers(request: Request) -> Response:
    return JSONResponse({"workers": await gotaskq_app(request).backend.list_workers()})


routes = [route("/workers", Area.ADMIN, {"GET": list_workers})]
