"""One fetch reads a node's queues in the order it is given, on one server in one call,
and a stream without its group strands nothing (``RedisBroker.fetch`` / ``post_fetch``);
a blocking wait reads what comes, and survives its connection (``RedisBroker.wait``)."""
from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest

from multiq.broker.redis import Delivery, RedisBroker
from multiq.keys import GROUP
from multiq.redisconn import UNAVAILABLE


def _broker(redis_url: str, *queues: str) -> RedisBroker:
    broker = RedisBroker(redis_url)
    broker.declare(list(queues))
    return broker


def _send(broker: RedisBroker, queue: str, n: int, priority: int = 0) -> None:
    for i in range(n):
        broker.publish(queue, b'{"id":"%s%d","task":"t"}' % (queue.encode(), i),
                       priority=priority)


def _where(got: List[Delivery]) -> List[Any]:
    return [(d.queue, d.band) for d in got]


def _evalsha_calls(redis_client: Any) -> int:
    return int(redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.timeout(30)
def test_one_call_reads_the_queues_in_the_order_given(redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "a", "b")
    _send(broker, "a", 5)
    _send(broker, "b", 1)
    _send(broker, "b", 1, priority=9)
    redis_client.config_resetstat()
    got = broker.fetch("c1", ["b", "a"], 4)
    assert _where(got) == [("b", 9), ("b", 0), ("a", 0), ("a", 0)]
    assert _evalsha_calls(redis_client) == 1  # the rotation costs no round trip
    got = broker.fetch("c1", ["a", "b"], 10)
    assert _where(got) == [("a", 0)] * 3
    broker.close()


@pytest.mark.timeout(30)
def test_a_posted_fetch_carries_every_queue_in_its_exchange(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "a", "b")
    _send(broker, "a", 1)
    _send(broker, "b", 2)
    redis_client.config_resetstat()
    replies, got = broker.post_fetch([("SET", "w", "1")], "c1", ["b", "a"], 10).result()
    assert replies == [b"OK"]
    assert [d.data for d in got] == [b'{"id":"b0","task":"t"}', b'{"id":"b1","task":"t"}',
                                     b'{"id":"a0","task":"t"}']
    assert _evalsha_calls(redis_client) == 1  # no second fetch for the queues after the first
    broker.close()


@pytest.mark.timeout(30)
def test_a_stream_without_its_group_strands_nothing_read_before_it(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "a", "q")
    _send(broker, "q", 1, priority=9)
    redis_client.delete("multiq:q:{q}:0")  # as after a flush: a send recreates it, no group
    _send(broker, "q", 1)
    _send(broker, "a", 1)
    first = broker.fetch("c1", ["q", "a"], 10)
    assert _where(first) == [("q", 9), ("a", 0)]  # handed to the caller, not left pending
    second = broker.fetch("c1", ["q", "a"], 10)
    assert _where(second) == [("q", 0)]  # the group was made again: served next time

    redis_client.delete("multiq:q:{q}:5")  # the same through a posted fetch
    _send(broker, "q", 1, priority=5)
    _send(broker, "a", 1)
    _, third = broker.post_fetch([], "c1", ["q", "a"], 10).result()
    assert _where(third) == [("a", 0)]
    fourth = broker.fetch("c1", ["q", "a"], 10)
    assert _where(fourth) == [("q", 5)]
    pending = broker.own_pending("c1", ["q", "a"])  # all of it reached the caller
    assert sorted(d.entry_id for d in pending) == \
        sorted(d.entry_id for d in first + second + third + fourth)
    broker.close()


@pytest.mark.timeout(30)
def test_a_blocking_wait_wakes_for_what_comes_and_reads_it_whole(
        redis_url: str, redis_client: Any) -> None:
    broker, sender = _broker(redis_url, "a", "b"), RedisBroker(redis_url)
    assert broker.wait("c1", ["a", "b"], 4, 50) == []
    redis_client.xadd(broker.keys.stream("a", 0), {"m": b'{"id":"r","task":"t"}', "n": 2})
    threading.Timer(0.2, _send, (sender, "b", 1)).start()
    got = broker.wait("c1", ["b", "a"], 4, 5000)  # the requeued entry is there at once
    assert [(d.queue, d.data, d.redeliveries) for d in got] == [
        ("a", b'{"id":"r","task":"t"}', 2)]
    got = broker.wait("c1", ["b", "a"], 4, 5000)  # then it waits for the one sent later
    assert [(d.queue, d.band, d.data) for d in got] == [("b", 0, b'{"id":"b0","task":"t"}')]
    # both are this consumer's now, pending until acknowledged
    assert [d.data for d in broker.own_pending("c1", ["a", "b"])] == [
        b'{"id":"r","task":"t"}', b'{"id":"b0","task":"t"}']
    broker.close()
    sender.close()


@pytest.mark.timeout(30)
def test_a_wait_on_a_stream_that_lost_its_group_declares_it_again(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "a")
    redis_client.xgroup_destroy(broker.keys.stream("a", 0), GROUP)
    assert broker.wait("c1", ["a"], 4, 50) == []  # (declared here)
    _send(broker, "a", 1)
    assert _where(broker.wait("c1", ["a"], 4, 5000)) == [("a", 0)]
    broker.close()


@pytest.mark.timeout(30)
def test_a_wait_whose_connection_is_killed_raises_an_outage_and_the_next_one_works(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "a")

    def kill_the_blocked_read() -> None:
        for _ in range(500):  # (until the wait has begun)
            blocked = [c for c in redis_client.client_list() if c.get("cmd") == "xreadgroup"]
            if blocked:
                redis_client.client_kill_filter(_id=blocked[0]["id"])
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_blocked_read)
    killer.start()
    with pytest.raises(UNAVAILABLE):
        broker.wait("c1", ["a"], 4, 10000)
    killer.join()
    _send(broker, "a", 1)
    assert _where(broker.wait("c1", ["a"], 4, 5000)) == [("a", 0)]
    broker.close()


