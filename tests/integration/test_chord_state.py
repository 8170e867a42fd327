"""A chord's state in Redis (``multiq.chordstate``): counted by a set of finished indexes,
sent once, failed at the first failure, expiring with the results."""
from __future__ import annotations

import json
from typing import Any, List

import pytest

from multiq import chordstate
from multiq.backends.base import make_doc
from multiq.exceptions import ChordError

pytestmark = pytest.mark.timeout(30)


@pytest.fixture()
def parts(make_app: Any) -> Any:
    app = make_app("chords", result_expires=600)
    backend, broker = app.backend, app.broker
    broker_db = int(broker.client.connection_pool.connection_kwargs["db"])

    class Parts:
        def __init__(self) -> None:
            self.app, self.backend, self.broker = app, backend, broker

        def create(self, chord_id: str, size: int, bodies: int = 1) -> None:
            messages = [(broker.keys.stream("cb", 0), f'{{"body":{i}}}'.encode(), "cb")
                        for i in range(bodies)]
            pipe = backend.client.pipeline()
            chordstate.state_commands(pipe, chord_id, size, messages, backend.expires)
            pipe.execute()

        def finish(self, chord_id: str, index: int, value: Any = None, failed: bool = False,
                   inline: bool = True) -> Any:
            task_id = f"{chord_id}-{index}"
            state = "FAILURE" if failed else "SUCCESS"
            result = {"exc_type": "ValueError", "exc_message": ["no"],
                      "exc_module": "builtins"} if failed else value
            data = backend.encode(make_doc(task_id, state, result))
            pipe = backend.client.pipeline()
            chordstate.part_command(pipe, backend, chordstate.Member(chord_id, index), task_id,
                                    data, failed, True, broker_db if inline else None,
                                    broker.keys.queues)
            return pipe.execute()[0]

        def sent(self) -> List[bytes]:
            entries = broker.client.xrange(broker.keys.stream("cb", 0))
            return [fields[b"m"] for _, fields in entries]

    return Parts()


def test_the_last_member_sends_the_body_once_and_redelivery_is_not_counted(parts: Any) -> None:
    parts.create("c1", 3)
    parts.finish("c1", 0, 10)
    parts.finish("c1", 0, 10)  # the same task again (redelivered): still one of three
    parts.finish("c1", 1, 20)
    assert parts.sent() == []
    parts.finish("c1", 2, 30)
    assert parts.sent() == [b'{"body":0}']
    parts.finish("c1", 2, 30)  # and again, after the chord fired
    assert parts.sent() == [b'{"body":0}']
    assert parts.broker.client.sismember(parts.broker.keys.queues, "cb")
    assert chordstate.gather(parts.backend, "c1") == [10, 20, 30]
    # the result key was written and is readable as usual
    assert parts.app.AsyncResult("c1-1").get(timeout=5) == 20


def test_a_failure_fires_at_once_and_the_body_learns_who_failed(parts: Any) -> None:
    parts.create("c2", 3, bodies=2)
    parts.finish("c2", 0, 1)
    parts.finish("c2", 1, failed=True)
    assert parts.sent() == [b'{"body":0}', b'{"body":1}']
    parts.finish("c2", 2, 3)
    assert len(parts.sent()) == 2
    with pytest.raises(ChordError, match=r"Dependency c2-1 raised ValueError\('no'\)"):
        chordstate.gather(parts.backend, "c2")


def test_without_a_shared_server_the_script_returns_the_body_to_the_sender(parts: Any) -> None:
    parts.create("c3", 2)
    assert parts.finish("c3", 0, 1, inline=False) == []
    reply = parts.finish("c3", 1, 2, inline=False)
    assert reply[1] == b'{"body":0}' and parts.sent() == []
    # the member that fired, run again after a crash, hands it back again: at least once
    assert parts.finish("c3", 1, 2, inline=False)[1] == b'{"body":0}'
    assert parts.finish("c3", 0, 1, inline=False) == []
    assert chordstate.send_returned(parts.broker, reply) == 1
    assert parts.sent() == [b'{"body":0}']


def test_state_expires_with_the_results_and_keys_share_a_slot(parts: Any) -> None:
    parts.create("c4", 2)
    parts.finish("c4", 0, 1)
    client = parts.backend.client
    meta, results = chordstate.meta_key("c4"), chordstate.results_key("c4")
    assert "{c4}" in meta and "{c4}" in results
    assert 0 < client.ttl(meta) <= 600 and 0 < client.ttl(results) <= 600


def test_a_member_of_a_chord_without_state_counts_nothing(parts: Any) -> None:
    assert parts.finish("gone", 0, 1) == []
    assert parts.sent() == []
    with pytest.raises(ChordError, match="no state"):
        chordstate.gather(parts.backend, "gone")


def test_an_unreadable_member_result_is_a_chord_error(parts: Any) -> None:
    parts.create("c5", 1)
    parts.backend.client.hset(chordstate.results_key("c5"), "0", b"\xff not json")
    with pytest.raises(ChordError, match="unreadable"):
        chordstate.gather(parts.backend, "c5")
    assert json.loads(parts.backend.client.hget(chordstate.meta_key("c5"), "m1")) == \
        {"body": 0}


def test_on_a_cluster_the_chord_keys_share_one_slot_and_the_body_is_handed_back(
        cluster_url: str, make_app: Any) -> None:
    app = make_app("chords", broker=cluster_url, backend=cluster_url)
    backend, broker = app.backend, app.broker
    stream = broker.keys.stream("cb", 0)
    pipe = backend.client.pipeline()
    chordstate.state_commands(pipe, "k1", 2, [(stream, b'{"body":0}', "cb")], 600)
    pipe.execute()
    replies = []
    for index in range(2):
        pipe = backend.client.pipeline()
        chordstate.part_command(pipe, backend, chordstate.Member("k1", index), f"k1-{index}",
                                backend.encode(make_doc(f"k1-{index}", "SUCCESS", index)),
                                False, False, None, broker.keys.queues)
        replies += pipe.execute()
    assert replies[0] == [] and replies[1][1] == b'{"body":0}'
    assert chordstate.send_returned(broker, replies[1]) == 1
    assert [f[b"m"] for _, f in broker.client.xrange(stream)] == [b'{"body":0}']
    assert chordstate.gather(backend, "k1") == [0, 1]
