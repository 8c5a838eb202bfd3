"""The ``gotaskq`` command: run the service (serve/api/worker) and operate it over HTTP
(enqueue/jobs/queues/schedules/dlq/workers/health). Output: cli_output; HTTP: cli_http."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from .cli_http import CliError, Remote
from .cli_ops import (
    UNSET_ARG,
    cmd_dlq,
    cmd_health,
    cmd_jobs,
    cmd_queues,
    cmd_schedules,
    cmd_workers,
    concurrency_arg,
    duration_arg,
    limit_arg,
)
from .cli_output import Output
from .config import Settings, load_env_file
from .errors import ConfigError

log = logging.getLogger("gotaskq")

Command = Callable[[argparse.Namespace, Remote, Output], int]
if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]  # what add_subparsers() returns


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
def cmd_serve(args: argparse.Namespace, run_workers: bool = True) -> int:
    settings = _settings(args)
    from .api import create_app
    from .app import App
    from .cli_run import run_server

    _check_handlers(settings)
    log.info("starting gotaskq %s with %s", "serve" if run_workers else "api", settings.masked())
    # NUM_WORKERS=0 makes `serve` an API-only process, as `api` is.
    workers = run_workers and settings.num_workers > 0
    app = App(settings)
    run_server(create_app(app, run_workers=workers), app, settings)
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
    from .cli_run import run_worker

    _check_handlers(settings)
    log.info("starting gotaskq worker with %s", settings.masked())
    run_worker(App(settings), settings)
    return 0


# -- operating it over HTTP ------------------------------------------------------------------
def _over_http(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = _settings(args)
        args.max_body_bytes = settings.max_body_bytes
        out = Output.for_choice(getattr(args, "output", None))
        args.out = out
        with Remote.from_settings(settings, getattr(args, "url", None)) as remote:
            return command(args, remote, out)

    return run


def _report(exc: CliError, args: argparse.Namespace) -> int:
    out: Output | None = getattr(args, "out", None)
    if out is not None and out.json and exc.body is not None:
        print(json.dumps(exc.body, indent=2))  # scripts read the server's error as it is
        sys.stdout.flush()
    print(f"gotaskq: {exc}", file=sys.stderr)
    return exc.code


# -- parser ------------------------------------------------------------------------------------
def _version() -> str:
    try:
        return version("gotaskq")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree that is not installed
        return "unknown"


def _common(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of every command that talks to a server, accepted after any sub-action too."""
    sp.add_argument("--env-file", default=argparse.SUPPRESS, help="load KEY=VALUE settings from this file")
    sp.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help="server URL (GOTASKQ_URL; default http://HOST:PORT of the environment, i.e. http://127.0.0.1:8000)",
    )
    out = sp.add_mutually_exclusive_group()
    out.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default=argparse.SUPPRESS,
        help="print the server's JSON (GOTASKQ_OUTPUT=json; the default when stdout is not a terminal)",
    )
    out.add_argument(
        "--human",
        dest="output",
        action="store_const",
        const="human",
        default=argparse.SUPPRESS,
        help="print tables even when stdout is not a terminal (GOTASKQ_OUTPUT=human)",
    )
    return sp


def _queue_settings_args(sp: argparse.ArgumentParser, *, legacy: bool = False) -> None:
    """--concurrency/--rate-limit/--paused/--resumed/--external of `queues set` and `create`."""
    keep = {"default": argparse.SUPPRESS} if not legacy else {}
    sp.add_argument(
        "--concurrency",
        type=concurrency_arg,
        metavar="N",
        **({"default": UNSET_ARG} if legacy else keep),
        help="jobs of the queue running at once across every worker: N, or none",
    )
    sp.add_argument(
        "--rate-limit",
        type=limit_arg,
        metavar="MAX/SECONDS",
        **({"default": UNSET_ARG} if legacy else keep),
        help="job starts per window across every worker: MAX/SECONDS (10/60, 100/1m), or none",
    )
    if legacy:
        return
    state = sp.add_mutually_exclusive_group()
    state.add_argument(
        "--paused", dest="paused", action="store_const", const=True, default=argparse.SUPPRESS, help="stop claiming"
    )
    state.add_argument(
        "--resumed", dest="paused", action="store_const", const=False, default=argparse.SUPPRESS, help="claim again"
    )
    sp.add_argument(
        "--external",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help="served by external workers over HTTP (POST /queue/NAME/claim), or not (--no-external)",
    )


