"""How a commit reaches Redis (``multiq.worker.outbox``): results in the backend's database,
acks in the broker's, results first, in one exchange when both share a server."""
from __future__ import annotations

from typing import Any

import pytest
import redis

from multiq.broker.wire import Commands, Sender, Writer
from multiq.worker.outbox import Outbox


def _commit(results: Any, acks: Any) -> None:
    results.set("celery-task-meta-1", b"{}")
    results.publish("celery-task-meta-1", b"{}")
    acks.sadd("acked", "1")


def test_one_server_one_exchange_each_side_in_its_own_db(make_app: Any, redis_server: Any,
                                                         redis_client: Any) -> None:
    app = make_app()
    outbox = Outbox(app.broker, app.backend)
    assert outbox.shared  # broker db 1, backend db 2, one server
    results, acks = Commands(), Commands()
    _commit(results, acks)
    outbox.write(results, acks)
    backend = redis_server.client(2)
    assert backend.get("celery-task-meta-1") == b"{}"
    assert redis_client.smembers("acked") == {b"1"}
    assert not backend.exists("acked") and not redis_client.exists("celery-task-meta-1")
    # the held connection is back on the broker's database for the next commit
    acks = Commands()
    acks.sadd("acked", "2")
    outbox.write(Commands(), acks)
    assert redis_client.smembers("acked") == {b"1", b"2"}
    outbox.close()


def test_an_error_in_the_results_is_raised_and_nothing_after_is_lost(
        make_app: Any, redis_server: Any, redis_client: Any) -> None:
    app = make_app()
    outbox = Outbox(app.broker, app.backend)
    redis_server.client(2).set("a-string", "x")
    results, acks = Commands(), Commands()
    results.sadd("a-string", "m")  # WRONGTYPE
    acks.sadd("acked", "1")
    with pytest.raises(redis.ResponseError):
        outbox.write(results, acks)
    acks = Commands()
    acks.sadd("acked", "2")
    outbox.write(None, acks)  # a fresh connection, on the broker's database
    assert redis_client.smembers("acked") == {b"1", b"2"}


def test_separate_servers_are_written_results_first(make_app: Any, redis_url: str) -> None:
    app = make_app(backend=redis_url.replace("127.0.0.1", "localhost"))
    outbox = Outbox(app.broker, app.backend)
    assert not outbox.shared  # another address: treated as another server
    results, acks = Commands(), Commands()
    _commit(results, acks)
    outbox.write(results, acks)
    assert app.backend.client.get("celery-task-meta-1") == b"{}"
    assert app.broker.client.smembers("acked") == {b"1"}


def test_a_transaction_returns_exec_replies_and_raises_errors_inside(
        redis_client: Any) -> None:
    sender = Sender(redis_client)
    assert sender.execute([("SET", "k", "1"), ("INCR", "k")], transaction=True) == [b"OK", 2]
    with pytest.raises(redis.ResponseError):  # a runtime error inside EXEC
        sender.execute([("SADD", "k", "x"), ("INCR", "k")], transaction=True)
    assert redis_client.get("k") == b"3"  # the other commands of the transaction ran


def test_writer_replays_options_on_a_pipeline(redis_client: Any) -> None:
    commands = Commands()
    commands.set("k", "v", ex=100)
    commands.get("k")
    replies = commands.replay(redis_client.pipeline()).execute()
    assert replies == [True, b"v"] and 0 < redis_client.ttl("k") <= 100
    assert Writer(redis_client).write(commands) == [b"OK", b"v"]  # raw replies
