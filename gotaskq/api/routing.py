"""One Route per path, dispatching on the method, so a 405 lists every allowed method."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .auth import Area, Endpoint, guarded


def route(path: str, area: Area | None, handlers: dict[str, Endpoint]) -> Route:
    """A Route for ``path`` calling ``handlers[method]``, behind ``area``'s token when given."""
    table = {m: guarded(area, fn) if area else fn for m, fn in handlers.items()}
    if "GET" in table:
        table["HEAD"] = table["GET"]

    async def dispatch(request: Request) -> Response:
        return await table[request.method](request)

    name = "_".join(fn.__name__ for fn in handlers.values())
    return Route(path, dispatch, methods=list(handlers), name=name)