def _server_parsers(sub: Sub) -> None:
    def server(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--env-file", default=argparse.SUPPRESS, help="load KEY=VALUE settings from this file")
        if name != "worker":
            sp.add_argument("--host", help="bind address (HOST, default 127.0.0.1)")
            sp.add_argument("--port", type=int, help="port (PORT, default 8000)")
        if name != "api":
            sp.add_argument("--workers", type=int, help="process concurrency (NUM_WORKERS, default 10)")
            sp.add_argument(
                "--queues", metavar="A,B", help="serve only these queues (WORKER_QUEUES; default: every queue)"
            )
        return sp

    stop = "; SIGTERM/Ctrl+C lets running jobs finish (SHUTDOWN_GRACE), a second one stops now"
    server("serve", "HTTP API and workers in one process (the default way to run)" + stop).set_defaults(fn=cmd_serve)
    server("api", "HTTP API only (run workers with `gotaskq worker`)").set_defaults(fn=cmd_api)
    server("worker", "workers only, against REDIS_URL; /metrics on METRICS_PORT if set" + stop).set_defaults(
        fn=cmd_worker
    )


def _enqueue_parser(sub: Sub) -> None:
    e = _common(sub.add_parser("enqueue", help="submit a job, or a file of jobs", description=ENQUEUE_HELP))
    e.add_argument("type", nargs="?", help="job type (leave out with --file)")
    e.add_argument("--payload", help="the job's payload, JSON")
    e.add_argument("--queue", help="queue (default: default)")
    e.add_argument("--priority", type=int, help="0..10, higher runs first (default 0)")
    e.add_argument("--delay", type=duration_arg, help="run after this long: 30, 30s, 250ms, 5m, 1h")
    e.add_argument("--run-at", dest="run_at", help="run at this time: RFC 3339 or epoch seconds")
    e.add_argument("--max-retries", dest="max_retries", type=int, help="retries after the first attempt (MAX_RETRIES)")
    e.add_argument("--timeout", type=duration_arg, help="a run's time limit: 30s, 5m (JOB_TIMEOUT)")
    e.add_argument("--idempotency-key", dest="idempotency_key", help="a second submit with it returns the first job")
    e.add_argument("--file", metavar="PATH", help="NDJSON, one POST /jobs body a line; - reads stdin")
    e.add_argument("--batch-size", type=int, metavar="N", help="jobs per POST /jobs/batch (default and most: 1000)")
    from .cli_enqueue import cmd_enqueue

    e.set_defaults(fn=_over_http(cmd_enqueue))


ENQUEUE_HELP = (
    "Submit one job (POST /jobs), or with --file every line of an NDJSON file in batches (POST /jobs/batch). "
    "With --file, --queue/--priority/--delay/--run-at/--max-retries/--timeout fill the lines that lack them; "
    "the summary counts jobs created, jobs that already existed (their idempotency key matched) and lines "
    "refused, with the reason. Exit 1 when a line was refused."
)


def _queues_parser(sub: Sub) -> None:
    q = _common(sub.add_parser("queues", help="list queues; ls | get | create | set | pause | resume | purge | rm"))
    g = q.add_mutually_exclusive_group()
    for flag, what in (
        ("create", "queues create NAME"),
        ("pause", "queues pause NAME"),
        ("resume", "queues resume NAME"),
        ("set", "queues set NAME (with --concurrency and/or --rate-limit)"),
        ("purge", "queues purge NAME"),
        ("delete", "queues rm NAME"),
    ):
        g.add_argument(f"--{flag}", metavar="NAME", help=f"the same as `{what}`")
    _queue_settings_args(q, legacy=True)
    q.set_defaults(paused=None, external=None, fn=_over_http(cmd_queues))
    qsub = q.add_subparsers(dest="queues_cmd", metavar="ACTION")
    actions = {
        "ls": "list queues with their counts and limits (the default)",
        "get": "one queue's counts and settings",
        "create": "create a queue (with settings)",
        "set": "change a queue's settings",
        "pause": "stop claiming the queue's jobs",
        "resume": "claim the queue's jobs again",
        "purge": "remove every waiting (pending, scheduled) job of the queue",
        "rm": "remove the queue and all its jobs",
    }
    for name, help in actions.items():
        a = _common(qsub.add_parser(name, help=help, description=help))
        if name != "ls":
            a.add_argument("name", help="queue name")
        if name in ("create", "set"):
            _queue_settings_args(a)


def _jobs_parser(sub: Sub) -> None:
    j = _common(sub.add_parser("jobs", help="one job: get | cancel"))
    jsub = j.add_subparsers(dest="jobs_cmd", required=True, metavar="ACTION")
    for name, help in (("get", "show a job"), ("cancel", "cancel a pending or scheduled job")):
        _common(jsub.add_parser(name, help=help, description=help)).add_argument("id", help="job id")
    j.set_defaults(fn=_over_http(cmd_jobs))


def _schedules_parser(sub: Sub) -> None:
    sc = _common(sub.add_parser("schedules", help="repeatable schedules: ls | set | rm"))
    scsub = sc.add_subparsers(dest="schedules_cmd", required=True, metavar="ACTION")
    _common(scsub.add_parser("ls", help="list schedules with their next and last run"))
    put = _common(scsub.add_parser("set", help="create or replace a schedule"))
    put.add_argument("name", help="schedule name")
    when = put.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help='cron expression, e.g. "*/5 * * * *"')
    when.add_argument("--every", type=duration_arg, help="time between runs: 60, 90s, 5m, 1h")
    put.add_argument("--timezone", help="IANA time zone of --cron (default UTC)")
    put.add_argument("--type", required=True, help="job type")
    put.add_argument("--payload", help="job payload (JSON)")
    put.add_argument("--queue", help="queue (default: default)")
    put.add_argument("--paused", action="store_true", help="create it paused")
    _common(scsub.add_parser("rm", help="delete a schedule")).add_argument("name", help="schedule name")
    sc.set_defaults(fn=_over_http(cmd_schedules))


