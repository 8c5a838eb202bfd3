"""create_app: the Starlette application around a gotaskq App, and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

from ..app import App
from . import dlq, external, jobs, ops, queues, schedules, workers
from .admin import admin_routes
from .docs_page import docs_routes
from .errors import EXCEPTION_HANDLERS, CatchAll

log = logging.getLogger("gotaskq.api")


def all_routes() -> list[BaseRoute]:
    return [
        *jobs.routes,
        *external.routes,
        *queues.routes,
        *schedules.routes,
        *workers.routes,
        *dlq.routes,
        *ops.routes,
        *admin_routes(),
        *docs_routes(),  # /, /docs: not API operations, so not in /openapi.json
    ]


class Api(Starlette):
    """The Starlette app, with POST /jobs served before its middleware stack (see
    jobs.serve_create_job). Mounted under a root_path, every route goes through Starlette."""

    gotaskq: App

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/jobs"
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            await jobs.serve_create_job(self.gotaskq, scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(app: App, *, run_workers: bool = False) -> Api:
    """The HTTP API of ``app``; with ``run_workers`` its lifespan also runs ``app.worker()``."""
    web = Api(
        routes=all_routes(),
        # POST /jobs does not pass through middleware (see Api): what a new one does, it must
        # do too (tests/test_api_fast_path.py fails when this list changes).
        middleware=[Middleware(CatchAll)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=_lifespan(app, run_workers),
    )
    web.gotaskq = web.state.gotaskq = app
    return web


def _lifespan(app: App, run_workers: bool) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if not app.settings.api_token and not app.settings.admin_token:
            log.warning("neither API_TOKEN nor ADMIN_TOKEN is set: anyone who reaches the API can use it")
        await app.start()
        worker: Any = None
        task: asyncio.Task[None] | None = None
        try:
            if run_workers:
                worker = app.worker()
                task = asyncio.create_task(worker.run(), name="gotaskq-worker")
                task.add_done_callback(_log_crash)
            yield
        finally:
            try:
                if worker is not None:
                    await worker.stop()
                if task is not None:
                    await asyncio.gather(task, return_exceptions=True)  # a crash was logged already
            finally:
                await app.close()

    return lifespan


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the worker stopped with an error", exc_info=task.exception())
