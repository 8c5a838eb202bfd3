"""Job routes: submit one or a batch, read one, cancel one."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..app import App
from ..errors import JobNotFound
from . import params
from .auth import Area, check
from .body import parse_json, read_body, read_json
from .errors import response_for
from .job_input import job_from_json, jobs_from_batch
from .responses import JSONResponse
from .routing import route
from .state import gotaskq_app

REPLAYED = (b"idempotent-replayed", b"true")  # on a 200 that answers with the job a key matched


async def submit_one(
    app: App, authorization: str | None, content_length: str | None, receive: Receive
) -> tuple[int, bytes]:
    """POST /jobs: the token, the body, the job; (201 or 200 when a key matched, JSON body)."""
    check(authorization, "POST", app.settings, Area.JOBS)
    spec = job_from_json(app, parse_json(await read_body(receive, content_length, app.settings.max_body_bytes)))
    out = await app.submit(spec)
    return (201 if out.created else 200), orjson.dumps(out.job.to_dict())


async def create_job(request: Request) -> Response:
    headers = request.headers
    status, body = await submit_one(
        gotaskq_app(request), headers.get("authorization"), headers.get("content-length"), request.receive
    )
    return Response(
        body, status, {REPLAYED[0].decode(): REPLAYED[1].decode()} if status == 200 else None, "application/json"
    )


async def serve_create_job(app: App, scope: Scope, receive: Receive, send: Send) -> None:
    """POST /jobs as a raw ASGI app: the busiest route, without Starlette's request, routing
    and middleware layers (about a third of its CPU under load; see create_app)."""
    authorization = content_length = None
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name == b"content-length" and content_length is None:
            content_length = value.decode("latin-1")
    try:
        status, body = await submit_one(app, authorization, content_length, receive)
    except Exception as exc:
        await response_for(Request(scope, receive), exc)(scope, receive, send)
        return
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    if status == 200:
        headers.append(REPLAYED)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
    route("/jobs", None, {"POST": create_job}),  # submit_one checks the token
    route("/jobs/batch", Area.JOBS, {"POST": create_batch}),
    route("/jobs/{id}", Area.JOBS, {"GET": get_job, "DELETE": cancel_job}),
]
