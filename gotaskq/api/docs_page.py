"""The API reference page (``/docs``) and the ``/`` redirect to the admin UI.

The page is static HTML + JavaScript (``gotaskq/docs_static``) that renders ``/openapi.json``
in the browser: no CDN and no build step, under the admin UI's strict CSP (it builds the DOM
from text only). These routes are not part of the API, so they stay out of ``/openapi.json``.
"""

from __future__ import annotations

from importlib import resources
from types import MappingProxyType

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .admin import SECURITY_HEADERS
from .responses import error_response
from .routing import route

STATIC_PACKAGE = "gotaskq"
STATIC_DIR = "docs_static"
# The only files /docs/static/ serves: a fixed table, so no request can name another file.
ASSETS = MappingProxyType(
    {
        "index.html": "text/html; charset=utf-8",
        "docs.js": "text/javascript; charset=utf-8",
        "docs.css": "text/css; charset=utf-8",
    }
)


def asset(name: str) -> bytes:
    """The bytes of one shipped docs asset (read from the installed package, wheel or source tree)."""
    return resources.files(STATIC_PACKAGE).joinpath(STATIC_DIR, name).read_bytes()


def _secured(body: bytes, media_type: str) -> Response:
    return Response(body, headers=dict(SECURITY_HEADERS), media_type=media_type)


async def home(request: Request) -> Response:
    # Under a path prefix (root_path, e.g. behind a proxy) the admin UI is under it too.
    return RedirectResponse(request.scope.get("root_path", "") + "/admin", status_code=307)


async def docs(request: Request) -> Response:
    return _secured(asset("index.html"), ASSETS["index.html"])


async def docs_static(request: Request) -> Response:
    name: str = request.path_params["file"]
    media_type = ASSETS.get(name)
    if media_type is None:
        return error_response(404, "not_found", "no such docs asset", headers=SECURITY_HEADERS)
    return _secured(asset(name), media_type)


def docs_routes() -> list[Route]:
    """``/``, ``/docs`` and its assets: open, and left out of the OpenAPI document."""
    routes = [
        route("/", None, {"GET": home}),
        route("/docs", None, {"GET": docs}),
        route("/docs/static/{file}", None, {"GET": docs_static}),
    ]
    for r in routes:
        r.include_in_schema = False
    return routes
