"""Clients for one Redis deployment, and the one place that maps Redis failures onto ours.

Two bounded pools per process: one for the API and admin calls (REDIS_MAX_CONNECTIONS), one for
the worker's claims, heartbeats and completions, so a burst of HTTP reads can never make a
worker miss the heartbeat that keeps its leases. Both pools wait for a free connection instead
of failing when they are full.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as rexc

from ...errors import BackendUnavailable
from .packing import with_hiredis_packing

log = logging.getLogger("gotaskq.redis")
POOL_WAIT_S = 10.0  # how long a call waits for a free connection before it answers 503
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


def make_client(url: str, max_connections: int) -> aioredis.Redis:
    """A client on a blocking pool of at most ``max_connections`` connections."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_S,
        decode_responses=False,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=15,
    )
    kw = pool.connection_kwargs
    if kw.get("encoding", "utf-8") == "utf-8" and kw.get("encoding_errors", "strict") == "strict":
        pool.connection_class = with_hiredis_packing(pool.connection_class)  # hiredis packs strict UTF-8 only
    return aioredis.Redis(connection_pool=pool)


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


async def warn_eviction(client: Any) -> None:
    """Log loudly when Redis may evict job keys (any maxmemory-policy but noeviction)."""
    try:
        cfg = await client.config_get("maxmemory-policy")
    except (rexc.ResponseError, rexc.ConnectionError, rexc.TimeoutError, OSError):
        return  # CONFIG may be renamed or disabled on managed Redis
    policy = next(iter(cfg.values()), b"noeviction")
    if isinstance(policy, bytes):
        policy = policy.decode()
    if policy != "noeviction":
        log.warning(
            "REDIS maxmemory-policy is %r, not 'noeviction': Redis may evict job keys and "
            "LOSE JOBS. Set maxmemory-policy noeviction.",
            policy,
        )
