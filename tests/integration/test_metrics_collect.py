"""What a scrape reads from a real Redis (``multiq.metrics.collect``): messages waiting per
band apart from those nodes hold, delayed and dead-lettered ones, a queue that was only
published to (no consumer group yet), a queue whose keys cannot be read, nodes whose
liveness key expired, and a server that lost its scripts."""
from __future__ import annotations

import time
from typing import Any

import pytest

from multiq.broker.redis import RedisBroker
from multiq.metrics.collect import collect

pytestmark = pytest.mark.timeout(30)


def _send(broker: RedisBroker, queue: str, n: int, **options: Any) -> None:
    for i in range(n):
        broker.publish(queue, b'{"id":"%s%d","task":"t"}' % (queue.encode(), i),
                       member=f"{queue}{i}", **options)


def test_queues_and_nodes_as_redis_holds_them(redis_url: str, redis_client: Any) -> None:
    broker = RedisBroker(redis_url)
    broker.declare(["a"])
    _send(broker, "a", 4)
    _send(broker, "a", 2, priority=9)
    _send(broker, "a", 3, eta=time.time() + 600)
    held = broker.fetch("n1|x", ["a"], 3)  # the two of band 9 and one of band 0
    p = redis_client.pipeline()
    broker.dead_letter(p, held[-1], "for the test")
    p.execute()
    _send(broker, "only-sent", 2)  # no node declared it: no consumer group
    broker.heartbeat("n1|x", {"hostname": "n1", "ready": True, "active": 3}, ttl=60)
    broker.heartbeat("gone|y", {"hostname": "gone"}, ttl=0.05)
    time.sleep(0.1)  # the second node's key expires; it stays listed until recovered
    redis_client.sadd("multiq:queues", "broken")
    redis_client.set("multiq:q:{broken}:0", "not a stream")  # left out, not shown as empty
    redis_client.script_flush()

    snap = collect(broker)
    by_name = {q.name: q for q in snap.queues}
    assert sorted(by_name) == ["a", "only-sent"]
    a, sent = by_name["a"], by_name["only-sent"]
    assert (a.waiting[0], a.waiting[9], a.reserved, a.delayed, a.deadletters) == (3, 0, 3, 3, 1)
    assert sum(a.waiting.values()) == 3
    assert (sent.waiting[0], sent.reserved) == (2, 0)
    assert [(n.hostname, n.ready, n.active) for n in snap.nodes] == [("n1", True, 3)]
    assert snap.lost == 1
    assert collect(broker).queues == snap.queues  # (the script is loaded now)
