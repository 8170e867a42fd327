"""Garbage in Redis or on the control channels never stops a node, and never holds up the
good work behind it: real ``python -m multiq -A sysq_control worker`` processes, the
``multiq`` CLI run as a subprocess, garbage written straight into the test's Redis.

Each test starts its own node (apps/sysq_control.py); tasks record their runs in db 3.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

from helpers import wait_until  # noqa: E402
from sysq_control_support import (  # noqa: E402
    TASK,
    child_pids,
    cli,
    env_for,
    flat,
    node,
    recorded,
    start_node,
)

from multiq.exceptions import DecodeError  # noqa: E402
from multiq.keys import Keys  # noqa: E402

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

K = Keys()
UNDECODABLE = b"\xff\xfe\x00"


@pytest.fixture
def client(make_app):
    return make_app("sysq_control_client", set_as_current=False)


@pytest.fixture
def env(redis_url, backend_url):
    return env_for(redis_url, backend_url)


def test_garbage_delayed_member_does_not_hold_up_a_countdown(start_worker, client, rec,
                                                            redis_client):
    for member, value in ((b"junk-1", b"no head at all"), (b"junk-2", b"x,0|{}"),
                          (b"junk-3", b"12,0|{}")):
        redis_client.hset(K.delayed_bodies("gd"), member, value)
        redis_client.zadd(K.delayed("gd"), {member: time.time() - 5})
    start_node(start_worker, "-Q", "gd", hostname="gd@%h")

    sent = time.time()
    r = client.send_task(TASK("record"), args=["gd-good"], queue="gd", countdown=1)
    r.get(timeout=15)
    [(_, _, _, at)] = recorded(rec, "gd-good")
    assert 1.0 <= float(at) - sent < 6.0, float(at) - sent  # on time, not blocked
    dead = [f for _, f in redis_client.xrange(K.deadletter("gd"))]
    assert sorted(f[b"m"] for f in dead) == [b"no head at all", b"{}", b"{}"]
    assert all(b"malformed" in f[b"reason"] for f in dead)
    assert redis_client.zcard(K.delayed("gd")) == 0
    assert redis_client.hlen(K.delayed_bodies("gd")) == 0


def test_undecodable_revoked_member_node_starts_and_honours_revokes(start_worker, client,
                                                                   rec, redis_client):
    until = time.time() + 600
    redis_client.zadd(K.revoked, {UNDECODABLE: until, b"rv-victim-id": until})
    w = start_node(start_worker, "-Q", "rvs", hostname="rvs@%h")

    victim = client.send_task(TASK("record"), args=["rv-victim"], queue="rvs",
                              task_id="rv-victim-id")
    after = client.send_task(TASK("record"), args=["rv-after"], queue="rvs")
    assert after.get(timeout=15) == w.pid
    wait_until(lambda: victim.status == "REVOKED", timeout=10,
               message=f"the revoked task is {victim.status}")
    assert recorded(rec, "rv-victim") == []
    assert w.alive


def test_garbage_node_records_inspect_ping_and_status_exit_0(start_worker, env,
                                                             redis_client):
    start_node(start_worker, "-Q", "nr", hostname="nr@%h")
    name = node("nr")
    now = time.time()
    for consumer, value in (("notjson@x|1", b"{nope"), ("list@x|1", b"[1, 2]"),
                            ("bytes@x|1", UNDECODABLE),
                            ("odd@x|1", json.dumps({"hostname": 5, "started": "x",
                                                    "queues": 7}).encode())):
        redis_client.set(K.node(consumer), value, ex=60)
        redis_client.zadd(K.nodes, {consumer: now})
    redis_client.zadd(K.nodes, {"norecord@x|1": now, UNDECODABLE: now})

    ping = cli(env, "inspect", "ping", "-t", "2")
    assert ping.code == 0, ping
    assert f"->  {name}: OK" in ping.out, ping
    status = cli(env, "status")
    assert status.code == 0, status
    assert f"->  {name}: OK" in status.out, status


CONTROL_GARBAGE = [
    b"not json", UNDECODABLE, b"[1, 2]", b'"ping"', b"null",
    json.dumps({"method": "ping", "arguments": [1]}).encode(),
    json.dumps({"method": "ping", "destination": "nr"}).encode(),
    json.dumps({"method": "ping", "destination": [1]}).encode(),
    json.dumps({"method": "ping", "expires": "soon"}).encode(),
    json.dumps({"method": ["ping"]}).encode(),
    json.dumps({"method": "ping", "reply_to": 5}).encode(),
    json.dumps({"method": "ping", "reply_to": "multiq:queues"}).encode(),
    json.dumps({"method": "pool_grow", "arguments": {"n": "x"}}).encode(),
]


def test_garbage_on_the_control_channel_node_answers_at_once(start_worker, client,
                                                             redis_client):
    w = start_node(start_worker, "-Q", "cg", hostname="cg@%h")
    name = node("cg")
    inspect = client.control.inspect(destination=[name], timeout=3.0)
    assert inspect.ping() == {name: {"ok": "pong"}}  # warm: connections made
    for junk in CONTROL_GARBAGE:
        redis_client.publish(K.control, junk)
        began = time.monotonic()
        reply = inspect.ping()
        took = time.monotonic() - began
        assert reply == {name: {"ok": "pong"}}, (junk, reply)
        assert took < 0.5, (junk, took)
    assert redis_client.type("multiq:queues") == b"set"  # no reply pushed there
    assert w.alive


def test_garbage_on_the_revoke_channel_then_a_revoke_is_honoured(start_worker, client, rec,
                                                                 redis_client):
    w = start_node(start_worker, "-Q", "rg", hostname="rg@%h")
    first = client.send_task(TASK("nap"), args=["rg-first", 0.8], queue="rg")
    victim = client.send_task(TASK("record"), args=["rg-victim"], queue="rg")
    after = client.send_task(TASK("record"), args=["rg-after"], queue="rg")
    wait_until(lambda: recorded(rec, "rg-first", "start"), timeout=15)

    for junk in (b"[1]", b'{"ids": 5}', b'{"ids": [1]}', UNDECODABLE, b'"x"'):
        redis_client.publish(K.revoked_channel, junk)
    # stored and announced, as a revoke made before any node is up would be
    client.broker.revoke([victim.id], 600, {"terminate": False, "signal": "SIGTERM"})

    assert first.get(timeout=15) == w.pid
    assert after.get(timeout=15) == w.pid
    wait_until(lambda: victim.status == "REVOKED", timeout=10,
               message=f"the revoked task is {victim.status}")
    assert recorded(rec, "rg-victim") == []


def test_time_limit_garbage_is_refused_and_a_prefork_node_runs_on(start_worker, client,
                                                                  rec, env):
    w = start_node(start_worker, "-c", "1", "-Q", "tg", pool="prefork", hostname="tg@%h")
    name = node("tg")
    (kid,) = wait_until(lambda: child_pids(w.pid) or None, timeout=15)

    run = cli(env, "control", "time_limit", TASK("record"), "abc", "x", "-d", name)
    assert run.code != 0, run
    assert f"->  {name}: ERROR" in run.out and "soft" in run.out, run
    replies = flat(client.control.time_limit(TASK("record"), soft="abc", hard="x",
                                             destination=[name], reply=True))
    assert "error" in replies[name], replies
    replies = flat(client.control.time_limit(TASK("record"), soft=5, hard=1,
                                             destination=[name], reply=True))
    assert "error" in replies[name], replies

    assert client.send_task(TASK("record"), args=["tg-1"], queue="tg").get(timeout=15) == kid
    # a message whose own time limit is not a number is refused, and the node goes on
    odd = client.send_task(TASK("record"), args=["tg-2"], queue="tg", time_limit="abc",
                           soft_time_limit=[1])
    with pytest.raises(DecodeError, match="timelimit"):
        odd.get(timeout=15)
    assert client.send_task(TASK("record"), args=["tg-3"], queue="tg").get(timeout=15) == kid
    assert w.alive and child_pids(w.pid) == [kid]
    assert [r[0] for r in recorded(rec, "tg-1") + recorded(rec, "tg-2") + recorded(rec, "tg-3")
            ] == ["tg-1", "tg-3"]


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_band_stream_overwritten_with_garbage_is_set_aside_and_the_node_serves_on(
        start_worker, client, rec, redis_client, pool):
    w = start_node(start_worker, "-c", "1", "-Q", "ga,gb", pool=pool, hostname="gs@%h")
    assert client.send_task(TASK("record"), args=["gs-warm"], queue="gb").get(timeout=15)
    stream = K.stream("gb", 5)
    redis_client.delete(stream)
    redis_client.rpush(stream, b"not", b"a stream")  # what some other program wrote there

    # the good queue is served; the queue with the garbage key heals and is served too
    assert client.send_task(TASK("record"), args=["gs-a"], queue="ga").get(timeout=15)
    assert client.send_task(TASK("record"), args=["gs-b"], queue="gb",
                            priority=5).get(timeout=15)
    assert redis_client.type(stream) == b"stream"
    [aside] = [k for k in redis_client.scan_iter(match=f"{stream}:garbage:*")]
    assert redis_client.lrange(aside, 0, -1) == [b"not", b"a stream"]  # kept, to inspect
    w.wait_for_log(aside.decode(), timeout=10)
    assert w.alive


def test_a_node_starts_on_a_queue_whose_band_stream_holds_garbage(start_worker, client, rec,
                                                                 redis_client):
    stream = K.stream("gc", 0)
    redis_client.set(stream, b"garbage")
    w = start_node(start_worker, "-Q", "gc", hostname="gc@%h")
    assert client.send_task(TASK("record"), args=["gc-1"], queue="gc").get(timeout=15)
    [aside] = redis_client.scan_iter(match=f"{stream}:garbage:*")
    assert redis_client.get(aside) == b"garbage"
    assert w.alive


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_garbage_in_a_queue_s_start_markers_or_dead_letters_is_set_aside_and_nothing_is_lost(
        start_worker, client, rec, redis_client, pool):
    for key in (K.started("gm"), K.deadletter("gm")):
        redis_client.set(key, b"garbage")
    w = start_node(start_worker, "-c", "1", "-Q", "gm", pool=pool, hostname="gm@%h")
    # an early-ack task: its start marker is written to, and deleted from, the hash
    r = client.send_task(TASK("record"), args=["gm-1"], queue="gm")
    assert r.get(timeout=15) and r.status == "SUCCESS"
    # a message that cannot run is dead-lettered, in the stream made anew
    redis_client.xadd(K.stream("gm", 0), {"m": b"not an envelope", "n": 0})
    wait_until(lambda: redis_client.type(K.deadletter("gm")) == b"stream"
               and redis_client.xlen(K.deadletter("gm")) == 1, timeout=15,
               message="the bad message was not dead-lettered")
    assert client.send_task(TASK("record"), args=["gm-2"], queue="gm").get(timeout=15)
    assert [r[0] for r in recorded(rec, "gm-1") + recorded(rec, "gm-2")] == ["gm-1", "gm-2"]
    for key in (K.started("gm"), K.deadletter("gm")):
        [aside] = redis_client.scan_iter(match=f"{key}:garbage:*")
        assert redis_client.get(aside) == b"garbage"  # kept, to inspect
    assert redis_client.xpending(K.stream("gm", 0), "multiq")["pending"] == 0  # none held
    assert w.alive
