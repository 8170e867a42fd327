"""Writes without waiting (``multiq.broker.wire``: Link): order, bulk replies, lost connections."""
from __future__ import annotations

from typing import Any

import pytest
import redis

from multiq.broker.wire import Link, Sender


def test_writes_land_in_order_and_replies_are_read_later(redis_client: Any) -> None:
    link = Link(Sender(redis_client))
    numbers = [link.post([("RPUSH", "l", str(i))]) for i in range(1000)]
    assert numbers == list(range(1, 1001))
    assert link.confirm(500) == [] and link.confirmed >= 500
    assert link.confirm() == [] and link.confirmed == 1000
    assert redis_client.lrange("l", 0, -1) == [str(i).encode() for i in range(1000)]
    link.close()


def test_error_replies_are_returned_not_raised(redis_client: Any) -> None:
    redis_client.set("s", "x")
    link = Link(Sender(redis_client))
    link.post([("SADD", "s", "m"), ("SET", "after", "1")])
    errors = link.confirm()
    assert len(errors) == 1 and isinstance(errors[0], redis.ResponseError)
    assert redis_client.get("after") == b"1"


def test_a_lost_connection_gives_up_its_writes_and_connects_again(redis_client: Any) -> None:
    link = Link(Sender(redis_client))
    link.post([("SET", "a", "1")])
    link.confirm()
    redis_client.client_kill_filter(_type="normal", skipme=True)
    try:
        link.post([("SET", "b", "1")])
    except redis.ConnectionError:
        pass
    link.confirm()  # gives up what the dead connection carried
    assert link.confirmed == link.posted
    link.post([("SET", "c", "1")])  # and connects again
    assert link.confirm() == [] and redis_client.get("c") == b"1"


@pytest.mark.timeout(10)
def test_many_unread_replies_are_read_by_the_writer(redis_client: Any) -> None:
    link = Link(Sender(redis_client))
    for _ in range(2000):
        link.post([("INCR", "n")])
    assert link.posted - link.confirmed <= 256  # replies never pile up unread
    link.close()
    assert redis_client.get("n") == b"2000"


def test_a_write_that_cannot_be_sent_leaves_nothing_to_wait_for(
        redis_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    link = Link(Sender(redis_client))
    link.post([("SET", "a", "1")])  # sent, its reply not read yet

    def refuse(*_: Any, **__: Any) -> None:
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(link._conn, "send_packed_command", refuse)
    with pytest.raises(redis.ConnectionError):
        link.post([("SET", "b", "1")])
    assert link.confirm() == [] and link.confirmed == link.posted  # nothing left to read
    monkeypatch.undo()
    link.post([("SET", "c", "1")])  # a fresh connection
    assert link.confirm() == [] and redis_client.get("c") == b"1"