@pytest.mark.timeout(30)
def test_a_wait_on_a_stream_deleted_under_it_returns_empty_and_the_queue_is_read_again(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "a")
    errors: List[BaseException] = []

    def delete_the_waited_stream() -> None:
        for _ in range(500):  # (until the wait has begun)
            if any(c.get("cmd") == "xreadgroup" for c in redis_client.client_list()):
                redis_client.delete(broker.keys.stream("a", 0))
                return
            time.sleep(0.01)
        errors.append(TimeoutError("the wait never began"))

    deleter = threading.Thread(target=delete_the_waited_stream)
    deleter.start()
    began = time.monotonic()
    assert broker.wait("c1", ["a"], 4, 10000) == []  # UNBLOCKED: no error, at once
    deleter.join()
    assert not errors and time.monotonic() - began < 5
    assert broker.wait("c1", ["a"], 4, 50) == []  # (the lost group is declared here)
    _send(broker, "a", 1)
    assert _where(broker.wait("c1", ["a"], 4, 5000)) == [("a", 0)]
    broker.close()


@pytest.mark.timeout(30)
def test_own_pending_passes_over_a_stream_without_its_group(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "a")
    _send(broker, "a", 1)
    [held] = broker.fetch("c1", ["a"], 10)
    redis_client.xgroup_destroy(broker.keys.stream("a", 5), GROUP)
    assert [d.entry_id for d in broker.own_pending("c1", ["a"])] == [held.entry_id]
    broker.close()


def _garbage(redis_client: Any, key: str) -> None:
    redis_client.delete(key)
    redis_client.rpush(key, b"not a stream")


def _set_aside(redis_client: Any, key: str) -> List[Any]:
    """What was moved aside from ``key``, once it is a stream again."""
    assert redis_client.type(key) == b"stream"
    assert [g["name"] for g in redis_client.xinfo_groups(key)] == [GROUP.encode()]
    return [redis_client.lrange(k, 0, -1) for k in redis_client.scan_iter(f"{key}:garbage:*")]


@pytest.mark.timeout(30)
def test_a_wait_on_a_stream_key_that_holds_garbage_sets_it_aside_and_loses_nothing(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "a", "b")
    _send(broker, "a", 1)
    _garbage(redis_client, broker.keys.stream("b", 0))
    assert broker.wait("c1", ["a", "b"], 4, 50) == []  # the read failed as a whole
    assert _set_aside(redis_client, broker.keys.stream("b", 0)) == [[b"not a stream"]]
    # what waits in "a" is still there for the next wait, and "b" is read again
    assert _where(broker.wait("c1", ["a", "b"], 4, 5000)) == [("a", 0)]
    _send(broker, "b", 1)
    assert _where(broker.wait("c1", ["a", "b"], 4, 5000)) == [("b", 0)]
    broker.close()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("posted", [False, True])
def test_a_fetch_reads_past_a_band_key_that_holds_garbage_and_sets_it_aside(
        redis_url: str, redis_client: Any, posted: bool) -> None:
    broker = _broker(redis_url, "a", "b")
    _send(broker, "a", 2)
    _send(broker, "b", 1, priority=9)
    _garbage(redis_client, broker.keys.stream("a", 5))
    if posted:
        _, got = broker.post_fetch([], "c1", ["a", "b"], 10).result()
    else:
        got = broker.fetch("c1", ["a", "b"], 10)
    # the bands before and after the bad key are read in the one call; none is stranded
    assert _where(got) == [("a", 0), ("a", 0), ("b", 9)]
    assert _set_aside(redis_client, broker.keys.stream("a", 5)) == [[b"not a stream"]]
    _send(broker, "a", 1, priority=5)
    assert _where(broker.fetch("c1", ["a", "b"], 10)) == [("a", 5)]
    broker.close()


@pytest.mark.timeout(30)
def test_declaring_a_queue_sets_aside_a_band_key_that_holds_garbage(
        redis_url: str, redis_client: Any) -> None:
    broker = RedisBroker(redis_url)
    _garbage(redis_client, broker.keys.stream("a", 3))
    broker.declare(["a"])
    assert _set_aside(redis_client, broker.keys.stream("a", 3)) == [[b"not a stream"]]
    _send(broker, "a", 1, priority=3)
    assert _where(broker.fetch("c1", ["a"], 10)) == [("a", 3)]
    broker.close()


@pytest.mark.cluster
@pytest.mark.timeout(60)
def test_on_a_cluster_a_band_key_that_holds_garbage_is_set_aside_too(
        redis_cluster: Any, cluster_url: str) -> None:
    broker = _broker(cluster_url, "a", "b")
    client = redis_cluster.client()
    _send(broker, "a", 1)
    _send(broker, "b", 1)
    _garbage(client, broker.keys.stream("a", 5))
    assert sorted(_where(broker.fetch("c1", ["a", "b"], 10))) == [("a", 0), ("b", 0)]
    assert _set_aside(client, broker.keys.stream("a", 5)) == [[b"not a stream"]]
    _garbage(client, broker.keys.stream("b", 5))
    assert broker.wait("c1", ["b"], 4, 50) == []
    assert _set_aside(client, broker.keys.stream("b", 5)) == [[b"not a stream"]]
    _send(broker, "b", 1, priority=5)
    assert _where(broker.wait("c1", ["b"], 4, 5000)) == [("b", 5)]
    broker.close()
