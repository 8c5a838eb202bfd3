"""The admin web UI: its page, static assets and config, and the JSON routes only it needs
(job listings with filters, bulk actions, run now).

The UI is plain JavaScript over the JSON API (``gotaskq/admin_static``). It authenticates
with a Bearer header from JavaScript, never a cookie, so there is no CSRF to defend against;
the ``/admin`` responses carry a strict CSP (no inline script or style) and anti-framing headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from ..errors import InvalidInput
from ..states import JobStatus
from . import admin_bulk, admin_search, params
from .auth import Area
from .responses import JSONResponse, error_response
from .routing import route
from .state import gotaskq_app

STATIC_PACKAGE = "gotaskq"
STATIC_DIR = "admin_static"
# The only files /admin/static/ serves: a fixed table, so no request can name another file.
ASSETS = MappingProxyType(
    {
        "index.html": "text/html; charset=utf-8",
        "app.js": "text/javascript; charset=utf-8",
        "app.css": "text/css; charset=utf-8",
        "favicon.svg": "image/svg+xml",
        "dom.js": "text/javascript; charset=utf-8",
        "chart.js": "text/javascript; charset=utf-8",
        "jobs.js": "text/javascript; charset=utf-8",
        "pages.js": "text/javascript; charset=utf-8",
    }
)
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        # Chromium then refuses every HTML string sink (innerHTML & co.): text only, by construction.
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
SECURITY_HEADERS = MappingProxyType(
    {
        "Content-Security-Policy": CSP,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }
)
LISTABLE = MappingProxyType(
    {
        s.value.lower(): s
        for s in (JobStatus.PENDING, JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.DEAD, JobStatus.DONE)
    }
)
DEFAULT_STATS_MINUTES = 15
MAX_STATS_MINUTES = 1440  # the backends keep 25 h of per-minute stats
_DIGITS = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True, slots=True)
class AssetFolder:
    """A fixed table of files shipped under ``gotaskq/<folder>`` (so no request can name another
    file), served with SECURITY_HEADERS: the admin UI's, and the API reference's (docs_page)."""

    folder: str
    media_types: Mapping[str, str]
    what: str  # named in the 404

    def read(self, name: str) -> bytes:
        """The bytes of one asset (read from the installed package, wheel or source tree)."""
        return resources.files(STATIC_PACKAGE).joinpath(self.folder, name).read_bytes()

    def _secured(self, name: str) -> Response:
        return Response(self.read(name), headers=dict(SECURITY_HEADERS), media_type=self.media_types[name])

    async def index(self, request: Request) -> Response:
        return self._secured("index.html")

    async def static(self, request: Request) -> Response:
        name: str = request.path_params["file"]
        if name not in self.media_types:
            return error_response(404, "not_found", f"no such {self.what} asset", headers=SECURITY_HEADERS)
        return self._secured(name)


UI = AssetFolder(STATIC_DIR, ASSETS, "admin")
asset = UI.read


async def ui_config(request: Request) -> Response:
    settings = gotaskq_app(request).settings
    body = {"auth_required": bool(settings.admin_token), "readonly": settings.admin_readonly}
    return JSONResponse(body, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})


def _state(request: Request, default: str = "pending") -> JobStatus:
    raw = request.query_params.get("state") or default
    status = LISTABLE.get(raw.lower())
    if status is None:
        raise InvalidInput("unknown state", {"state": f"must be one of {', '.join(LISTABLE)}"})
    return status


def _minutes(request: Request) -> int:
    raw = request.query_params.get("minutes")
    if raw is None or raw == "":
        return DEFAULT_STATS_MINUTES
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_STATS_MINUTES:
        raise InvalidInput("invalid minutes", {"minutes": f"must be an integer from 1 to {MAX_STATS_MINUTES}"})
    return int(raw)


async def queue_jobs(request: Request) -> Response:
    """``GET /queue/{name}/jobs?state=&limit=&cursor=&type=&error=&id=&retried=``: one state
    of a queue, newest first; with a filter, the matches among the next SCAN_BUDGET jobs."""
    name = params.path_queue(request)
    status, limit, cursor = _state(request), params.limit(request), params.cursor(request)
    where = admin_search.filter_from_query(request)
    app = gotaskq_app(request)
    if where.empty:
        page = await app.list_jobs(name, status, limit, cursor)
        return JSONResponse({"jobs": [j.to_dict() for j in page.jobs], "next_cursor": page.next_cursor})
    return JSONResponse((await admin_search.scan(app, name, status, where, limit, cursor)).to_dict())


async def search_jobs(request: Request) -> Response:
    """``GET /admin/jobs?queue=&state=dead&...``: as above, across every queue when queue is absent."""
    queue = params.optional_queue(request)
    status, limit, cursor = _state(request, "dead"), params.limit(request), params.cursor(request)
    where = admin_search.filter_from_query(request)
    return JSONResponse((await admin_search.scan(gotaskq_app(request), queue, status, where, limit, cursor)).to_dict())


async def run_now(request: Request) -> Response:
    """``POST /jobs/{id}/run-now``: a SCHEDULED job (a delayed job or a retry) PENDING now."""
    job = await gotaskq_app(request).run_now(params.job_id(request))
    return JSONResponse(job.to_dict())


async def queue_stats(request: Request) -> Response:
    """``GET /queue/{name}/stats?minutes=15``: finished attempts per minute, oldest first."""
    name = params.path_queue(request)
    rows = await gotaskq_app(request).queue_stats(name, _minutes(request))
    return JSONResponse({"queue": name, "minutes": [r.to_dict() for r in rows]})


def admin_routes() -> list[BaseRoute]:
    """The UI (open: it asks for the token itself) and its JSON routes (behind ADMIN_TOKEN)."""
    return [
        route("/admin", None, {"GET": UI.index}),
        route("/admin/", None, {"GET": UI.index}),
        route("/admin/config.json", None, {"GET": ui_config}),
        route("/admin/static/{file}", None, {"GET": UI.static}),
        route("/queue/{name}/jobs", Area.ADMIN, {"GET": queue_jobs}),
        route("/queue/{name}/stats", Area.ADMIN, {"GET": queue_stats}),
        route("/admin/jobs", Area.ADMIN, {"GET": search_jobs}),
        route("/admin/bulk", Area.ADMIN, {"POST": admin_bulk.bulk}),
        route("/jobs/{id}/run-now", Area.ADMIN, {"POST": run_now}),
    ]
