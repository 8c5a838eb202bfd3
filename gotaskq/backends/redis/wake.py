"""Wake-ups: enqueue notices over pub/sub, so idle workers pick a job up within milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from redis import exceptions as rexc

from ... import keys
from ...errors import GotaskqError
from .codec import text


class WakeListener:
    """Sets ``event`` on every notice and hands the queue it names to ``on_queue``."""

    def __init__(self, client: Any, on_queue: Callable[[str], None]) -> None:
        self._client = client
        self._on_queue = on_queue
        self.event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen())

    async def wait(self, timeout: float) -> None:
        self.ensure_running()
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return
        self.event.clear()

    async def _listen(self) -> None:
        """Resubscribe after Redis restarts; while the channel is down, waiters poll."""
        while True:
            try:
                pubsub = self._client.pubsub()
                try:
                    await pubsub.subscribe(keys.WAKE_CHANNEL)
                    self.event.set()  # a notice published before the subscription took is not lost
                    while True:
                        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                        if msg is not None:
                            self._on_queue(text(msg["data"]))
                            self.event.set()
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            except asyncio.CancelledError:
                raise
            except (GotaskqError, rexc.RedisError, OSError):
                self.event.set()
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


class ShardedWakeListener(WakeListener):
    """Cluster: SSUBSCRIBE to each queue's ``gtq:{q}:wake`` on the primary that owns its slot,
    one reader per primary. New queues are subscribed within REFRESH_S; after a failover or a
    slot move the subscriptions are rebuilt, and waiters poll meanwhile."""

    REFRESH_S = 2.0

    async def _listen(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            readers: dict[str, asyncio.Task[None]] = {}
            subscribed: set[str] = set()
            try:
                while True:
                    names = await self._client.smembers(keys.QUEUES)
                    fresh = {keys.wake_channel(text(n), True) for n in names} - subscribed
                    if fresh:
                        await pubsub.ssubscribe(*sorted(fresh))
                        subscribed |= fresh
                        self.event.set()  # notices sent before the subscription took are not lost
                    for name in list(pubsub.node_pubsub_mapping):
                        task = readers.get(name)
                        if task is not None and task.done():
                            task.result()  # a reader that failed: rebuild everything
                        if task is None:
                            readers[name] = asyncio.create_task(self._read(pubsub, name))
                    await asyncio.sleep(self.REFRESH_S)
            except asyncio.CancelledError:
                raise
            except (GotaskqError, rexc.RedisError, OSError):
                self.event.set()
                await asyncio.sleep(0.5)
            finally:
                for task in readers.values():
                    task.cancel()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _read(self, pubsub: Any, node_name: str) -> None:
        node = self._client.get_node(node_name=node_name)
        while True:
            msg = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=5.0, target_node=node)
            if msg is not None and text(msg["type"]) == "smessage":
                self._on_queue(text(msg["data"]))
                self.event.set()