def _dlq_parser(sub: Sub) -> None:
    d = _common(sub.add_parser("dlq", help="dead-letter queue: ls | replay | rm"))
    dsub = d.add_subparsers(dest="dlq_cmd", required=True, metavar="ACTION")
    ls = _common(dsub.add_parser("ls", help="list dead jobs, newest first"))
    ls.add_argument("--queue", help="only this queue's")
    ls.add_argument("--limit", type=int, help="at most this many (a page)")
    ls.add_argument("--cursor", help="the next page: the cursor the previous one printed")
    for name, help in (("replay", "replay a dead job (or --all QUEUE)"), ("rm", "delete a dead job (or --all QUEUE)")):
        a = _common(dsub.add_parser(name, help=help, description=help))
        a.add_argument("id", nargs="?", help="dead job id")
        a.add_argument("--all", metavar="QUEUE", help="every dead job of QUEUE")
    d.set_defaults(fn=_over_http(cmd_dlq))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gotaskq", description="Redis-backed multi-queue job service.", epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"gotaskq {_version()}", help="print the version")
    p.add_argument("--env-file", help="load KEY=VALUE settings from this file (the environment wins)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _server_parsers(sub)
    _enqueue_parser(sub)
    _jobs_parser(sub)
    _queues_parser(sub)
    _schedules_parser(sub)
    _dlq_parser(sub)
    w = _common(sub.add_parser("workers", help="live worker processes: queues, busy/concurrency, jobs running"))
    w.set_defaults(fn=_over_http(cmd_workers))
    alive = "exit 0 when the server is alive (/healthz) or, with --ready, ready (/readyz)"
    h = _common(sub.add_parser("health", help=alive, description=alive))
    h.add_argument("--ready", action="store_true", help="ask /readyz instead: exit 0 when the job store answers too")
    h.set_defaults(fn=_over_http(cmd_health))
    return p


EPILOG = (
    "Commands that talk to a server use GOTASKQ_URL (or --url), and send API_TOKEN (enqueue, jobs) "
    "or ADMIN_TOKEN (everything else) as the bearer token. Output: tables on a terminal, JSON "
    "otherwise or with --json; NO_COLOR turns colours off."
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.fn(args)
        sys.stdout.flush()  # a closed pipe shows up here rather than at exit
    except ConfigError as exc:
        print(f"gotaskq: configuration error: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        return _report(exc, args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `gotaskq dlq ls | head -1`: the reader went away; say nothing more, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
