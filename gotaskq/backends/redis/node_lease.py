"""Snowflake node ids leased in Redis: no two live processes ever mint ids with the same node.

A process takes a free ``gtq:node:<n>`` with ``SET NX PX`` and renews it well before it
expires. It mints ids only while its lease is surely still held (measured on its own monotonic
clock from before the renewal was sent); a lease it cannot renew in time is given up, and ids
wait for a new one, so a process cut off from Redis never shares a node id with its successor.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from typing import Any

from ... import keys
from ...errors import BackendUnavailable
from ...ids import MAX_NODE, Snowflake
from .connection import guard

log = logging.getLogger("gotaskq.redis")
LEASE_MS = 60_000
RENEW_EVERY_S = 10.0
SAFETY_S = 5.0  # stop minting this long before the lease could have expired
PROBE = 64  # node ids tried per round trip


class NodeLease:
    def __init__(self, client: Any, renew_script: Any) -> None:
        self._client = client
        self._renew_script = renew_script
        self._token = secrets.token_hex(8)
        self._ids: Snowflake | None = None
        self._valid_until = 0.0  # monotonic
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def node(self) -> int | None:
        return None if self._ids is None else self._ids.node

    async def ids(self) -> Snowflake:
        """The id source, once a node id is surely held."""
        if self._ids is not None and time.monotonic() < self._valid_until:
            return self._ids
        async with self._lock:
            if self._ids is not None and time.monotonic() < self._valid_until:
                return self._ids
            if self._ids is not None and not await self._renew():
                self._ids = None
            if self._ids is None:
                self._ids = Snowflake(await self._acquire())
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._renew_loop())
            return self._ids

    async def _acquire(self) -> int:
        start = random.randrange(MAX_NODE + 1)  # spread processes so few probes collide
        for base in range(0, MAX_NODE + 1, PROBE):
            nodes = [(start + base + i) % (MAX_NODE + 1) for i in range(PROBE)]
            sent = time.monotonic()
            async with guard():
                pipe = self._client.pipeline(transaction=False)
                for n in nodes:
                    pipe.set(keys.node_key(n), self._token, nx=True, px=LEASE_MS)
                got = await pipe.execute()
            won = [n for n, ok in zip(nodes, got, strict=True) if ok]
            if won:
                if len(won) > 1:  # the others back in one round trip (on a fresh Redis: 63 of them)
                    async with guard():
                        pipe = self._client.pipeline(transaction=False)
                        for n in won[1:]:  # one key a DEL: on a Cluster they live in different slots
                            pipe.delete(keys.node_key(n))
                        await pipe.execute()
                self._valid_until = sent + LEASE_MS / 1000 - SAFETY_S
                return won[0]
        raise BackendUnavailable(f"all {MAX_NODE + 1} node ids are leased by live processes")

    async def _renew(self) -> bool:
        assert self._ids is not None
        sent = time.monotonic()
        async with guard():
            ok = await self._renew_script(keys=[keys.node_key(self._ids.node)], args=[self._token, LEASE_MS])
        if ok:
            self._valid_until = sent + LEASE_MS / 1000 - SAFETY_S
        else:
            log.warning("lost the lease on node id %d; taking a new one before minting ids", self._ids.node)
        return bool(ok)

    async def _renew_loop(self) -> None:
        while self._ids is not None:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                async with self._lock:
                    if self._ids is not None and not await self._renew():
                        self._ids = None
            except BackendUnavailable as exc:
                log.warning("could not renew the node id lease: %s", exc)

    async def release(self) -> None:
        """Give the node id back at shutdown (only if it is still ours)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._ids is None:
            return
        node, self._ids = self._ids.node, None
        try:
            async with guard():
                await self._renew_script(keys=[keys.node_key(node)], args=[self._token, 1])
        except BackendUnavailable:
            pass  # it expires on its own
