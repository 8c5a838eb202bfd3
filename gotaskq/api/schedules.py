"""Schedule routes: put (create or replace), get, list, delete (admin area)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidInput
from ..job import QUEUE_NAME_RE
from .auth import Area
from .body import read_json
from .responses import JSONResponse
from .routing import route
from .state import gotaskq_app


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not QUEUE_NAME_RE.fullmatch(name):  # schedule names are like queue names
        raise InvalidInput("schedule names are like queue names", {"name": "1-64 of A-Z a-z 0-9 _ . -"})
    return name


async def list_schedules(request: Request) -> Response:
    schedules = await gotaskq_app(request).list_schedules()
    return JSONResponse({"schedules": [s.to_dict() for s in schedules]})


async def get_schedule(request: Request) -> Response:
    return JSONResponse((await gotaskq_app(request).get_schedule(_name(request))).to_dict())


async def put_schedule(request: Request) -> Response:
    app = gotaskq_app(request)
    name = _name(request)
    schedule, created = await app.put_schedule(name, await read_json(request, app.settings.max_body_bytes))
    return JSONResponse(schedule.to_dict(), status_code=201 if created else 200)


async def delete_schedule(request: Request) -> Response:
    await gotaskq_app(request).delete_schedule(_name(request))
    return Response(status_code=204)


routes = [
    route("/schedules", Area.ADMIN, {"GET": list_schedules}),
    route("/schedules/{name}", Area.ADMIN, {"GET": get_schedule, "PUT": put_schedule, "DELETE": delete_schedule}),
]
