"""Commands packed by hiredis, in C: redis-py's asyncio client packs them in Python.

Packing was about 6 us a command plus 0.4 us an argument, paid for every script call (a
bulk enqueue of 1,000 jobs sends 1,006 arguments); hiredis.pack_command writes the same
bytes in a sixth of that. Anything hiredis does not take (bytearray, and the values redis-py
refuses with DataError) goes to redis-py's own packer, so behaviour is unchanged; text is
UTF-8, so RedisBackend uses it only with redis-py's default encoding.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection


class HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if isinstance(name, str):
            name = name.encode()
        if isinstance(name, bytes) and b" " in name:  # 'CLIENT SETNAME': words are arguments
            args = (*name.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return super().pack_command(*args)


_made: dict[tuple[type, type], type] = {}


def mixed_in(mixin: type, connection_class: type) -> type:
    """``connection_class`` (TCP, TLS or Unix socket) with ``mixin`` first; one class each, so
    every connection of a pool shares it."""
    made = _made.get((mixin, connection_class))
    if made is None:
        name = f"{mixin.__name__.lstrip('_')}{connection_class.__name__}"
        made = _made[(mixin, connection_class)] = type(name, (mixin, connection_class), {})
    return made


def with_hiredis_packing(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    """``connection_class``, packing with hiredis."""
    made: type[AbstractConnection] = mixed_in(HiredisPacking, connection_class)
    return made
