"""Queue routes: create, list, inspect, pause and resume."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from . import params
from .auth import Area
from .responses import JSONResponse
from .routing import route
from .state import gotaskq_app


async def list_queues(request: Request) -> Response:
    infos = await gotaskq_app(request).list_queues()
    return JSONResponse({"queues": [i.to_dict() for i in infos]})


async def create_queue(request: Request) -> Response:
    app = gotaskq_app(request)
    name = params.path_queue(request)
    created = await app.create_queue(name)
    return JSONResponse((await app.queue_info(name)).to_dict(), status_code=201 if created else 200)


async def get_queue(request: Request) -> Response:
    info = await gotaskq_app(request).queue_info(params.path_queue(request))
    return JSONResponse(info.to_dict())


async def pause_queue(request: Request) -> Response:
    info = await gotaskq_app(request).pause(params.path_queue(request))
    return JSONResponse(info.to_dict())


async def resume_queue(request: Request) -> Response:
    info = await gotaskq_app(request).resume(params.path_queue(request))
    return JSONResponse(info.to_dict())


routes = [
    route("/queue", Area.ADMIN, {"GET": list_queues}),
    route("/queue/{name}", Area.ADMIN, {"GET": get_queue, "POST": create_queue}),
    route("/queue/{name}/pause", Area.ADMIN, {"POST": pause_queue}),
    route("/queue/{name}/resume", Area.ADMIN, {"POST": resume_queue}),
]
