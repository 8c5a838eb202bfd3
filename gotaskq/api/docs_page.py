"""The API reference page (``/docs``) and the ``/`` redirect to the admin UI.

The page is static HTML + JavaScript (``gotaskq/docs_static``) that renders ``/openapi.json``
in the browser: no CDN and no build step, under the admin UI's strict CSP (it builds the DOM
from text only). These routes are not part of the API, so they stay out of ``/openapi.json``.
"""

from __future__ import annotations

from types import MappingProxyType

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .admin import AssetFolder
from .routing import route

# The only files /docs/static/ serves.
ASSETS = MappingProxyType(
    {
        "index.html": "text/html; charset=utf-8",
        "docs.js": "text/javascript; charset=utf-8",
        "docs.css": "text/css; charset=utf-8",
    }
)
DOCS = AssetFolder("docs_static", ASSETS, "docs")
asset = DOCS.read


async def home(request: Request) -> Response:
    # Under a path prefix (root_path, e.g. behind a proxy) the admin UI is under it too.
    return RedirectResponse(request.scope.get("root_path", "") + "/admin", status_code=307)


def docs_routes() -> list[Route]:
    """``/``, ``/docs`` and its assets: open, and left out of the OpenAPI document."""
    routes = [
        route("/", None, {"GET": home}),
        route("/docs", None, {"GET": DOCS.index}),
        route("/docs/static/{file}", None, {"GET": DOCS.static}),
    ]
    for r in routes:
        r.include_in_schema = False
    return routes
