"""Operational routes, open without a token: liveness, readiness, metrics, the OpenAPI document."""

from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from .openapi import openapi_document
from .responses import JSONResponse, error_response
from .routing import route
from .state import gotaskq_app

log = logging.getLogger("gotaskq.api")


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await gotaskq_app(request).backend.ping()
    except Exception as exc:
        # Whatever the store raised, the answer to "can I take traffic?" is no.
        log.warning("not ready: %s", exc)
        return error_response(503, "backend_unavailable", "the job store cannot be reached")
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    app = gotaskq_app(request)
    await app.metrics.refresh(app.backend)
    return Response(app.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


routes = [
    route("/healthz", None, {"GET": healthz}),
    route("/readyz", None, {"GET": readyz}),
    route("/metrics", None, {"GET": metrics}),
    route("/openapi.json", None, {"GET": openapi}),
]
