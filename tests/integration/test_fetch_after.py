"""A solo node's commit and its next fetch in one exchange (``RedisBroker.fetch_after``)."""
from __future__ import annotations

import time
from typing import Any

import redis

from multiq.broker.redis import RedisBroker


def _broker(redis_url: str, *queues: str) -> RedisBroker:
    broker = RedisBroker(redis_url)
    broker.declare(list(queues))
    return broker


def test_commands_run_first_then_the_fetch(redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "q")
    for i in range(5):
        broker.publish("q", b'{"id":"%d","task":"t"}' % i)
    replies, got = broker.fetch_after([("SET", "written", "1"), ("INCR", "n")], "c1", ["q"], 3)
    assert replies == [b"OK", 1]
    assert [d.data for d in got] == [b'{"id":"%d","task":"t"}' % i for i in range(3)]
    assert redis_client.get("written") == b"1"
    broker.close()


def test_an_error_in_the_commands_never_loses_what_was_fetched(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "q")
    broker.publish("q", b'{"id":"x","task":"t"}')
    redis_client.set("s", "x")
    replies, got = broker.fetch_after([("SADD", "s", "m")], "c1", ["q"], 10)
    assert isinstance(replies[0], redis.ResponseError)
    assert [d.data for d in got] == [b'{"id":"x","task":"t"}']
    broker.close()


def test_more_queues_and_a_flushed_script_cache(redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "a", "b")
    broker.publish("b", b'{"id":"b1","task":"t"}')
    redis_client.script_flush()  # the fetch script is gone: fetched the usual way
    replies, got = broker.fetch_after([("PING",)], "c1", ["a", "b"], 10)
    assert replies in ([b"PONG"], [True]) and [d.queue for d in got] == ["b"]
    broker.close()


def test_own_pending_lists_what_was_delivered_and_never_acknowledged(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "q")
    broker.publish("q", b'{"id":"a","task":"t"}')
    broker.publish("q", b'{"id":"b","task":"t"}', priority=9)
    broker.publish("q", b'{"id":"c","task":"t"}')
    got = broker.fetch("c1", ["q"], 10)  # as if the reply had been lost on the way
    assert len(got) == 3
    pending = broker.own_pending("c1", ["q"], page=1)
    assert sorted(d.data for d in pending) == sorted(d.data for d in got)
    assert {d.band for d in pending} == {9, 0}
    p = redis_client.pipeline()
    broker.ack(p, got[0])
    p.execute()
    assert len(broker.own_pending("c1", ["q"])) == 2
    assert broker.own_pending("someone-else", ["q"]) == []
    broker.close()


def test_a_posted_fetch_is_answered_while_the_caller_works(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "q")
    for i in range(4):
        broker.publish("q", b'{"id":"%d","task":"t"}' % i)
    posted = broker.post_fetch([("SET", "written", "1")], "c1", ["q"], 3)
    assert broker.fetch("c2", ["q"], 10)[0].data == b'{"id":"3","task":"t"}'  # meanwhile
    replies, got = posted.result()
    assert replies == [b"OK"] and [d.data for d in got] == [
        b'{"id":"%d","task":"t"}' % i for i in range(3)]
    assert broker.fetch("c1", ["q"], 10) == []  # the connection is clean for reuse
    broker.close()


def test_an_abandoned_fetch_leaves_its_entries_pending_for_the_node(
        redis_url: str, redis_client: Any) -> None:
    broker = _broker(redis_url, "q")
    broker.publish("q", b'{"id":"a","task":"t"}')
    posted = broker.post_fetch([], "c1", ["q"], 5)
    posted.abandon()
    deadline = time.monotonic() + 5  # Redis may read the closed connection's command late
    while not (pending := broker.own_pending("c1", ["q"], page=10)) \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [d.data for d in pending] == [b'{"id":"a","task":"t"}']
    assert broker.fetch("c1", ["q"], 10) == []  # a fresh connection, no stray reply
    broker.close()


def test_declaring_the_queues_loads_the_fetch_script(redis_url: str, redis_client: Any) -> None:
    redis_client.script_flush()
    broker = _broker(redis_url, "q")
    sha = broker._fetch.sha
    assert redis_client.script_exists(sha) == [True]  # a first fetch meets no NOSCRIPT
    broker.publish("q", b'{"id":"y","task":"t"}')
    redis_client.config_resetstat()
    assert [d.data for d in broker.fetch("c1", ["q"], 5)] == [b'{"id":"y","task":"t"}']
    calls = redis_client.info("commandstats")
    assert "cmdstat_script|load" not in calls and "cmdstat_script" not in calls
    assert calls["cmdstat_evalsha"]["failed_calls"] == 0
    broker.close()
