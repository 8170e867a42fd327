"""The worker's group commit (``multiq.worker.committer``) against a real Redis: what one
bad item in a batch costs."""
from __future__ import annotations

import logging
from typing import Any

from multiq.message import decode
from multiq.serialization import accepted
from multiq.trace import Outcome
from multiq.worker.committer import Committer
from multiq.worker.execute import Request


def _pending(client: Any, queue: str = "multiq") -> int:
    return sum(int(client.xpending(f"multiq:q:{{{queue}}}:{band}", "multiq")["pending"])
               for band in range(10) if client.exists(f"multiq:q:{{{queue}}}:{band}"))


def _held(app: Any, task: Any, n: int = 3) -> Any:
    """``n`` calls of ``task`` sent, and fetched by consumer ``c1``: their results and
    requests."""
    sent = [task.delay(i, i) for i in range(n)]
    app.broker.declare(["multiq"])
    got = app.broker.fetch("c1", ["multiq"], 10)
    assert len(got) == n
    accept = accepted(app.conf.accept_content)
    return sent, [Request(d, decode(d.data, accept), task, early_ack=False) for d in got]


def test_one_item_that_cannot_be_written_costs_only_itself(
        make_app: Any, redis_client: Any, caplog: Any) -> None:
    app = make_app()

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    sent, reqs = _held(app, add)
    assert _pending(redis_client) == 3
    committer = Committer(app, "c1", "host")
    committer.idle = lambda req: False  # a busy node: the three share one batch
    committer.events_enabled = True
    committer.start()
    try:
        committer.complete(reqs[0], Outcome("SUCCESS", 0))
        committer.send_event("custom", thing=object())  # JSON cannot carry it
        committer.complete(reqs[1], Outcome("SUCCESS", 2))
        committer.complete(reqs[2], Outcome("SUCCESS", 4))
        with caplog.at_level(logging.ERROR, logger="multiq.worker"):
            assert committer.flush(10)
    finally:
        committer.stop(10)
    assert [r.get(timeout=5) for r in sent] == [0, 2, 4]
    assert _pending(redis_client) == 0
    assert "Could not write event" in caplog.text


def test_an_outcome_that_cannot_be_written_is_dead_lettered_not_left_pending(
        make_app: Any, redis_client: Any, caplog: Any) -> None:
    """Written alone and still failing (not an outage): its message must not stay pending
    on a live node forever; it goes to the dead-letter stream with the reason, and its
    task is recorded as FAILURE."""
    from multiq.exceptions import Retry

    app = make_app()

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    sent, reqs = _held(app, add)
    committer = Committer(app, "c1", "host")
    committer.idle = lambda req: False
    committer.start()
    try:
        committer.complete(reqs[0], Outcome("SUCCESS", 0))
        committer.complete(reqs[1], Outcome("RETRY", exc=ValueError("x"), retry=Retry()))
        committer.complete(reqs[2], Outcome("SUCCESS", 4))  # (a retry without its plan)
        with caplog.at_level(logging.ERROR, logger="multiq.worker"):
            assert committer.flush(10)
    finally:
        committer.stop(10)
    assert sent[0].get(timeout=5) == 0 and sent[2].get(timeout=5) == 4
    assert _pending(redis_client) == 0
    [(_, dead)] = redis_client.xrange("multiq:q:{multiq}:deadletter")
    assert dead[b"m"] == reqs[1].delivery.data
    assert b"could not write its done outcome" in dead[b"reason"], dead
    sent[1].get(timeout=5, propagate=False)
    assert sent[1].status == "FAILURE"
    assert reqs[1].delivery.entry_id.decode() in caplog.text and sent[1].id in caplog.text


def test_here_false_never_writes_in_the_calling_thread(make_app: Any, redis_client: Any) -> None:
    """An idle node's outcome is written by the thread that hands it in, unless it says
    ``here=False`` (an event loop's thread): then the writer thread writes it at once."""
    import threading

    app = make_app()

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    sent = [add.delay(i, i) for i in range(2)]
    app.broker.declare(["multiq"])
    got = app.broker.fetch("c1", ["multiq"], 10)
    accept = accepted(app.conf.accept_content)
    reqs = [Request(d, decode(d.data, accept), add, early_ack=False) for d in got]
    committer = Committer(app, "c1", "host")
    writers = []
    commit = committer._commit

    def spy(batch: Any) -> None:
        writers.append(threading.current_thread().name)
        commit(batch)

    committer._commit = spy  # type: ignore[method-assign]
    committer.start()
    try:
        committer.complete(reqs[0], Outcome("SUCCESS", 0))  # idle: written here
        committer.complete(reqs[1], Outcome("SUCCESS", 2), here=False)
        assert committer.flush(10)
    finally:
        committer.stop(10)
    assert [r.get(timeout=5) for r in sent] == [0, 2]
    assert writers == [threading.current_thread().name, "committer"]


def test_counters_redis_cannot_increment_never_fail_the_batch(
        make_app: Any, redis_client: Any, caplog: Any) -> None:
    """The Prometheus counters ride in the acks' transaction; when their key is not a hash
    any more (someone overwrote it), the outcomes are still written and acknowledged, the
    problem is logged, and the other counters still count."""
    app = make_app()

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    redis_client.set("multiq:metrics:runtime", "not a hash")
    sent, reqs = _held(app, add)
    committer = Committer(app, "c1", "host")
    committer.idle = lambda req: False  # a busy node: the three share one batch
    committer.start()
    try:
        for i, req in enumerate(reqs):
            req.time_start = req.time_done = 1.0
            committer.complete(req, Outcome("SUCCESS", 2 * i))
        with caplog.at_level(logging.WARNING, logger="multiq.worker"):
            assert committer.flush(10)
    finally:
        committer.stop(10)
    assert [r.get(timeout=5) for r in sent] == [0, 2, 4]
    assert _pending(redis_client) == 0
    assert not redis_client.exists("multiq:q:{multiq}:deadletter")
    assert "Could not count outcomes" in caplog.text
    assert redis_client.hgetall("multiq:metrics:tasks") == \
        {b'["t.add","SUCCESS","multiq"]': b"3"}
