"""Running the service from the command line (serve, api, worker) and stopping it: the first
SIGTERM/SIGINT lets running jobs finish for up to SHUTDOWN_GRACE, a second stops now."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn

from .cli_output import count
from .config import Settings
from .http_protocol import OneWriteHttpToolsProtocol

log = logging.getLogger("gotaskq")


class Shutdown:
    """What the signals do to the workers of ``app`` (App.workers), and what they say."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.signals = 0

    def on_signal(self) -> None:
        """Call on the event loop: the first signal stops claiming, the second stops now."""
        self.signals += 1
        workers = list(self.app.workers)
        if not workers:  # `gotaskq api`, NUM_WORKERS=0: no job to finish, uvicorn says the rest
            return
        held = sum(w.inflight for w in workers)
        if self.signals == 1:
            log.warning("%s", first_message(self.app.settings, held) if held else "no job running: stopping")
            for w in workers:
                w.request_stop()
        elif self.signals == 2:
            log.warning("%s", second_message(self.app.settings, held))
            for w in workers:
                w.stop_now()


def first_message(settings: Settings, held: int) -> str:
    text = f"finishing {count(held, 'job')}, up to {settings.shutdown_grace:g} s (SHUTDOWN_GRACE)"
    if settings.use_redis:
        text += "; jobs still running then go back to their queue"
    else:
        text += "; in-memory mode (no REDIS_URL): unfinished and waiting jobs are lost with the process"
    return text + "; press Ctrl+C again to stop now"


def second_message(settings: Settings, held: int) -> str:
    if settings.use_redis:
        return f"stopping now: {count(held, 'running job')} released back to their queue"
    return f"stopping now: {count(held, 'running job')} lost (in-memory mode, no REDIS_URL)"


class Server(uvicorn.Server):
    """uvicorn's server with gotaskq's shutdown: uvicorn owns the signals, so handle_exit tells
    the App's workers (the first signal: finish within the grace; the second: stop now)."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self.shutdown_plan = Shutdown(app)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exits = 0

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)  # the lifespan's start: the App is connected
        freeze_startup_heap()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of the loop: touch the workers from the loop.
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.shutdown_plan.on_signal)
        self._exits += 1
        super().handle_exit(sig, frame)
        if self._exits >= 2:
            self.force_exit = True  # after a second SIGTERM too, not only after a second SIGINT

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # uvicorn skips the lifespan shutdown after a forced exit; the workers must still hand
        # back their jobs (stop_now made that quick) and the App close its store.
        lifespan = getattr(self, "lifespan", None)
        done = getattr(lifespan, "shutdown_event", None)
        if self.force_exit and lifespan is not None and done is not None and not done.is_set():
            await lifespan.shutdown()


def run_server(asgi: Any, app: Any, settings: Settings) -> None:
    config = uvicorn.Config(
        asgi,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        http=OneWriteHttpToolsProtocol,  # a response in one write, not two
        lifespan="on",
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
    )
    try:
        Server(config, app).run()  # uvicorn raises the signals it caught again once it stopped
    except KeyboardInterrupt:
        leave_job_threads(130)
        raise
    leave_job_threads(0)


def run_worker(app: Any, settings: Settings) -> None:
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_run_worker(app, settings))
    leave_job_threads(0)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop, where it is installed (as uvicorn picks it for the API): the loop's
    own work (scheduling each step of each job, timers, socket reads) is written in C there."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def leave_job_threads(code: int) -> None:
    """Exit now if a synchronous handler still runs in a job thread after the shutdown.

    Its job was released already (and its late outcome would be refused by its lease token),
    but Python joins such threads at exit: a handler of an hour would hold the process an
    hour after SHUTDOWN_GRACE, or after the second Ctrl+C that means "stop now"."""
    stuck = [t for t in threading.enumerate() if t.name.startswith("gotaskq-job") and t.is_alive()]
    if not stuck:
        return
    log.warning("%s still running in their thread: exiting without waiting for them", count(len(stuck), "handler"))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def freeze_startup_heap() -> None:
    """Put what start-up built (modules, classes, the App and its clients: ~47,000 objects) out
    of the cyclic GC's reach. Every full collection walked all of it: 28-31 ms here when idle,
    45-63 ms under load, the whole process stalled (the longest gaps between job starts in
    bench_load_latency, once in each 10,000 jobs/s run). Objects made later are collected as
    before; start-up's own live as long as the process. (In `serve` the worker may hold its
    first jobs by then: what of theirs ends up in a cycle is never freed, once, a few objects.)"""
    gc.collect()
    gc.freeze()


async def _run_worker(app: Any, settings: Settings) -> None:
    worker = app.worker()
    plan = Shutdown(app)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, plan.on_signal)
    metrics_server = None
    if settings.metrics_port is not None:
        metrics_server = await _start_metrics_server(app, settings)
    try:
        await app.start()  # (worker.run starts it too: here first, so that it is frozen)
        freeze_startup_heap()
        await worker.run()
    finally:
        if metrics_server is not None:
            metrics_server.should_exit = True
        await app.close()


async def _start_metrics_server(app: Any, settings: Settings) -> Any:
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
