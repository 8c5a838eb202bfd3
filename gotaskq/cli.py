"""The ``gotaskq`` command: run the service (serve/api/worker) and operate it
(enqueue/queues/schedules/dlq)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from .config import Settings, load_env_file
from .errors import ConfigError

log = logging.getLogger("gotaskq")


_UNSET_ARG: object = object()  # an option not given (None means "clear the limit")


def _settings(args: argparse.Namespace) -> Settings:
    if getattr(args, "env_file", None):
        if not Path(args.env_file).is_file():
            raise ConfigError(f"--env-file {args.env_file}: no such file")
        for key, value in load_env_file(args.env_file).items():
            os.environ.setdefault(key, value)  # the real environment wins over the file
    for flag, var in (("host", "HOST"), ("port", "PORT"), ("workers", "NUM_WORKERS"), ("queues", "WORKER_QUEUES")):
        override = getattr(args, flag, None)
        if override is not None:
            os.environ[var] = str(override)
    settings = Settings.from_env()
    from .logs import setup_logging

    setup_logging(settings.log_level, settings.log_format)
    return settings


# -- running the service -------------------------------------------------------------------
def _uvicorn(asgi: Any, settings: Settings, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        asgi,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
    )
    uvicorn.Server(config).run()


def cmd_serve(args: argparse.Namespace, run_workers: bool = True) -> int:
    settings = _settings(args)
    from .api import create_app
    from .app import App

    _check_handlers(settings)
    log.info("starting gotaskq %s with %s", "serve" if run_workers else "api", settings.masked())
    # NUM_WORKERS=0 makes `serve` an API-only process, as `api` is.
    workers = run_workers and settings.num_workers > 0
    _uvicorn(create_app(App(settings), run_workers=workers), settings, settings.host, settings.port)
    return 0


def _check_handlers(settings: Settings) -> None:
    """Import GOTASKQ_HANDLERS before the server starts: a missing module is one line, not a
    traceback from inside uvicorn."""
    from .app import import_handlers

    for module in settings.handlers:
        import_handlers(module)


def cmd_api(args: argparse.Namespace) -> int:
    return cmd_serve(args, run_workers=False)


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.use_redis:
        raise ConfigError("gotaskq worker needs REDIS_URL (the in-memory backend lives in one process: use serve)")
    from .app import App

    _check_handlers(settings)
    log.info("starting gotaskq worker with %s", settings.masked())
    asyncio.run(_run_worker(App(settings), settings))
    return 0


async def _run_worker(app: Any, settings: Settings) -> None:
    worker = app.worker()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    metrics_server = None
    if settings.metrics_port is not None:
        metrics_server = await _start_metrics_server(app, settings)
    try:
        await worker.run()
    finally:
        if metrics_server is not None:
            metrics_server.should_exit = True
        await app.close()


async def _start_metrics_server(app: Any, settings: Settings) -> Any:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def metrics(_: Request) -> Response:
        await app.metrics.refresh(app.backend)
        return Response(app.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    class _NoSignals(uvicorn.Server):
        # The worker owns SIGTERM/SIGINT (graceful shutdown); this side server must not take them.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    server = _NoSignals(
        uvicorn.Config(
            Starlette(routes=[Route("/metrics", metrics)]),
            host=settings.host,
            port=settings.metrics_port or 0,
            log_level="warning",
            lifespan="off",
        )
    )
    asyncio.get_running_loop().create_task(server.serve())
    return server


# -- operating it over HTTP ------------------------------------------------------------------
def _client(args: argparse.Namespace, admin: bool) -> httpx.Client:
    settings = _settings(args)
    url: str = args.url or os.environ.get("GOTASKQ_URL") or f"http://{_dial(settings.host)}:{settings.port}"
    token = settings.admin_token if admin else settings.api_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=10.0)


def _dial(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)


def _show(resp: httpx.Response) -> int:
    if resp.status_code == 204:
        return 0
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    print(json.dumps(body, indent=2))
    return 0 if resp.is_success else 1


def cmd_enqueue(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload) if args.payload is not None else None
    except json.JSONDecodeError as exc:
        print(f"gotaskq: --payload is not JSON: {exc}", file=sys.stderr)
        return 2
    options: dict[str, Any] = {"queue": args.queue, "priority": args.priority}
    for name in ("delay", "max_retries", "timeout", "idempotency_key", "run_at"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    from .client import ApiError, Client

    with _client(args, admin=False) as http:
        token = http.headers.get("authorization", "").removeprefix("Bearer ") or None
        with Client(str(http.base_url), token) as c:
            try:
                print(json.dumps(c.enqueue(args.type, payload, **options), indent=2))
            except ApiError as exc:
                print(json.dumps({"error": {"code": exc.code, "message": str(exc), "fields": exc.fields}}, indent=2))
                return 1
    return 0


def _limit_arg(text: str) -> dict[str, float] | None:
    """``--rate-limit 10/60`` (10 starts per 60 s) or ``none``."""
    if text.lower() == "none":
        return None
    most, _, per = text.partition("/")
    try:
        return {"max": int(most), "per": float(per or "1")}
    except ValueError:
        raise argparse.ArgumentTypeError("give MAX/SECONDS, e.g. 10/60, or none") from None


def _concurrency_arg(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("give a number, or none") from None


def cmd_queues(args: argparse.Namespace) -> int:
    with _client(args, admin=True) as c:
        if args.set:
            body: dict[str, object] = {}
            if args.concurrency is not _UNSET_ARG:
                body["concurrency"] = args.concurrency
            if args.rate_limit is not _UNSET_ARG:
                body["rate_limit"] = args.rate_limit
            return _show(c.patch(f"/queue/{args.set}", json=body))
        if args.purge:
            return _show(c.post(f"/queue/{args.purge}/purge"))
        if args.delete:
            code = _show(c.delete(f"/queue/{args.delete}"))
            if code == 0:
                print(json.dumps({"deleted": args.delete}))
            return code
        if args.create:
            return _show(c.post(f"/queue/{args.create}"))
        if args.pause:
            return _show(c.post(f"/queue/{args.pause}/pause"))
        if args.resume:
            return _show(c.post(f"/queue/{args.resume}/resume"))
        return _show(c.get("/queue"))


def cmd_schedules(args: argparse.Namespace) -> int:
    with _client(args, admin=True) as c:
        if args.schedules_cmd == "ls":
            return _show(c.get("/schedules"))
        if args.schedules_cmd == "rm":
            code = _show(c.delete(f"/schedules/{args.name}"))
            if code == 0:
                print(json.dumps({"deleted": args.name}))
            return code
        try:
            payload = json.loads(args.payload) if args.payload is not None else None
        except ValueError:
            print("gotaskq: --payload must be JSON", file=sys.stderr)
            return 2
        job: dict[str, object] = {"type": args.type, "payload": payload}
        if args.queue:
            job["queue"] = args.queue
        body: dict[str, object] = {"cron": args.cron, "every": args.every, "job": job, "paused": args.paused}
        if args.timezone:
            body["timezone"] = args.timezone
        return _show(c.put(f"/schedules/{args.name}", json=body))


def cmd_workers(args: argparse.Namespace) -> int:
    with _client(args, admin=True) as c:
        return _show(c.get("/workers"))


def cmd_dlq(args: argparse.Namespace) -> int:
    with _client(args, admin=True) as c:
        if args.dlq_cmd == "ls":
            params = {k: v for k, v in (("queue", args.queue), ("limit", args.limit), ("cursor", args.cursor)) if v}
            return _show(c.get("/dlq", params=params))
        if args.dlq_cmd == "replay":
            if args.all:
                return _show(c.post("/dlq/replay", params={"queue": args.all}))
            return _needs_id(args) or _show(c.post(f"/dlq/{args.id}/replay"))
        if args.all:
            return _show(c.delete("/dlq", params={"queue": args.all}))
        code = _needs_id(args) or _show(c.delete(f"/dlq/{args.id}"))
        if code == 0:
            print(json.dumps({"deleted": args.id}))
        return code


def _needs_id(args: argparse.Namespace) -> int:
    if not args.id:
        print("gotaskq: give a job id, or --all QUEUE", file=sys.stderr)
        return 2
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    try:
        with _client(args, admin=False) as c:
            resp = c.get("/healthz", timeout=3.0)
    except httpx.HTTPError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0 if resp.status_code == 200 else 1


# -- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gotaskq", description="Redis-backed multi-queue job service.")
    p.add_argument("--env-file", help="load KEY=VALUE settings from this file (the environment wins)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def server(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--env-file", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        if name != "worker":
            sp.add_argument("--host", help="bind address (HOST, default 127.0.0.1)")
            sp.add_argument("--port", type=int, help="port (PORT, default 8000)")
        if name != "api":
            sp.add_argument("--workers", type=int, help="process concurrency (NUM_WORKERS, default 10)")
            sp.add_argument(
                "--queues", metavar="A,B", help="serve only these queues (WORKER_QUEUES; default: every queue)"
            )
        return sp

    server("serve", "HTTP API and workers in one process (the default way to run)").set_defaults(fn=cmd_serve)
    server("api", "HTTP API only (run workers with `gotaskq worker`)").set_defaults(fn=cmd_api)
    server("worker", "workers only, against REDIS_URL; /metrics on METRICS_PORT if set").set_defaults(fn=cmd_worker)

    def client(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--env-file", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sp.add_argument("--url", help="server URL (GOTASKQ_URL, default http://HOST:PORT)")
        return sp

    e = client("enqueue", "submit a job over HTTP")
    e.add_argument("type")
    e.add_argument("--payload", help="JSON payload")
    e.add_argument("--queue", default="default")
    e.add_argument("--priority", type=int, default=0)
    e.add_argument("--delay", type=float)
    e.add_argument("--run-at", dest="run_at")
    e.add_argument("--max-retries", dest="max_retries", type=int)
    e.add_argument("--timeout", type=float)
    e.add_argument("--idempotency-key", dest="idempotency_key")
    e.set_defaults(fn=cmd_enqueue)

    q = client("queues", "list queues with their counts; or create/pause/resume/set/purge/delete one")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--create", metavar="NAME")
    g.add_argument("--pause", metavar="NAME")
    g.add_argument("--resume", metavar="NAME")
    g.add_argument("--set", metavar="NAME", help="change limits: with --concurrency and/or --rate-limit")
    g.add_argument("--purge", metavar="NAME", help="remove every waiting (pending, scheduled) job")
    g.add_argument("--delete", metavar="NAME", help="remove the queue and all its jobs")
    q.add_argument("--concurrency", type=_concurrency_arg, default=_UNSET_ARG, help="N, or none")
    q.add_argument("--rate-limit", type=_limit_arg, default=_UNSET_ARG, help="MAX/SECONDS (e.g. 10/60), or none")
    q.set_defaults(fn=cmd_queues)

    sc = client("schedules", "repeatable schedules: ls | set | rm")
    scsub = sc.add_subparsers(dest="schedules_cmd", required=True, metavar="ACTION")
    scsub.add_parser("ls", help="list schedules with their next and last run")
    put = scsub.add_parser("set", help="create or replace a schedule")
    put.add_argument("name")
    when = put.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='cron expression, e.g. "*/5 * * * *"')
    when.add_argument("--every", type=float, help="seconds between runs")
    put.add_argument("--timezone", help="IANA time zone of --cron (default UTC)")
    put.add_argument("--type", required=True, help="job type")
    put.add_argument("--payload", help="job payload (JSON)")
    put.add_argument("--queue", help="queue (default: default)")
    put.add_argument("--paused", action="store_true", help="create it paused")
    rm = scsub.add_parser("rm", help="delete a schedule")
    rm.add_argument("name")
    for a in scsub.choices.values():  # --url after the action too, as for dlq
        a.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sc.set_defaults(fn=cmd_schedules)

    d = client("dlq", "dead-letter queue: ls | replay | rm")
    dsub = d.add_subparsers(dest="dlq_cmd", required=True, metavar="ACTION")
    ls = dsub.add_parser("ls", help="list dead jobs")
    ls.add_argument("--queue")
    ls.add_argument("--limit", type=int)
    ls.add_argument("--cursor")
    for name, help in (("replay", "replay a dead job (or --all QUEUE)"), ("rm", "delete a dead job (or --all QUEUE)")):
        a = dsub.add_parser(name, help=help, description=help)
        a.add_argument("id", nargs="?")
        a.add_argument("--all", metavar="QUEUE", help="every dead job of QUEUE")
    for a in dsub.choices.values():
        a.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    d.set_defaults(fn=cmd_dlq)

    client("workers", "live worker processes: queues, busy slots, job types, jobs running").set_defaults(fn=cmd_workers)
    client("health", "exit 0 when the server answers /healthz").set_defaults(fn=cmd_health)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.fn(args)
    except ConfigError as exc:
        print(f"gotaskq: configuration error: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"gotaskq: cannot reach the server: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `gotaskq dlq ls | head -1`: the reader went away; say nothing more, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
