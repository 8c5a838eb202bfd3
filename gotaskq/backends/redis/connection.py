"""Clients for one Redis deployment (one server, a Cluster, or a Sentinel-watched primary), and
the one place that maps Redis failures onto ours.

Two bounded pools per process: one for the API and admin calls (REDIS_MAX_CONNECTIONS), one for
the worker's claims, heartbeats and completions, so a burst of HTTP reads can never make a
worker miss the heartbeat that keeps its leases. Both wait for a free connection instead of
failing when they are full.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from ...config import Settings
from ...errors import BackendUnavailable
from .packing import mixed_in, with_hiredis_packing

log = logging.getLogger("gotaskq.redis")
POOL_WAIT_S = 10.0  # how long a call waits for a free connection before it answers 503
# A new connection's TCP connect: a burst that grows a pool by dozens at once, on a busy event
# loop, took over 2 s on a loaded 2-core machine (503s from a healthy local Redis); a refused
# connection still fails at once.
CONNECT_TIMEOUT_S = 5


def _no_retry() -> Retry:
    """A script whose reply was lost may have run: sending it again would claim jobs twice or
    report a written enqueue as failed. Errors surface (503, a worker's retry) instead."""
    return Retry(NoBackoff(), 0)


WORKER_POOL_SIZE = 16
# Redis is there but cannot take a write now: a 503 for the client, a retry for a worker.
REFUSALS = (
    rexc.OutOfMemoryError,
    rexc.ReadOnlyError,
    rexc.BusyLoadingError,
    rexc.TryAgainError,
    rexc.ClusterDownError,
    rexc.MasterDownError,
)
_REFUSAL_PREFIXES = ("OOM", "LOADING", "BUSY", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN")


class _ReplacesClosed:
    """redis-py 8.1.0 hands out a pooled connection that the server closed while it sat idle: its
    checkout probe is skipped while maintenance notifications are "auto", the RESP3 default
    (redis/redis-py#4252, fixed upstream by #4260). After a Redis restart or a CLIENT KILL, the
    next call on each such connection failed with "Connection closed by server" (a 503, a
    worker's retry). A stream at EOF is reconnected here first."""

    async def ensure_connection(self, connection: Any) -> None:
        await _reopen_if_closed(connection)
        await super().ensure_connection(connection)  # type: ignore[misc]


def _closed_by_server(connection: Any) -> bool:
    """Its stream is at EOF: the server closed it while it sat idle (a restart, a CLIENT KILL)."""
    reader = getattr(connection, "_reader", None)
    return reader is not None and bool(reader.at_eof())


async def _reopen_if_closed(connection: Any) -> None:
    """Connect ``connection`` again if it never was, or if the server closed it. No I/O when
    it is open."""
    if getattr(connection, "_reader", None) is None or _closed_by_server(connection):
        await connection.disconnect()
        await connection.connect()


class _ReconnectsAtEof:
    """The same hole on a Cluster: a node hands out its idle connections without a probe, so
    after a node restart or a CLIENT KILL a call failed with "Connection closed by server" (a
    503). A node asks ``should_reconnect`` before each use and disconnects (the send then
    connects again) when it answers True: it does at EOF."""

    def should_reconnect(self) -> bool:
        return _closed_by_server(self) or bool(super().should_reconnect())  # type: ignore[misc]


class CheckedPool(_ReplacesClosed, aioredis.BlockingConnectionPool):
    pass


class CheckedSentinelPool(_ReplacesClosed, SentinelConnectionPool):
    pass


# The task holding one of a client's slots: a call it makes inside (a Cluster pipeline sends a
# redirected command through the client's own execute_command) uses that slot instead of
# waiting for another, which could wait forever once every slot is held so. A task, not a flag:
# a task created meanwhile inherits the variable, and must still wait for a slot of its own.
_HOLDER: ContextVar[asyncio.Task[Any] | None] = ContextVar("gotaskq_slot_holder", default=None)


@contextlib.asynccontextmanager
async def _slot(slots: asyncio.Semaphore) -> AsyncIterator[None]:
    task = asyncio.current_task()
    if task is not None and _HOLDER.get() is task:
        yield
        return
    async with slots:
        token = _HOLDER.set(task)
        try:
            yield
        finally:
            _HOLDER.reset(token)


def slot_of(client: Any) -> contextlib.AbstractAsyncContextManager[None]:
    """One of ``client``'s slots (a Cluster or Sentinel client), for a call made on its
    connections directly rather than through ``execute_command`` or a pipeline."""
    slots: asyncio.Semaphore | None = getattr(client, "_slots", None)
    return contextlib.nullcontext() if slots is None else _slot(slots)


class _Waiting:
    """Calls and pipelines wait for one of ``limit`` slots: redis-py's Cluster and Sentinel
    pools raise "Too many connections" when full instead of waiting."""

    _slots: asyncio.Semaphore

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        async with _slot(self._slots):
            return await super().execute_command(*args, **options)  # type: ignore[misc]

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        """A pipeline takes connections of its own (on a Cluster one per node it reaches, each
        node's limit being the client's): its execute waits for a slot too."""
        pipe = super().pipeline(*args, **kwargs)  # type: ignore[misc]
        run, slots = pipe.execute, self._slots

        async def execute(*a: Any, **kw: Any) -> Any:
            async with _slot(slots):
                return await run(*a, **kw)

        pipe.execute = execute
        return pipe


class WaitingCluster(_Waiting, RedisCluster):  # type: ignore[misc]
    """After a node's connection error redis-py learns the whole slot table again (CLUSTER
    SLOTS, a Python pass over 16,384 slots, and COMMAND) before the next call to any node, while
    every other call waits on its lock. With a primary down, each call to its queues failed and
    so started another: back to back, ~13 ms each, they stalled the queues on healthy primaries
    for 0.25-0.3 s of a failover (over 1 s on a loaded machine). Here a refresh after an error
    runs at most once per REFRESH_GAP_S (meanwhile calls use the table they have: the healthy
    primaries' slots are right, the dead one's fail at once), and without COMMAND, whose table
    a failover does not change."""

    REFRESH_GAP_S = 0.2
    _refreshed_at: float | None = None

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        nodes = self.nodes_manager
        if not self._initialize:
            return self
        if self._refreshed_at is None or nodes.default_node is None:
            # the first start, or after aclose (no nodes to use meanwhile): all of it, at once
            await super().initialize(additional_startup_nodes_info, last_failed_node_name)
            self._refreshed_at = time.monotonic()
            return self
        if time.monotonic() - self._refreshed_at < self.REFRESH_GAP_S:
            return self  # still flagged: the first call after the gap refreshes
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._initialize and time.monotonic() - self._refreshed_at >= self.REFRESH_GAP_S:
                try:
                    await nodes.initialize(additional_startup_nodes_info, last_failed_node_name)
                except BaseException:  # as redis-py does: no connection to a node it may not know
                    await nodes.aclose()
                    await nodes.aclose("startup_nodes")
                    raise
                finally:
                    self._refreshed_at = time.monotonic()
                self.commands_parser.node = nodes.default_node
                self._initialize = False
        return self

    async def relearn_slots(self) -> None:
        """Learn the slot table again for an error redis-py did not see (a call made on a node's
        connection directly): now, unless a refresh ran within REFRESH_GAP_S (then the first
        call after the gap does)."""
        self._initialize = True
        await self.initialize()

    async def aclose(self) -> None:
        """redis-py closes only a client whose flag says it is set up: with a refresh held
        back the flag is still up, yet calls made meanwhile hold connections. Close them."""
        if self._initialize and self._refreshed_at is not None and self.nodes_manager.default_node is not None:
            self._initialize = False
        await super().aclose()


class WaitingRedis(_Waiting, aioredis.Redis):  # type: ignore[misc]
    pass


@dataclass
class Topology:
    mode: str  # "single", "cluster" or "sentinel"
    api: Any  # the API's client
    worker: Any  # the worker's client (claims, heartbeats, outcomes)

    @property
    def cluster(self) -> bool:
        return self.mode == "cluster"

    async def initialize(self, runs_workers: bool = True) -> None:
        """Learn a Cluster's slots before the first calls: concurrent first calls on a fresh
        client each start discovering it, and tear down each other's connections. On one
        server, connect the clients' lanes (see warm_lane): the worker client's only in a
        process that runs workers (an API process uses it rarely, if ever)."""
        if self.cluster:
            for c in (self.api, self.worker):
                await c.initialize()
        else:
            for c in self._clients():
                if runs_workers or c is self.api:
                    await warm_lane(c)

    async def close(self) -> None:
        for c in self._clients():
            await c.aclose()

    def _clients(self) -> list[Any]:
        """api and worker, once each (they may be one client)."""
        return list({id(c): c for c in (self.api, self.worker)}.values())


def make_topology(settings: Settings, worker_pool: int, cluster: bool | None = None) -> Topology:
    """Clients for REDIS_SENTINELS, or REDIS_URL as one server or a Cluster (``cluster``, else
    REDIS_CLUSTER; "auto" starts as one server until ``cluster_enabled`` has asked)."""
    s = settings
    if s.redis_sentinels:
        return Topology("sentinel", _sentinel_client(s, s.redis_max_connections), _sentinel_client(s, worker_pool))
    assert s.redis_url is not None
    if cluster is None:
        cluster = s.redis_cluster == "true"
    if cluster:
        return Topology(
            "cluster", _cluster_client(s.redis_url, s.redis_max_connections), _cluster_client(s.redis_url, worker_pool)
        )
    return Topology("single", make_client(s.redis_url, s.redis_max_connections), make_client(s.redis_url, worker_pool))


async def cluster_enabled(client: Any) -> bool:
    """INFO cluster on the node REDIS_URL names (Redis answers cluster_enabled:1 on a Cluster)."""
    info = await client.info("cluster")
    return int(info.get("cluster_enabled", 0)) == 1


def _cluster_client(url: str, limit: int) -> WaitingCluster:
    client: WaitingCluster = WaitingCluster.from_url(  # type: ignore[assignment]
        url,
        retry=_no_retry(),
        max_connections=limit,
        decode_responses=False,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=10,
        health_check_interval=15,
    )
    client._slots = asyncio.Semaphore(limit)
    # Every node, the first ones and those learned later, is made from these (TCP or TLS)
    kw = client.nodes_manager.connection_kwargs
    kw["connection_class"] = mixed_in(_ReconnectsAtEof, kw.get("connection_class", aioredis.Connection))
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = mixed_in(_ReconnectsAtEof, node.connection_class)
    return client


def _sentinel_client(s: Settings, limit: int) -> WaitingRedis:
    """The current primary of REDIS_SENTINEL_MASTER; redis-py asks the sentinels again on failover.
    REDIS_URL, if set, gives the primary's password, user, db and TLS (rediss://)."""
    kw: dict[str, Any] = {}
    if s.redis_url:
        parsed = parse_url(s.redis_url)
        kw = {k: parsed[k] for k in ("username", "password", "db") if parsed.get(k) is not None}
        if s.redis_url.startswith("rediss://"):
            kw["ssl"] = True
    sentinel_kw: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2}
    if s.redis_sentinel_password:
        sentinel_kw["password"] = s.redis_sentinel_password
    if kw.get("ssl"):
        sentinel_kw["ssl"] = True
    hosts = [(a.rpartition(":")[0], int(a.rpartition(":")[2])) for a in s.redis_sentinels]
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        hosts,
        sentinel_kwargs=sentinel_kw,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=10,
        retry=_no_retry(),
        **kw,
    )
    assert s.redis_sentinel_master is not None
    client: WaitingRedis = sentinel.master_for(
        s.redis_sentinel_master,
        redis_class=WaitingRedis,
        connection_pool_class=CheckedSentinelPool,
        max_connections=limit + 1,  # one beyond the slots: the wake listener's subscription
        decode_responses=False,
    )
    client._slots = asyncio.Semaphore(limit)
    return client


