"""Dead-letter queue routes: list, inspect, replay and delete dead jobs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..errors import JobNotFound
from ..states import JobStatus
from . import params
from .auth import Area
from .responses import JSONResponse
from .routing import route
from .state import gotaskq_app


async def list_dead(request: Request) -> Response:
    queue = params.optional_queue(request)
    page = await gotaskq_app(request).dlq_list(queue, params.limit(request), params.cursor(request))
    return JSONResponse({"jobs": [j.to_dict() for j in page.jobs], "next_cursor": page.next_cursor})


async def get_dead(request: Request) -> Response:
    job = await gotaskq_app(request).get_job(params.job_id(request))
    if job is None or job.status is not JobStatus.DEAD:
        raise JobNotFound("no dead job with this id")
    return JSONResponse(job.to_dict())


async def replay_dead(request: Request) -> Response:
    job = await gotaskq_app(request).dlq_replay(params.job_id(request))
    return JSONResponse(job.to_dict())


async def delete_dead(request: Request) -> Response:
    await gotaskq_app(request).dlq_delete(params.job_id(request))
    return Response(status_code=204)


async def replay_all_dead(request: Request) -> Response:
    queue = params.required_queue(request)
    return JSONResponse({"replayed": await gotaskq_app(request).dlq_replay_all(queue)})


async def purge_dead(request: Request) -> Response:
    queue = params.required_queue(request)
    return JSONResponse({"deleted": await gotaskq_app(request).dlq_purge(queue)})


routes = [
    route("/dlq", Area.ADMIN, {"GET": list_dead, "DELETE": purge_dead}),
    route("/dlq/replay", Area.ADMIN, {"POST": replay_all_dead}),
    route("/dlq/{id}", Area.ADMIN, {"GET": get_dead, "DELETE": delete_dead}),
    route("/dlq/{id}/replay", Area.ADMIN, {"POST": replay_dead}),
]
