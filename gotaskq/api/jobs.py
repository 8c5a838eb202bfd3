"""Job routes: submit one or a batch, read one, cancel one."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..errors import JobNotFound
from . import params
from .auth import Area
from .body import read_json
from .job_input import job_from_json, jobs_from_batch
from .responses import JSONResponse
from .routing import route
from .state import gotaskq_app


async def create_job(request: Request) -> Response:
    app = gotaskq_app(request)
    spec = job_from_json(app, await read_json(request, app.settings.max_body_bytes))
    out = await app.submit(spec)
    if out.created:
        return JSONResponse(out.job.to_dict(), status_code=201)
    return JSONResponse(out.job.to_dict(), headers={"Idempotent-Replayed": "true"})


async def create_batch(request: Request) -> Response:
    app = gotaskq_app(request)
    specs = jobs_from_batch(app, await read_json(request, app.settings.max_body_bytes))
    out = await app.submit_many(specs)
    return JSONResponse({"jobs": [e.job.to_dict() for e in out]}, status_code=201)


async def get_job(request: Request) -> Response:
    job = await gotaskq_app(request).get_job(params.job_id(request))
    if job is None:
        raise JobNotFound("job not found")
    return JSONResponse(job.to_dict())


async def cancel_job(request: Request) -> Response:
    job = await gotaskq_app(request).cancel(params.job_id(request))
    return JSONResponse(job.to_dict())


routes = [
    route("/jobs", Area.JOBS, {"POST": create_job}),
    route("/jobs/batch", Area.JOBS, {"POST": create_batch}),
    route("/jobs/{id}", Area.JOBS, {"GET": get_job, "DELETE": cancel_job}),
]
