"""Garbage in the Redis structures multiq reads: skipped (or dead-lettered) with a warning
naming the key and the entry, never a crash, never blocking the good entries behind it.

Garbage is written straight into the session's redis-server; what multiq then reads is
asserted through the broker, the control client, ``inspect scheduled`` and beat.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from types import SimpleNamespace
from typing import Any, List

import pytest
from helpers import wait_until

from multiq.beat.scheduler import Beat
from multiq.control import commands
from multiq.control.mailbox import Mailbox, send_reply
from multiq.keys import Keys
from multiq.message import Message, decode

pytestmark = pytest.mark.timeout(30)

K = Keys()
UNDECODABLE = b"\xff\xfe\x00"
BAND12 = b'{"id": "t-band12", "task": "proj.add"}'


def body(band: int, n: int, data: bytes) -> bytes:
    return b"%d,%d|" % (band, n) + data


def envelope(task_id: str, task: str = "proj.add") -> bytes:
    return Message(id=task_id, task=task, args=[1, 2]).encode()


def stream_ids(client: Any, queue: str, band: int) -> List[str]:
    return [json.loads(f[b"m"])["id"] for _, f in client.xrange(K.stream(queue, band))]


# -- the delayed set -------------------------------------------------------------------------


GARBAGE_BODIES = {
    b"g-nobar": b"no separator at all",
    b"g-nocomma": b"5|" + envelope("t-nocomma"),
    b"g-band-x": b"x,0|" + envelope("t-bandx"),
    b"g-band-12": b"12,0|" + BAND12,
    b"g-band-neg": b"-1,0|" + envelope("t-bandneg"),
    b"g-count-x": b"3,x|" + envelope("t-countx"),
    b"g-undecodable": UNDECODABLE,
}


def test_promote_dead_letters_garbage_and_moves_the_good_ones(make_app, redis_client, caplog):
    broker = make_app().broker
    due = time.time() - 1
    for member, value in GARBAGE_BODIES.items():
        redis_client.hset(K.delayed_bodies("gq"), member, value)
        redis_client.zadd(K.delayed("gq"), {member: due - 1})  # ahead of the good ones
    redis_client.zadd(K.delayed("gq"), {b"g-bodiless": due - 1})
    broker.add_delayed(redis_client, "gq", 7, "good-1", envelope("t-good-1"), due)
    broker.add_delayed(redis_client, "gq", 0, "good-2", envelope("t-good-2"), due, 2)
    broker.add_delayed(redis_client, "gq", 0, "later", envelope("t-later"), time.time() + 60)

    with caplog.at_level(logging.WARNING, logger="multiq.broker"):
        moved, nxt = broker.promote("gq", time.time())

    assert moved == len(GARBAGE_BODIES) + 3
    assert nxt is not None and nxt > time.time() + 50
    assert stream_ids(redis_client, "gq", 7) == ["t-good-1"]
    assert stream_ids(redis_client, "gq", 0) == ["t-good-2"]
    [(_, fields)] = redis_client.xrange(K.stream("gq", 0))
    assert fields[b"n"] == b"2"
    # the garbage: out of the set and the hash, into the dead-letter stream with a reason
    assert redis_client.zrange(K.delayed("gq"), 0, -1) == [b"later"]
    assert redis_client.hkeys(K.delayed_bodies("gq")) == [b"later"]
    dead = [f for _, f in redis_client.xrange(K.deadletter("gq"))]
    assert len(dead) == len(GARBAGE_BODIES)
    for fields in dead:
        assert set(fields) == {b"m", b"reason", b"band", b"time"}
        assert b"malformed" in fields[b"reason"] and fields[b"band"] == b"0"
        assert abs(float(fields[b"time"]) - time.time()) < 30
    kept = {f[b"m"] for f in dead}
    assert b"no separator at all" in kept and UNDECODABLE in kept
    assert BAND12 in kept  # what follows the bad head is kept as the message
    for member in [*GARBAGE_BODIES, b"g-bodiless"]:
        assert repr(member) in caplog.text, member
    assert K.deadletter("gq") in caplog.text


# -- the revoked set, node records, the queues set ------------------------------------------


def test_revoked_ids_skip_and_remove_undecodable_members(make_app, redis_client, caplog):
    broker = make_app().broker
    until = time.time() + 600
    redis_client.zadd(K.revoked, {UNDECODABLE: until, b"good-id": until})
    with caplog.at_level(logging.WARNING, logger="multiq.broker"):
        assert broker.revoked_ids() == {"good-id"}
    assert redis_client.zrange(K.revoked, 0, -1) == [b"good-id"]
    assert K.revoked in caplog.text and repr(UNDECODABLE) in caplog.text


def test_revoked_ids_of_a_key_that_is_no_sorted_set_are_none_with_a_warning(
        make_app, redis_client, caplog):
    broker = make_app().broker
    redis_client.set(K.revoked, b"garbage")
    with caplog.at_level(logging.WARNING, logger="multiq.broker"):
        assert broker.revoked_ids() == set()
    assert "Cannot read the revoked ids" in caplog.text and K.revoked in caplog.text
    redis_client.delete(K.revoked)
    redis_client.zadd(K.revoked, {b"later-id": time.time() + 600})
    assert broker.revoked_ids() == {"later-id"}  # (the same connections serve on)


# -- a band stream's key that holds another type ------------------------------------------


def _garbage_band(broker: Any, redis_client: Any, queue: str, band: int) -> str:
    key = K.stream(queue, band)
    redis_client.delete(key)
    redis_client.set(key, b"garbage")
    return key


def test_recovery_of_a_dead_consumer_passes_over_a_band_key_that_holds_garbage(
        make_app, redis_client):
    broker = make_app().broker
    broker.declare(["rq"])
    for band in (9, 0):
        broker.publish("rq", envelope(f"t-rq{band}"), priority=band)
    assert len(broker.fetch("dead@x|1", ["rq"], 10)) == 2
    _garbage_band(broker, redis_client, "rq", 5)
    requeued, dead, lost = broker.recover("rq", "dead@x|1")
    assert (requeued, dead, lost) == (2, 0, [])  # both bands around the bad key
    assert sorted(d.band for d in broker.fetch("c1", ["rq"], 10)) == [0, 9]
    assert redis_client.type(K.stream("rq", 5)) == b"stream"  # (set aside by that fetch)


def test_own_pending_and_leaving_the_groups_pass_over_a_band_key_that_holds_garbage(
        make_app, redis_client, caplog):
    broker = make_app().broker
    broker.declare(["op"])
    broker.publish("op", envelope("t-op"))
    [held] = broker.fetch("c1", ["op"], 10)
    key = _garbage_band(broker, redis_client, "op", 5)
    with caplog.at_level(logging.ERROR, logger="multiq.broker"):
        assert [d.entry_id for d in broker.own_pending("c1", ["op"])] == [held.entry_id]
    assert redis_client.type(key) == b"stream" and f"{key}:garbage:" in caplog.text
    redis_client.delete(key)
    redis_client.set(key, b"garbage")
    pipe = broker.client.pipeline()
    broker.ack_many(pipe, [(held, False)])
    pipe.execute()
    broker.retire("c1", ["op"])  # raises nothing; the consumer leaves the other streams
    consumers = redis_client.xinfo_consumers(K.stream("op", 0), "multiq")
    assert consumers == []


def test_heal_sets_aside_each_key_of_a_queue_of_another_type_and_leaves_the_rest(
        make_app, redis_client, caplog):
    broker = make_app().broker
    broker.declare(["hl"])
    broker.publish("hl", envelope("t-hl"))  # band 0 stays a good stream
    bad = [K.stream("hl", 7), K.started("hl"), K.deadletter("hl"), K.delayed("hl"),
           K.delayed_bodies("hl")]
    for key in bad:
        redis_client.delete(key)
        redis_client.rpush(key, b"garbage")
    with caplog.at_level(logging.ERROR, logger="multiq.broker"):
        moved = broker.heal("hl")
    assert sorted(m.rsplit(":garbage:", 1)[0] for m in moved) == sorted(bad)
    assert all(redis_client.lrange(m, 0, -1) == [b"garbage"] for m in moved)
    assert redis_client.type(K.stream("hl", 7)) == b"stream"  # made again, with its group
    assert redis_client.exists(K.started("hl"), K.deadletter("hl"), K.delayed("hl")) == 0
    assert all(key in caplog.text for key in bad)
    assert broker.heal("hl") == []  # nothing else to move
    assert [d.band for d in broker.fetch("c1", ["hl"], 10)] == [0]


@pytest.mark.parametrize("which", ["stream", "delayed", "delayed_bodies"])
def test_a_send_that_meets_garbage_in_its_queue_sets_it_aside_and_is_sent_once(
        make_app, redis_client, which):
    app = make_app()
    broker = app.broker
    broker.declare(["ps"])
    key = K.stream("ps", 0) if which == "stream" else getattr(K, which)("ps")
    redis_client.delete(key)
    redis_client.set(key, b"garbage")
    eta = None if which == "stream" else time.time() + 600
    data = envelope("t-ps")
    broker.publish("ps", data, eta=eta, member="t-ps")
    [aside] = redis_client.scan_iter(match=f"{key}:garbage:*")
    assert redis_client.get(aside) == b"garbage"
    if eta is None:
        assert [d.data for d in broker.fetch("c1", ["ps"], 10)] == [data]
    else:
        assert redis_client.zrange(K.delayed("ps"), 0, -1) == [b"t-ps"]
        assert redis_client.hlen(K.delayed_bodies("ps")) == 1


def test_promote_sets_aside_a_band_stream_that_holds_garbage_and_moves_the_due_ones(
        make_app, redis_client):
    broker = make_app().broker
    broker.declare(["pm"])
    data = envelope("t-pm")
    pipe = broker.client.pipeline()
    broker.add_delayed(pipe, "pm", 0, "t-pm", data, time.time() - 1)  # due
    pipe.execute()
    _garbage_band(broker, redis_client, "pm", 0)
    moved, _ = broker.promote("pm", time.time())
    assert moved == 1
    assert [d.data for d in broker.fetch("c1", ["pm"], 10)] == [data]


def test_the_length_of_a_queue_counts_a_band_key_that_holds_garbage_as_empty(
        make_app, redis_client):
    broker = make_app().broker
    broker.declare(["ln"])
    broker.publish("ln", envelope("t-ln"))
    _garbage_band(broker, redis_client, "ln", 5)
    assert broker.queue_length("ln") == 1


def test_live_nodes_skip_garbage_records(make_app, redis_client, caplog):
    broker = make_app().broker
    broker.heartbeat("good@h|1", {"hostname": "good@h", "pid": 1}, ttl=60)
    garbage = {"notjson@h|1": b"{not json", "list@h|1": b"[1, 2]", "str@h|1": b'"text"',
               "bytes@h|1": UNDECODABLE}
    for consumer, value in garbage.items():
        redis_client.set(K.node(consumer), value)
        redis_client.zadd(K.nodes, {consumer: time.time()})
    redis_client.zadd(K.nodes, {"gone@h|1": time.time(), UNDECODABLE: time.time()})
    redis_client.hset(K.node("hash@h|1"), "a", "b")  # not even a string
    redis_client.zadd(K.nodes, {"hash@h|1": time.time()})

    with caplog.at_level(logging.WARNING, logger="multiq.broker"):
        nodes = broker.live_nodes()
        names = Mailbox(broker).live_nodes()
    assert list(nodes) == ["good@h|1"] and nodes["good@h|1"]["pid"] == 1
    assert names == ["good@h"]
    for consumer in [*garbage, "hash@h|1"]:
        assert K.node(consumer) in caplog.text, consumer


def test_queue_names_skip_undecodable_members(make_app, redis_client, caplog):
    broker = make_app().broker
    redis_client.sadd(K.queues, "alpha", UNDECODABLE, "beta")
    with caplog.at_level(logging.WARNING, logger="multiq.broker"):
        assert broker.queue_names() == ["alpha", "beta"]
    assert K.queues in caplog.text


# -- replies read by the control client -----------------------------------------------------


def test_control_client_skips_garbage_replies(make_app, redis_client, caplog):
    """A node that is answered for by garbage first, then by its real reply: the caller
    gets the real one and nothing of the garbage."""
    app = make_app()
    app.broker.heartbeat("n1@h|1", {"hostname": "n1@h"}, ttl=60)
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(K.control)

    def answer() -> None:
        msg = wait_until(lambda: listener.get_message(timeout=0.1), timeout=10)
        reply_to = json.loads(msg["data"])["reply_to"]
        for junk in (UNDECODABLE, b"[1]", b"{}", b'"pong"', b"{broken"):
            redis_client.rpush(reply_to, junk)
        send_reply(redis_client, reply_to, "n1@h", {"ok": "pong"})

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.WARNING, logger="multiq.control"):
            replies = Mailbox(app.broker).call("ping", timeout=5.0)
    finally:
        thread.join(10)
        listener.close()
    assert replies == [{"n1@h": {"ok": "pong"}}]
    assert "malformed reply" in caplog.text and K.reply("") in caplog.text


# -- inspect scheduled ----------------------------------------------------------------------


def test_inspect_scheduled_skips_bodies_with_a_garbage_head(make_app, redis_client, caplog):
    app = make_app()
    broker = app.broker
    eta = time.time() + 600
    broker.add_delayed(redis_client, "sq", 4, "good", envelope("t-good"), eta)
    for member, value in ((b"bad-head", b"x,0|" + envelope("t-badhead")),
                          (b"no-head", envelope("t-nohead")),
                          (b"big-band", b"42,0|" + envelope("t-bigband"))):
        redis_client.hset(K.delayed_bodies("sq"), member, value)
        redis_client.zadd(K.delayed("sq"), {member: eta - 10})
    worker = SimpleNamespace(app=app, current_queues=lambda: ["sq"])
    with caplog.at_level(logging.WARNING, logger="multiq.worker"):
        reply = commands.dispatch(worker, "scheduled", {})
    assert isinstance(reply, list), reply
    assert [(r["request"]["id"], r["priority"]) for r in reply] == [("t-good", 4)]
    assert "b'bad-head'" in caplog.text and K.delayed_bodies("sq") in caplog.text


# -- beat ---------------------------------------------------------------------------------


def queued_tasks(client: Any, queue: str = "multiq", band: int = 0) -> List[str]:
    return [decode(f[b"m"], ["json"]).task for _, f in client.xrange(K.stream(queue, band))]


def test_beat_goes_on_with_the_good_entries_past_garbage(make_app, redis_client, caplog):
    app = make_app("beat_it", beat_schedule={
        "good": {"task": "beat_it.good", "schedule": 10.0},
        "garbled": {"task": "beat_it.garbled", "schedule": 10.0},
        "nan": {"task": "beat_it.nan", "schedule": 10.0},
    })
    redis_client.hset(K.beat_last, mapping={
        "good": repr(time.time() - 11), "garbled": "not a time", "nan": "nan",
    })
    redis_client.hset(K.beat_last, UNDECODABLE, "1")
    table = {
        "dyn-good": app.beat.add("dyn-good", "beat_it.dyn", 10.0).to_json(),
        "dyn-notjson": "{", "dyn-list": "[1]", "dyn-notask": json.dumps({"schedule": {}}),
        "dyn-badsched": json.dumps({"task": "x", "schedule": {"type": "interval",
                                                              "every": "soon"}}),
        "dyn-badcron": json.dumps({"task": "x", "schedule": {"type": "crontab",
                                                             "minute": "99"}}),
        "dyn-badargs": json.dumps({"task": "x", "schedule": {"type": "interval", "every": 1},
                                   "args": 5}),
        "dyn-inf": json.dumps({"task": "x", "schedule": {"type": "interval",
                                                         "every": 1e308 * 10}}),
    }
    redis_client.hset(K.beat_entries, mapping=table)
    redis_client.hset(K.beat_entries, UNDECODABLE, table["dyn-good"])
    redis_client.hset(K.beat_last, "dyn-good", repr(time.time() - 11))
    redis_client.hset(K.beat_last, "dyn-inf", repr(time.time() - 11))

    beat = Beat(app)
    with caplog.at_level(logging.WARNING, logger="multiq.beat"):
        beat.tick()
    assert sorted(queued_tasks(redis_client)) == ["beat_it.dyn", "beat_it.good"]
    # the garbage last runs start again from now: sent one period later, not at once
    lasts = redis_client.hgetall(K.beat_last)
    for name in (b"garbled", b"nan"):
        assert abs(float(lasts[name]) - time.time()) < 10, lasts
    assert UNDECODABLE not in lasts  # no entry has that name: forgotten
    for name in ("garbled", "dyn-notjson", "dyn-list", "dyn-notask", "dyn-badsched",
                 "dyn-badcron", "dyn-badargs", "dyn-inf"):
        assert repr(name) in caplog.text or repr(name.encode()) in caplog.text, name
    assert K.beat_entries in caplog.text and K.beat_last in caplog.text
    beat.tick()  # and again: nothing more is due, nothing breaks
    assert sorted(queued_tasks(redis_client)) == ["beat_it.dyn", "beat_it.good"]


@pytest.mark.parametrize("garbage", ["string", "hash"])
def test_beat_takes_over_a_lock_that_is_not_a_lease(make_app, redis_client, caplog, garbage):
    app = make_app("beat_it", beat_schedule={"good": {"task": "beat_it.good",
                                                      "schedule": 10.0}})
    if garbage == "string":
        redis_client.set(K.beat_lock, UNDECODABLE)  # no expiry: it would block beat forever
    else:
        redis_client.hset(K.beat_lock, "a", "b")
    redis_client.hset(K.beat_last, "good", repr(time.time() - 11))
    beat = Beat(app)
    with caplog.at_level(logging.WARNING, logger="multiq.beat"):
        beat.tick()
    assert beat.leader
    assert redis_client.get(K.beat_lock) == beat.ident.encode()
    assert 0 < redis_client.pttl(K.beat_lock) <= beat.lease * 1000
    assert queued_tasks(redis_client) == ["beat_it.good"]
    assert K.beat_lock in caplog.text
    other = Beat(app)  # a real lease is never taken over
    other.tick()
    assert not other.leader and redis_client.get(K.beat_lock) == beat.ident.encode()

