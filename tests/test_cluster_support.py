"""Self-test of tests/cluster_support.py: the topologies come up, route keys and fail over."""

from __future__ import annotations

import pytest
import redis
import redis.sentinel
from cluster_support import RedisClusterSet, RedisSentinelSet, queue_names_on_every_primary

pytestmark = [pytest.mark.redis, pytest.mark.slow]


# The session's topologies (conftest.py): the failover tests below leave them whole again.


def test_cluster_routes_keys_across_slots(redis_cluster: RedisClusterSet) -> None:
    assert len(redis_cluster.primaries()) == 3
    with redis.cluster.RedisCluster.from_url(redis_cluster.url, decode_responses=True) as client:
        for i in range(30):
            client.set(f"key-{i}", str(i))
        assert [client.get(f"key-{i}") for i in range(30)] == [str(i) for i in range(30)]
        assert client.cluster_keyslot("key-1") != client.cluster_keyslot("key-2")
    holders = {redis_cluster.primary_for_key(f"key-{i}") for i in range(30)}
    assert holders == {port for port, _ in redis_cluster.primaries()}
    redis_cluster.flushall()
    with redis.Redis(port=redis_cluster.primary_for_key("key-1")) as node:
        assert node.dbsize() == 0


def test_queue_names_cover_every_primary(redis_cluster: RedisClusterSet) -> None:
    names = queue_names_on_every_primary(redis_cluster, n_per_primary=2)
    assert len(names) == 6 and len(set(names)) == 6
    owners = [redis_cluster.primary_for_key(f"gtq:{{{name}}}:meta") for name in names]
    assert sorted(set(owners)) == sorted(port for port, _ in redis_cluster.primaries())
    assert all(owners.count(port) == 2 for port in set(owners))


def test_cluster_kill_primary_promotes_replica(redis_cluster: RedisClusterSet) -> None:
    with redis_cluster.client(decode_responses=True) as client:
        client.set("survivor", "yes")
        old = redis_cluster.primary_for_key("survivor")
        (replica,) = redis_cluster.replicas_of(old)
        with redis.Redis(port=old) as node:
            node.execute_command("WAIT", 1, 2000)  # the key must reach the replica before the crash
    new = redis_cluster.kill_primary(old)
    assert new == replica and redis_cluster.primary_for_key("survivor") == new
    assert old not in [port for port, _ in redis_cluster.primaries()]
    with redis_cluster.client(decode_responses=True) as client:
        assert client.get("survivor") == "yes"
    redis_cluster.restart_node(old)
    assert redis_cluster.replicas_of(new) == [old]


def test_sentinel_master_for_and_failover(redis_sentinel: RedisSentinelSet) -> None:
    assert redis_sentinel.env()["REDIS_SENTINEL_MASTER"] == "gtqmaster"
    assert redis_sentinel.env()["REDIS_SENTINELS"] == ",".join(redis_sentinel.sentinels)
    sentinel = redis.sentinel.Sentinel(redis_sentinel.sentinel_addresses, socket_timeout=1.0)
    master = sentinel.master_for(redis_sentinel.master_name, socket_timeout=1.0, decode_responses=True)
    try:
        master.set("before", "1")
        master.execute_command("WAIT", 1, 2000)
        old = redis_sentinel.current_primary()
        new = redis_sentinel.kill_primary()
        assert new != old
        redis_sentinel.restart_server(old)  # a replica again: the set can fail over once more
        assert sentinel.discover_master(redis_sentinel.master_name) == ("127.0.0.1", new)
        # master_for re-resolves the primary on reconnect: the acknowledged write survived.
        assert master.get("before") == "1"
        master.set("after", "2")
        redis_sentinel.flushall()
        assert master.dbsize() == 0
    finally:
        master.close()
        for s in sentinel.sentinels:
            s.close()