def make_client(url: str, max_connections: int) -> aioredis.Redis:
    """A client on a blocking pool of at most ``max_connections`` connections."""
    pool = CheckedPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_S,
        retry=_no_retry(),
        decode_responses=False,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=10,
        health_check_interval=15,
    )
    kw = pool.connection_kwargs
    if kw.get("encoding", "utf-8") == "utf-8" and kw.get("encoding_errors", "strict") == "strict":
        pool.connection_class = with_hiredis_packing(pool.connection_class)  # hiredis packs strict UTF-8 only
    client = aioredis.Redis(connection_pool=pool)
    client.gtq_lane = Lane(max_connections)  # type: ignore[attr-defined]
    return client


@contextlib.asynccontextmanager
async def guard() -> AsyncIterator[None]:
    """Turn 'Redis cannot take this now' into BackendUnavailable (HTTP 503, never 201)."""
    try:
        yield
    except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:  # a full pool's wait too
        raise BackendUnavailable(f"redis unreachable: {exc}") from exc
    except REFUSALS as exc:  # redis-py strips the reply's code off these: match by class
        raise BackendUnavailable(f"redis refused: {type(exc).__name__}: {exc}") from exc
    except rexc.ResponseError as exc:
        msg = str(exc)
        if msg.startswith(_REFUSAL_PREFIXES):
            raise BackendUnavailable(f"redis refused: {msg}") from exc
        raise


