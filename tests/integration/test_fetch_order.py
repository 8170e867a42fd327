"""One fetch reads a node's queues in the order it is given, on one server in one call,
and a stream without its group strands nothing (``RedisBroker.fetch`` / ``post_fetch``)."""
from __future__ import annotations

from typing import Any, List

import pytest

from multiq.broker.redis import Delivery, RedisBroker


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
