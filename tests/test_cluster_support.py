"""Self-test of tests/cluster_support.py: the topologies come up, route keys and fail over."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import redis
import redis.sentinel
from cluster_support import RedisClusterSet, RedisSentinelSet, queue_names_on_every_primary

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    return binary


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSet]:
    topology = RedisClusterSet(_binary(), tmp_path_factory.mktemp("cluster"))
    topology.start()
    yield topology
    topology.stop()


@pytest.fixture(scope="module")
def sentinel_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelSet]:
    topology = RedisSentinelSet(_binary(), tmp_path_factory.mktemp("sentinel"))
    topology.start()
    yield topology
    topology.stop()


def test_cluster_routes_keys_across_slots(cluster: RedisClusterSet) -> None:
    assert len(cluster.primaries()) == 3
    with redis.cluster.RedisCluster.from_url(cluster.url, decode_responses=True) as client:
        for i in range(30):
            client.set(f"key-{i}", str(i))
        assert [client.get(f"key-{i}") for i in range(30)] == [str(i) for i in range(30)]
        assert client.cluster_keyslot("key-1") != client.cluster_keyslot("key-2")
    holders = {cluster.primary_for_key(f"key-{i}") for i in range(30)}
    assert holders == {port for port, _ in cluster.primaries()}
    cluster.flushall()
    with redis.Redis(port=cluster.primary_for_key("key-1")) as node:
        assert node.dbsize() == 0


def test_queue_names_cover_every_primary(cluster: RedisClusterSet) -> None:
    names = queue_names_on_every_primary(cluster, n_per_primary=2)
    assert len(names) == 6 and len(set(names)) == 6
    owners = [cluster.primary_for_key(f"gtq:{{{name}}}:meta") for name in names]
    assert sorted(set(owners)) == sorted(port for port, _ in cluster.primaries())
    assert all(owners.count(port) == 2 for port in set(owners))


def test_cluster_kill_primary_promotes_replica(cluster: RedisClusterSet) -> None:
    with cluster.client(decode_responses=True) as client:
        client.set("survivor", "yes")
        old = cluster.primary_for_key("survivor")
        (replica,) = cluster.replicas_of(old)
        with redis.Redis(port=old) as node:
            node.execute_command("WAIT", 1, 2000)  # the key must reach the replica before the crash
    new = cluster.kill_primary(old)
    assert new == replica and cluster.primary_for_key("survivor") == new
    assert old not in [port for port, _ in cluster.primaries()]
    with cluster.client(decode_responses=True) as client:
        assert client.get("survivor") == "yes"
    cluster.restart_node(old)
    assert cluster.replicas_of(new) == [old]


def test_sentinel_master_for_and_failover(sentinel_set: RedisSentinelSet) -> None:
    assert sentinel_set.env()["REDIS_SENTINEL_MASTER"] == "gtqmaster"
    assert sentinel_set.env()["REDIS_SENTINELS"] == ",".join(sentinel_set.sentinels)
    sentinel = redis.sentinel.Sentinel(sentinel_set.sentinel_addresses, socket_timeout=1.0)
    master = sentinel.master_for(sentinel_set.master_name, socket_timeout=1.0, decode_responses=True)
    try:
        master.set("before", "1")
        master.execute_command("WAIT", 1, 2000)
        old = sentinel_set.current_primary()
        new = sentinel_set.kill_primary()
        assert new != old
        assert sentinel.discover_master(sentinel_set.master_name) == ("127.0.0.1", new)
        # master_for re-resolves the primary on reconnect: the acknowledged write survived.
        assert master.get("before") == "1"
        master.set("after", "2")
        sentinel_set.flushall()
        assert master.dbsize() == 0
    finally:
        master.close()
        for s in sentinel.sentinels:
            s.close()
