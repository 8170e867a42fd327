"""The Cluster and Sentinel fixtures give working topologies, checked with plain redis-py."""
from __future__ import annotations

import pytest
from helpers import find_redis_server, wait_until
from redis.exceptions import MovedError, ReadOnlyError
from redis.sentinel import Sentinel
from topologies import ClusterTopology

cluster = pytest.mark.cluster
sentinel = pytest.mark.sentinel


def _masters_empty(topology):
    return all(node.client().dbsize() == 0 for node in topology.masters())


@cluster
def test_cluster_url_lists_the_masters(redis_cluster, cluster_url):
    masters = redis_cluster.masters()
    assert len(masters) == 3
    assert len(redis_cluster.replicas()) == 3
    assert cluster_url == "redis+cluster://" + ",".join(f"127.0.0.1:{m.port}" for m in masters)
    assert _masters_empty(redis_cluster)
    redis_cluster.client().set("dirty", "1")  # the next test must not see it


@cluster
def test_cluster_hash_tags_spread_over_masters(redis_cluster, cluster_url):
    assert _masters_empty(redis_cluster)
    client = redis_cluster.client(decode_responses=True)
    owners = {}  # master port -> the first key it got
    for n in range(100):
        key = f"{{tag{n}}}:job"
        client.set(key, f"job {n}")
        owners.setdefault(redis_cluster.master_for_key(key).port, (key, f"job {n}"))
        if len(owners) == 3:
            break
    assert len(owners) == 3, "three hash tags should land on three different masters"
    masters = redis_cluster.masters()
    for port, (key, value) in owners.items():
        owner = next(m for m in masters if m.port == port)
        assert owner.client().get(key) == value  # the owner serves it directly...
        other = next(m for m in masters if m.port != port)
        with pytest.raises(MovedError) as moved:
            other.client().get(key)  # ...any other master redirects there
        assert moved.value.port == port
    # Keys sharing a hash tag share a slot, hence a master.
    assert redis_cluster.master_for_key("{tag0}:a") is redis_cluster.master_for_key("{tag0}:b")


@cluster
def test_cluster_created_by_hand_without_redis_cli(tmp_path):
    topology = ClusterTopology(find_redis_server(), tmp_path / "cluster",
                               masters=2, replicas=1, use_cli=False)
    topology.start()
    try:
        assert not topology.cli_log.exists()
        masters, replicas = topology.masters(), topology.replicas()
        assert len(masters) == 2 and len(replicas) == 2
        assert {r.master_id for r in replicas} == {m.node_id for m in masters}
        client = topology.client(decode_responses=True)
        for master in masters:
            key = topology.key_for(master)
            client.set(key, master.name)
            assert master.client().get(key) == master.name
    finally:
        topology.stop()
    assert not any(node.alive for node in topology.nodes)


@sentinel
def test_sentinel_master_writes_reach_the_replica(redis_sentinel, sentinel_url):
    ports = ",".join(f"127.0.0.1:{port}" for _, port in redis_sentinel.sentinel_addresses)
    assert sentinel_url == f"redis+sentinel://{ports}/0?master=mymaster"
    assert redis_sentinel.url(3).endswith("/3?master=mymaster")
    watcher = Sentinel(redis_sentinel.sentinel_addresses, socket_timeout=2.0)
    assert watcher.discover_master("mymaster") == redis_sentinel.master_address()
    master = watcher.master_for("mymaster", decode_responses=True)
    assert master.dbsize() == 0
    master.set("greeting", "hello")
    replica = watcher.slave_for("mymaster", decode_responses=True)
    wait_until(lambda: replica.get("greeting") == "hello", timeout=5,
               message=f"the replica never saw the write\n{redis_sentinel.logs()}")
    with pytest.raises(ReadOnlyError):
        replica.set("greeting", "from the replica")


@cluster
@pytest.mark.timeout(120)
def test_cluster_failover(fresh_cluster):
    client = fresh_cluster.client(decode_responses=True)
    client.set("{job}:before", "kept")
    fresh_cluster.wait_replicated()

    old = fresh_cluster.kill_master_for_key("{job}:before")
    assert not old.alive
    new = fresh_cluster.wait_failover(old)
    assert new.port != old.port and new.role == "master"
    assert fresh_cluster.master_for_key("{job}:before") is new
    assert f"127.0.0.1:{new.port}" in fresh_cluster.url()
    assert f"127.0.0.1:{old.port}" not in fresh_cluster.url()

    # The client that was connected before the failover carries on.
    assert client.get("{job}:before") == "kept"
    client.set("{job}:after", "written")
    assert new.client().get("{job}:after") == "written"

    fresh_cluster.restart(old)  # it rejoins as a replica of the promoted node
    assert old.alive and old.role == "replica"
    replica = old.client()
    replica.execute_command("READONLY")
    wait_until(lambda: replica.get("{job}:after") == "written", timeout=10,
               message=f"the restarted node did not sync\n{fresh_cluster.logs()}")


@sentinel
@pytest.mark.timeout(120)
def test_sentinel_failover(fresh_sentinel):
    watcher = Sentinel(fresh_sentinel.sentinel_addresses, socket_timeout=2.0)
    master = watcher.master_for("mymaster", decode_responses=True)
    master.set("before", "kept")
    fresh_sentinel.wait_replicated()

    old = fresh_sentinel.kill_master()
    new = fresh_sentinel.wait_failover(old)
    assert new != old
    assert watcher.discover_master("mymaster") == new == fresh_sentinel.master_address()
    assert fresh_sentinel.node_at(new).call("ROLE")[0] == "master"

    # The master_for client finds the new master by itself.
    assert master.get("before") == "kept"
    master.set("after", "written")
    assert fresh_sentinel.node_at(new).client().get("after") == "written"

    # as_replica: skip the ~20 s Sentinel takes to convert a returning old master itself.
    restarted = fresh_sentinel.restart_old_master(as_replica=True)
    assert restarted.address == old and restarted.role == "replica"
    assert restarted.call("ROLE")[0] == "slave"
    wait_until(lambda: restarted.client().get("after") == "written", timeout=10,
               message=f"the old master did not sync\n{fresh_sentinel.logs()}")
