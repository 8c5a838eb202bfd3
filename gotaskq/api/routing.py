"""One Route per path, dispatching on the method, so a 405 lists every allowed method."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from .auth import Area, Endpoint, guarded


class LiteralRoute(Route):
    """A path without parameters owns it for every method: ``GET /jobs/batch`` is a 405 listing
    POST, not a ``GET /jobs/{id}`` with id "batch". (Starlette keeps looking after a path that
    matches with the wrong method, and a later ``{id}`` route would take the request.)"""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        return (Match.FULL if match is Match.PARTIAL else match), child


def route(path: str, area: Area | None, handlers: dict[str, Endpoint]) -> Route:
    """A Route for ``path`` calling ``handlers[method]``, behind ``area``'s token when given."""
    table = {m: guarded(area, fn) if area else fn for m, fn in handlers.items()}
    if "GET" in table:
        table["HEAD"] = table["GET"]

    async def dispatch(request: Request) -> Response:
        return await table[request.method](request)

    name = "_".join(fn.__name__ for fn in handlers.values())
    kind = Route if "{" in path else LiteralRoute
    return kind(path, dispatch, methods=list(handlers), name=name)
