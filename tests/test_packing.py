"""The hiredis packer sends exactly the bytes redis-py's own packer would, or refuses alike."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from gotaskq.backends.redis import RedisBackend
from gotaskq.backends.redis.packing import with_hiredis_packing
from gotaskq.config import Settings

ARGS = [
    ("PING",),
    ("EVALSHA", "a" * 40, 1, "gtq:{q}:", 86_400_000, 0, -1, 0.1 + 0.2, 1e300, 2**70, b"x\r\n\x00", "é\n"),
    ("CLIENT SETNAME", "gotaskq"),
    (b"CONFIG GET", b"maxmemory"),
    ("SET", "k", bytearray(b"v")),
    ("SET", "k", memoryview(b"v" * 10_000)),
    ("SET", "k", b"v" * 100_000),
]


@pytest.mark.parametrize("args", ARGS, ids=lambda a: repr(a[:3])[:40])
def test_same_bytes_as_redis_py(args: tuple[object, ...]) -> None:
    ours = with_hiredis_packing(Connection)()
    theirs = Connection()
    assert b"".join(ours.pack_command(*args)) == b"".join(theirs.pack_command(*args))


@pytest.mark.parametrize("bad", [None, True, object()])
def test_refuses_what_redis_py_refuses(bad: object) -> None:
    with pytest.raises(DataError):
        with_hiredis_packing(Connection)().pack_command("SET", "k", bad)


def test_one_class_per_connection_kind() -> None:
    kinds = [Connection, SSLConnection, UnixDomainSocketConnection]
    made = [with_hiredis_packing(k) for k in kinds]
    assert [issubclass(m, k) for m, k in zip(made, kinds, strict=True)] == [True] * 3
    assert with_hiredis_packing(Connection) is made[0]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("redis://127.0.0.1:1/0", Connection),
        ("rediss://127.0.0.1:1/0", SSLConnection),
        ("unix:///tmp/none.sock", UnixDomainSocketConnection),
    ],
)
async def test_backend_keeps_the_kind_of_its_url(url: str, kind: type) -> None:
    backend = RedisBackend(Settings(redis_url=url))
    await backend.connect()  # nothing listens: it starts anyway
    try:
        cls = backend.client.connection_pool.connection_class
        assert issubclass(cls, kind) and cls.pack_command is not kind.pack_command
    finally:
        await backend.close()


async def test_backend_keeps_redis_py_packing_for_another_encoding() -> None:
    backend = RedisBackend(Settings(redis_url="redis://127.0.0.1:1/0?encoding=latin-1"))
    await backend.connect()
    try:
        assert backend.client.connection_pool.connection_class is Connection
    finally:
        await backend.close()