class Commands:
    """Commands for one write on one connection (``send_all``): the few pipeline methods the
    callers of ``_write`` and ``complete_and_claim`` use, nothing else."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.items)

    def zadd(self, key: str, mapping: dict[Any, float]) -> None:
        args: list[Any] = ["ZADD", key]
        for member, score in mapping.items():
            args += (score, member)
        self.items.append(tuple(args))

    def sadd(self, key: str, *members: Any) -> None:
        self.items.append(("SADD", key, *members))

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> None:
        self.items.append(("EVALSHA", sha, numkeys, *args))

    def execute_command(self, *args: Any) -> None:
        self.items.append(args)


class Lane:
    """A few connected connections a client keeps out of its pool between ``send_all`` calls.

    Taking one from redis-py's pool and giving it back (a condition lock, a timeout, a socket
    check, observability hooks), then its send (an ``asyncio.wait_for``: a task on Python 3.11)
    and its per-reply timeouts and error texts were ~15 % of a worker's CPU per no-op job in a
    py-spy profile. Here one write, the parser's replies and one timeout for the whole exchange.
    Only for a plain server's blocking pool (``make_client``): a Sentinel pool raises when full,
    and a Cluster client routes by slot. At most ``size`` idle connections are held back, an
    eighth of the pool, so other calls still find theirs."""

    __slots__ = ("idle", "size")

    def __init__(self, max_connections: int) -> None:
        self.idle: list[Any] = []
        self.size = min(4, max_connections // 8)


async def warm_lane(client: Any) -> None:
    """Connect a lane's connections at start-up instead of on the first calls. Under load the
    first calls each paid a TCP connect and the HELLO and CLIENT SETINFO round trips (3-15 ms
    apiece here, six of them on the first jobs' way in bench_load_latency)."""
    lane: Lane | None = getattr(client, "gtq_lane", None)
    if lane is None:
        return
    pool = client.connection_pool
    while len(lane.idle) < lane.size:  # one at a time: each is the lane's as soon as it is connected
        lane.idle.append(await pool.get_connection())


async def send_all(client: Any, commands: Commands) -> list[Any]:
    """The commands in one write on one pooled connection, and their replies (an error reply as
    its exception, in its place). What redis-py's Pipeline.execute does, without its per-call
    bookkeeping (stack reset, timing hooks, script and prepare checks): that was ~5 % of a
    worker's CPU per no-op job in a py-spy profile. Not for a Cluster client."""
    lane: Lane | None = getattr(client, "gtq_lane", None)
    if lane is not None and lane.size:
        return await _send_on_lane(client.connection_pool, lane, commands)
    async with slot_of(client):  # a Sentinel pool raises when full: wait for a slot as execute_command does
        return await _send_pooled(client.connection_pool, commands)


async def _send_pooled(pool: Any, commands: Commands) -> list[Any]:
    conn = await pool.get_connection()
    try:
        await conn.send_packed_command(conn.pack_commands(commands.items))
        replies: list[Any] = []
        for _ in commands.items:
            try:
                replies.append(await conn.read_response())
            except rexc.ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        await conn.disconnect()  # a reply may be left unread (an error, a cancel): never reuse it
        raise
    finally:
        await pool.release(conn)


async def _send_on_lane(pool: Any, lane: Lane, commands: Commands) -> list[Any]:
    loop = asyncio.get_running_loop()
    conn = lane.idle.pop() if lane.idle else await pool.get_connection()
    keep = False
    try:
        await _reopen_if_closed(conn)  # as the pool does (CheckedPool), without its other probes
        if conn.health_check_interval and loop.time() > conn.next_health_check:
            await conn.check_health()  # a PING after a long idle, as redis-py's own send does
        packed = conn.pack_commands(commands.items)
        parser = conn._parser
        replies: list[Any] = []
        try:
            async with asyncio.timeout(conn.socket_timeout):
                writer = conn._writer
                writer.writelines(packed)
                await writer.drain()
                for _ in commands.items:
                    replies.append(await parser.read_response(disable_decoding=False))
        except TimeoutError:
            raise rexc.TimeoutError(f"Timeout reading from {_where(conn)}") from None
        except OSError as exc:
            raise rexc.ConnectionError(f"Error while talking to {_where(conn)}: {exc}") from exc
        if conn.health_check_interval:
            conn.next_health_check = loop.time() + conn.health_check_interval
        # READONLY: the server became a replica; a new connection may find the primary
        keep = not any(isinstance(r, rexc.ReadOnlyError) for r in replies)
        return replies
    finally:
        if keep and len(lane.idle) < lane.size:
            lane.idle.append(conn)
        else:
            if not keep:  # a reply may be left unread (an error, a cancel): never reuse it
                await conn.disconnect()
            await pool.release(conn)


def _where(conn: Any) -> str:
    return f"{conn.host}:{conn.port}" if hasattr(conn, "host") else str(getattr(conn, "path", "redis"))


async def startup_checks(topology: Topology) -> None:
    """On every primary: warn loudly unless maxmemory-policy is noeviction; report persistence."""
    if topology.cluster:
        targets: list[Any] = [(n.name, {"target_nodes": n}) for n in topology.api.get_primaries()]
    else:
        targets = [(topology.mode, {})]
    for name, kw in targets:
        try:
            cfg = await topology.api.config_get("*", **kw)
        except (rexc.ResponseError, rexc.ConnectionError, rexc.TimeoutError, OSError):
            continue  # CONFIG may be renamed or disabled on managed Redis
        conf = {_str(k): _str(v) for k, v in cfg.items()}
        policy = conf.get("maxmemory-policy", "noeviction")
        if policy != "noeviction":
            log.warning(
                "REDIS %s: maxmemory-policy is %r, not 'noeviction': Redis may evict job keys and "
                "LOSE JOBS. Set maxmemory-policy noeviction.",
                name,
                policy,
            )
        if topology.cluster and conf.get("cluster-require-full-coverage", "no") == "yes":
            log.warning(
                "REDIS %s: cluster-require-full-coverage is yes: while one primary is down the whole "
                "Cluster refuses every command, stalling every queue. Set it to no.",
                name,
            )
        log.info(
            "redis primary %s: appendonly=%s appendfsync=%s save=%r",
            name,
            conf.get("appendonly"),
            conf.get("appendfsync"),
            conf.get("save"),
        )


def _str(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
