"""Baseline for the HTTP benchmarks: bare Starlette + uvicorn answering POST /jobs with a constant 201.

It reads the request body (as gotaskq does) and answers a pre-rendered JSON body the size of
a gotaskq job response, under uvicorn's own settings (loop and http "auto", access log off), so
``gotaskq rps / this rps`` is the cost of gotaskq and its server against Starlette's floor.
With ``--one-write`` it runs the HTTP protocol of ``gotaskq serve`` (gotaskq.http_protocol: a
response's head and body in one write), to tell what that protocol alone is worth.

    .venv/bin/python scripts/bare_endpoint.py --port 8001 [--one-write]
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# The shape of a fresh job as POST /jobs returns it (about 350 bytes).
JOB = {
    "id": "383927443422973952",
    "queue": "q1",
    "type": "noop",
    "payload": {"n": 1},
    "priority": 0,
    "status": "PENDING",
    "attempts": 0,
    "max_retries": 3,
    "timeout": 300.0,
    "run_at": None,
    "idempotency_key": None,
    "last_error": None,
    "errors": [],
    "result": None,
    "created_at": "2026-01-01T00:00:00.000Z",
    "updated_at": "2026-01-01T00:00:00.000Z",
    "started_at": None,
    "finished_at": None,
}
BODY = orjson.dumps(JOB)


async def create_job(request: Request) -> Response:
    await request.body()
    return Response(BODY, status_code=201, media_type="application/json")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument(
        "--one-write",
        action="store_true",
        help="run gotaskq's HTTP protocol (a response's head and body in one write) instead of uvicorn's own",
    )
    args = p.parse_args()
    app = Starlette(routes=[Route("/jobs", create_job, methods=["POST"])])
    http: Any = "auto"
    if args.one_write:
        from gotaskq.http_protocol import OneWriteHttpToolsProtocol

        http = OneWriteHttpToolsProtocol
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="on", http=http
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
