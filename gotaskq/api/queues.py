"""Queue routes: create, list, inspect, configure, pause, resume, purge and delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from . import params
from .auth import Area
from .body import read_json
from .queue_input import NO_BODY, settings_from_json
from .responses import JSONResponse
from .routing import route
from .state import gotaskq_app


async def list_queues(request: Request) -> Response:
    infos = await gotaskq_app(request).list_queues()
    return JSONResponse({"queues": [i.to_dict() for i in infos]})


async def _settings_body(request: Request) -> object:
    """The settings body, or NO_BODY when there is none (a bare POST creates with defaults)."""
    app = gotaskq_app(request)
    if request.headers.get("content-length") in (None, "0") and "transfer-encoding" not in request.headers:
        return NO_BODY
    return await read_json(request, app.settings.max_body_bytes)


async def create_queue(request: Request) -> Response:
    app = gotaskq_app(request)
    name = params.path_queue(request)
    settings = settings_from_json(await _settings_body(request))
    created = await app.create_queue(name)
    info = await app.configure_queue(name, settings)
    return JSONResponse(info.to_dict(), status_code=201 if created else 200)


async def patch_queue(request: Request) -> Response:
    app = gotaskq_app(request)
    name = params.path_queue(request)
    settings = settings_from_json(await read_json(request, app.settings.max_body_bytes))
    return JSONResponse((await app.configure_queue(name, settings)).to_dict())


async def purge_queue(request: Request) -> Response:
    purged = await gotaskq_app(request).purge_queue(params.path_queue(request))
    return JSONResponse({"purged": purged})


async def delete_queue(request: Request) -> Response:
    await gotaskq_app(request).delete_queue(params.path_queue(request))
    return Response(status_code=204)


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
    route(
        "/queue/{name}",
        Area.ADMIN,
        {"GET": get_queue, "POST": create_queue, "PATCH": patch_queue, "DELETE": delete_queue},
    ),
    route("/queue/{name}/purge", Area.ADMIN, {"POST": purge_queue}),
    route("/queue/{name}/pause", Area.ADMIN, {"POST": pause_queue}),
    route("/queue/{name}/resume", Area.ADMIN, {"POST": resume_queue}),
]
