"""Wake-ups: enqueue notices over pub/sub, so idle workers pick a job up within milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis._parsers.hiredis import _AsyncHiredisParser
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.sentinel import SentinelManagedConnection

from ... import keys
from ...errors import GotaskqError
from .codec import text

log = logging.getLogger("gotaskq.redis")


PING_S = 15.0  # while no notice comes, a PING this often on the subscription's connection
NOTICES = (b"message", b"smessage")


async def read_notices(pubsub: Any, on_queue: Callable[[str], None]) -> None:
    """Hand each notice's queue to ``on_queue`` until the connection fails (the error is raised).

    Replies are read straight from the connection's hiredis parser, blocking: redis-py's
    get_message(timeout) wraps each read in a timeout, a retry policy, a health check and a
    message dict, and was ~40 us of the worker's CPU per notice (a microbenchmark; at 10k
    jobs/s the wake-ups were 11 % of a worker's profile). A PING every PING_S keeps the
    connection checked: when nothing at all came back (not even its pong) by the next one, the
    connection is closed, which ends the read in an error, and the caller subscribes again. So a
    connection that died without a word (a host gone, a dropped route) is replaced within two
    PING_S. Subscribe confirmations and pongs are skipped."""
    parser = replies_of(pubsub)
    if hasattr(parser, "set_pubsub_push_handler"):
        # RESP3 delivers notices as pushes, and redis-py's handler for them formats each one
        # (str) for a DEBUG log line and takes the logging lock: ~12 us a notice in py-spy. (It
        # stays on the connection after the subscription; it returns what redis-py's returns.)
        parser.set_pubsub_push_handler(_as_is)
    loop = asyncio.get_running_loop()
    heard = [loop.time()]  # when the last reply of any kind came
    pinger = asyncio.create_task(_ping_every(pubsub, PING_S, heard))
    try:
        while True:
            reply = await parser.read_response(push_request=True)
            heard[0] = loop.time()
            if isinstance(reply, list) and reply[0] in NOTICES:
                on_queue(text(reply[2]))
            elif isinstance(reply, Exception):
                raise reply
    finally:
        pinger.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pinger


async def _as_is(response: Any) -> Any:
    return response


# Connections whose read_response reads their parser and nothing else that matters to a
# subscription (a Sentinel's adds only a ReadOnlyError check, for writes)
_READS_THROUGH_PARSER = (AbstractConnection.read_response, SentinelManagedConnection.read_response)


def replies_of(pubsub: Any) -> Any:
    """What ``read_notices`` reads: the subscribed connection's hiredis parser where the
    connection reads through it, else redis-py's PubSub (fakeredis's connection, say)."""
    conn = pubsub.connection
    parser = getattr(conn, "_parser", None)
    if isinstance(parser, _AsyncHiredisParser) and type(conn).read_response in _READS_THROUGH_PARSER:
        return parser
    return _PubSubReplies(pubsub)


class _PubSubReplies:
    """The raw replies of a subscription through redis-py's PubSub (any parser)."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def read_response(self, push_request: bool = True) -> Any:
        return await self._pubsub.parse_response(block=True)


async def _ping_every(pubsub: Any, seconds: float, heard: list[float]) -> None:
    loop = asyncio.get_running_loop()
    pinged_at: float | None = None
    while True:
        await asyncio.sleep(seconds)
        if pinged_at is not None and heard[0] < pinged_at:
            log.warning("wake-ups: no answer to a PING in %gs; subscribing again", seconds)
            await pubsub.connection.disconnect()  # the reader's read ends in an error
            return
        pinged_at = loop.time()
        await pubsub.ping()  # its pong comes to the reader, which skips it


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
                    await read_notices(pubsub, self._deliver)
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            except asyncio.CancelledError:
                raise
            except (GotaskqError, rexc.RedisError, OSError):
                self.event.set()
                await asyncio.sleep(0.5)

    def _deliver(self, queue: str) -> None:
        self._on_queue(queue)
        self.event.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


class ShardedWakeListener(WakeListener):
    """Cluster: SSUBSCRIBE to each queue's ``gtq:{q}:wake`` on the primary that owns its slot,
    one connection and reader per primary. A primary that goes down loses only its own
    subscriptions (its queues' waiters poll until they move to the promoted replica); the
    others keep waking their workers at once. New queues are subscribed within REFRESH_S."""

    REFRESH_S = 2.0
    RETRY_S = 0.5

    def __init__(self, client: Any, on_queue: Callable[[str], None]) -> None:
        super().__init__(client, on_queue)
        self._shards: dict[str, _Shard] = {}  # primary "host:port" -> its subscription

    async def _listen(self) -> None:
        try:
            while True:
                missing = await self._subscribe_missing()
                for name, shard in list(self._shards.items()):
                    if shard.broken:  # its primary went away: resubscribe its channels elsewhere
                        log.warning("wake-ups from %s lost (%s); subscribing again", name, shard.error())
                        await shard.close()
                        del self._shards[name]
                        self.event.set()
                        missing = True
                await asyncio.sleep(self.RETRY_S if missing else self.REFRESH_S)
        finally:
            for shard in self._shards.values():
                await shard.close()
            self._shards.clear()

    async def _subscribe_missing(self) -> bool:
        """Subscribe every queue's channel not yet subscribed; True while some could not be."""
        try:
            names = await self._client.smembers(keys.QUEUES)
        except (rexc.RedisError, OSError):
            self.event.set()
            return True
        have = set().union(*(s.channels for s in self._shards.values()))
        missing = False
        by_node: dict[str, tuple[Any, list[str]]] = {}
        for channel in sorted({keys.wake_channel(text(n), True) for n in names} - have):
            try:
                node = self._client.get_node_from_key(channel)
            except rexc.RedisError:  # a slot without a primary for now (failover under way)
                missing = True
                continue
            by_node.setdefault(node.name, (node, []))[1].append(channel)
        for name, (node, channels) in by_node.items():
            shard = self._shards.get(name)
            try:
                if shard is None:
                    shard = self._shards[name] = _Shard.open(node, self._deliver)
                await shard.subscribe(channels)
            except (rexc.RedisError, OSError):
                missing = True
                if shard is not None:
                    await shard.close()
                self._shards.pop(name, None)
                continue
            self.event.set()  # notices sent before the subscription took are not lost
        return missing


class _Shard:
    """One primary's shard-channel subscriptions, on a connection of their own."""

    def __init__(self, client: Any, on_queue: Callable[[str], None]) -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self._on_queue = on_queue
        self.channels: set[str] = set()
        self.reader: asyncio.Task[None] | None = None  # started once something is subscribed

    @classmethod
    def open(cls, node: Any, on_queue: Callable[[str], None]) -> _Shard:
        pool = aioredis.ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
        return cls(aioredis.Redis(connection_pool=pool), on_queue)

    async def subscribe(self, channels: list[str]) -> None:
        for channel in channels:  # one SSUBSCRIBE each: its channels must share a slot
            await self._pubsub.ssubscribe(channel)
        self.channels.update(channels)
        if self.reader is None:
            self.reader = asyncio.create_task(self._read())

    def error(self) -> BaseException | None:
        return None if self.reader is None or self.reader.cancelled() else self.reader.exception()

    @property
    def broken(self) -> bool:
        return self.reader is not None and self.reader.done()

    async def _read(self) -> None:
        await read_notices(self._pubsub, self._on_queue)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._client.aclose()
