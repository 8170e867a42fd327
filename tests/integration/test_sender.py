"""The fast send path (``multiq.broker.wire``: Sender, Writer) against the session's Redis:
what ``delay`` and ``group`` write, error replies, lost connections, forks and threads."""
from __future__ import annotations

import os
import threading
from typing import Any, List

import pytest
import redis

from multiq import group
from multiq.broker.wire import Sender
from multiq.keys import Keys
from multiq.message import decode

KEYS = Keys()


def _entries(client: Any, queue: str = "multiq", band: int = 0) -> List[Any]:
    return [decode(f[b"m"], ["json"]) for _, f in client.xrange(KEYS.stream(queue, band))]


def test_delay_and_group_write_what_the_broker_would(make_app: Any, redis_client: Any) -> None:
    app = make_app()
    add = app.task(name="t.add")(lambda x, y: x + y)
    first = add.delay(1, 2)
    later = add.apply_async((3, 4), countdown=60)
    urgent = add.apply_async((5, 6), priority=9, queue="other")
    results = group(add.s(i, i) for i in range(2500)).apply_async()
    assert app._sender[1] is not None  # the fast path was taken
    sent = _entries(redis_client)
    assert [m.id for m in sent] == [first.id] + [r.id for r in results]
    assert sent[1].args == [0, 0] and sent[-1].args == [2499, 2499]
    assert [m.id for m in _entries(redis_client, "other", 9)] == [urgent.id]
    assert redis_client.zscore(KEYS.delayed("multiq"), f"{later.id}:0") is not None
    assert {b"multiq", b"other"} <= redis_client.smembers(KEYS.queues)


def test_an_error_reply_is_raised_after_every_reply_is_read(redis_client: Any) -> None:
    sender = Sender(redis_client)
    redis_client.set("a-string", "x")
    with pytest.raises(redis.ResponseError):
        sender.execute([("SADD", "a-string", "m"), ("SET", "after", "1")])
    assert redis_client.get("after") == b"1"  # the command after the error still ran
    assert sender.execute([("GET", "after")]) == [b"1"]  # and the connection is usable


def test_a_dropped_connection_is_reconnected_on_next_use(make_app: Any,
                                                         redis_client: Any) -> None:
    app = make_app()
    add = app.task(name="t.noop")(lambda: None)
    add.delay()
    redis_client.client_kill_filter(_type="normal", skipme=True)
    add.delay()  # the first attempt fails on the dead socket; the publish retry succeeds
    assert len(_entries(redis_client)) == 2


def test_threads_and_forks_get_their_own_connections(make_app: Any,
                                                     redis_client: Any) -> None:
    app = make_app()
    add = app.task(name="t.id")(lambda x: x)
    add.delay(0)
    threads = [threading.Thread(target=lambda i=i: [add.delay(i) for _ in range(50)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            add.delay(-1)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    add.delay(-2)
    assert len(_entries(redis_client)) == 1 + 200 + 2
    assert len(app._sender[1]._idle) <= 5
