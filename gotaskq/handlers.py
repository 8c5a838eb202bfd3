"""The registry of job handlers, keyed by job type."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .job import Job

Handler = Callable[[Job], Awaitable[Any]] | Callable[[Job], Any]


@dataclass(slots=True, frozen=True)
class Registered:
    fn: Handler
    is_async: bool  # sync handlers run in a bounded thread pool, off the event loop


class HandlerRegistry:
    def __init__(self) -> None:
        self._by_type: dict[str, Registered] = {}

    def register(self, job_type: str, fn: Handler) -> None:
        self._by_type[job_type] = Registered(fn, inspect.iscoroutinefunction(fn))

    def task(self, job_type: str) -> Callable[[Handler], Handler]:
        """Decorator: ``@registry.task("email")`` registers the function for that job type."""

        def deco(fn: Handler) -> Handler:
            self.register(job_type, fn)
            return fn

        return deco

    def get(self, job_type: str) -> Registered | None:
        return self._by_type.get(job_type)

    def types(self) -> list[str]:
        return sorted(self._by_type)
