"""The asyncio pool (``-P asyncio -c N``) with real workers: many sleeping coroutines at
once, the request of each, a blocked task never silencing control, time limits inside the
coroutine, terminate, retries, rate limits, late acks, warm and cold shutdown, a SIGKILL,
and what ``inspect`` shows.

Workers run ``apps/sysq_aio.py``; runs are recorded in db 3 (``runs``).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]  # sysq_support, sysq_aio

from helpers import wait_until  # noqa: E402
from sysq_support import APPS, WORKER_ENV, runs, sigkill, wait_results  # noqa: E402

from multiq import states  # noqa: E402
from multiq.exceptions import (  # noqa: E402
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
    WorkerLostError,
)

pytestmark = pytest.mark.system

TASK = "sysq_aio.{}".format


@pytest.fixture
def client(make_app):
    return make_app("sysq_aio_client")


def _start(start_worker, *args, concurrency="1000", name="aio", env=None, **options):
    return start_worker("sysq_aio", "-c", concurrency, *args, cwd=APPS, pool="asyncio",
                        hostname=f"{name}@%h", env={**WORKER_ENV, **(env or {})},
                        **options)


def _send(client, name, *args, **options):
    return client.send_task(TASK(name), args=list(args), **options)


def _node(client, name="aio"):
    return f"{name}@{os.uname().nodename}"


def _last_beat(client, node):
    return max(i["time"] for i in client.broker.live_nodes().values()
               if i["hostname"] == node)


def _active_ids(client, node):
    replies = client.control.inspect(destination=[node], timeout=2).active() or {}
    return [t["id"] for t in replies.get(node) or []]


@pytest.mark.timeout(90)
def test_2000_sleeping_coroutines_share_1000_slots(start_worker, client):
    w = _start(start_worker)
    with client.publish_batch():
        results = [_send(client, "nap", 0.5, i) for i in range(2000)]
    began = time.monotonic()
    wait_results(results, timeout=60)
    took = time.monotonic() - began
    assert [r.get(timeout=5) for r in results] == list(range(2000))
    # 2000 half-second naps, 1000 at a time: ~1 s of sleeping, not 1000 s
    assert took < 20, f"{took:.1f}s"
    assert "Traceback" not in w.log(), w.log()


@pytest.mark.timeout(60)
def test_each_of_50_concurrent_coroutines_sees_its_own_request(start_worker, client):
    _start(start_worker)
    results = [_send(client, "whoami", n) for n in range(50)]
    for n, r in enumerate(results):
        seen, arg = r.get(timeout=30)
        assert seen == [r.id] * 4, (n, seen)
        assert arg == n


@pytest.mark.timeout(60)
@pytest.mark.parametrize("task", ["block", "hog"])
def test_control_answers_while_a_task_blocks(start_worker, client, task):
    """``block`` blocks a thread of the pool, ``hog`` the event loop itself: neither stops
    the control mailbox (nor the heartbeat: the node stays alive)."""
    _start(start_worker)
    node = _node(client)
    r = _send(client, task, 3.0)
    wait_until(lambda: r.id in _active_ids(client, node), timeout=10,
               message="the blocking task never showed as active")
    beat = _last_beat(client, node)
    for _ in range(3):
        began = time.monotonic()
        replies = client.control.ping(destination=[node], timeout=1.0)
        assert time.monotonic() - began < 1.0
        assert any(node in reply for reply in replies), replies
    # the heartbeat goes on too (every second)
    wait_until(lambda: _last_beat(client, node) > beat, timeout=2.5)
    assert not r.ready()
    name = r.get(timeout=20)
    assert name.startswith("pool-sync" if task == "block" else "task-loop"), name


@pytest.mark.timeout(60)
def test_soft_time_limit_is_raised_inside_the_coroutine(start_worker, client):
    _start(start_worker)
    assert _send(client, "soft_caught").get(timeout=20) == "caught"
    # waiting on a gather: cancelled instead, and the call fails with the soft limit
    with pytest.raises(SoftTimeLimitExceeded):
        _send(client, "soft_in_gather").get(timeout=20)
    assert _send(client, "add", 1, 2).get(timeout=20) == 3


@pytest.mark.timeout(60)
def test_hard_time_limit_fails_the_task_and_the_node_goes_on(start_worker, client):
    w = _start(start_worker)
    r = _send(client, "too_long")
    with pytest.raises(TimeLimitExceeded):
        r.get(timeout=20)
    assert r.state == states.FAILURE
    # one that swallows the cancellation is recorded as failed all the same
    s = _send(client, "stubborn")
    with pytest.raises(TimeLimitExceeded):
        s.get(timeout=20)
    assert _send(client, "add", 2, 3).get(timeout=20) == 5
    assert "Hard time limit (0.5s) exceeded" in w.log()


@pytest.mark.timeout(60)
def test_revoke_terminate_cancels_a_running_coroutine(start_worker, client, rec):
    _start(start_worker)
    node = _node(client)
    r = _send(client, "long", "t1")
    wait_until(lambda: r.id in _active_ids(client, node), timeout=10)
    client.control.revoke(r.id, terminate=True)
    wait_until(lambda: r.state == states.REVOKED, timeout=10,
               message=f"state {r.state}")
    with pytest.raises(TaskRevokedError):
        r.get(timeout=5)
    assert "end:t1" not in runs(rec)
    assert _send(client, "add", 1, 1).get(timeout=20) == 2


@pytest.mark.timeout(60)
def test_retries_and_autoretry(start_worker, client):
    _start(start_worker)
    assert _send(client, "flaky", 2).get(timeout=20) == 2
    assert _send(client, "auto_flaky", 2).get(timeout=20) == 2


@pytest.mark.timeout(60)
def test_a_rate_limit_spaces_the_starts(start_worker, client):
    _start(start_worker)
    results = [_send(client, "limited", i) for i in range(6)]
    began = time.monotonic()
    stamps = sorted(r.get(timeout=30) for r in results)
    # 5/s: six starts span about a second, while other tasks are not held up
    assert stamps[-1] - stamps[0] >= 0.8, stamps
    assert _send(client, "add", 1, 1).get(timeout=5) == 2
    assert time.monotonic() - began < 10


@pytest.mark.timeout(60)
def test_warm_shutdown_waits_for_running_coroutines(start_worker, client, rec):
    w = _start(start_worker)
    results = [_send(client, "long", f"t{i}", 2.0) for i in range(3)]
    wait_until(lambda: len([x for x in runs(rec) if x.startswith("start:")]) == 3,
               timeout=10)
    assert w.stop(signal.SIGTERM, timeout=20) == 0
    assert [r.get(timeout=5) for r in results] == ["t0", "t1", "t2"]


@pytest.mark.timeout(90)
def test_cold_shutdown_cancels_and_hands_back(start_worker, client, rec):
    """Cold (SIGQUIT): a running early-ack task fails as lost, a late-ack one goes back to
    its queue, as does one still waiting for its rate limit; another node runs those."""
    w = _start(start_worker)
    early, late = _send(client, "long", "early"), _send(client, "long_late", "late", 1.0)
    wait_until(lambda: {"start:early", "start:late"} <= set(runs(rec)), timeout=10)
    limited = [_send(client, "limited", i) for i in range(15)]  # 5/s: most wait
    wait_until(lambda: sum(r.ready() for r in limited) >= 2, timeout=10)
    w.send_signal(signal.SIGQUIT)
    w.wait(timeout=20)
    assert isinstance(early.get(timeout=5, propagate=False), WorkerLostError)
    assert not late.ready()
    _start(start_worker, name="aio2")
    assert late.get(timeout=20) == "late"
    wait_results(limited, timeout=30)
    assert all(r.successful() for r in limited)
    assert runs(rec).count("start:late") == 2


@pytest.mark.timeout(90)
def test_sigkill_with_acks_late_runs_again_elsewhere(start_worker, client, rec):
    a = _start(start_worker, name="a")
    r = _send(client, "long_late", "k", 1.0)
    wait_until(lambda: "start:k" in runs(rec), timeout=10)
    sigkill(a)
    _start(start_worker, name="b")
    assert r.get(timeout=30) == "k"
    assert runs(rec).count("start:k") == 2


@pytest.mark.timeout(60)
def test_inspect_and_events_show_the_pool_and_its_tasks(start_worker, client, redis_client):
    _start(start_worker, "-E")
    node = _node(client)
    r = _send(client, "nap", 30)
    wait_until(lambda: r.id in _active_ids(client, node), timeout=10)
    inspect = client.control.inspect(destination=[node], timeout=2)
    stats = inspect.stats()[node]
    assert stats["pool"]["implementation"] == "asyncio"
    assert stats["pool"]["max-concurrency"] == 1000
    active = inspect.active()[node]
    assert [(t["id"], t["name"]) for t in active] == [(r.id, TASK("nap"))]
    assert active[0]["time_start"] and active[0]["acknowledged"]
    # tasks waiting for their rate limit are in the pool, not running: reserved
    limited = [_send(client, "limited", i) for i in range(10)]
    wait_until(lambda: len(inspect.reserved().get(node) or []) >= 5, timeout=10)
    reserved = {t["id"] for t in inspect.reserved()[node]}
    assert reserved <= {x.id for x in limited} and r.id not in reserved
    info = [i for i in client.broker.live_nodes().values() if i["hostname"] == node]
    assert [(i["pool"], i["concurrency"]) for i in info] == [("asyncio", 1000)]
    client.control.revoke(r.id, terminate=True)
    wait_until(lambda: r.state == states.REVOKED, timeout=10)
    wait_results(limited, timeout=20)
    wait_until(lambda: "task-revoked" in _event_types(redis_client, r.id), timeout=10)
    assert _event_types(redis_client, r.id)[:2] == ["task-received", "task-started"]
    assert _event_types(redis_client, limited[-1].id) == \
        ["task-received", "task-started", "task-succeeded"]


def _event_types(redis_client, task_id):
    found = [json.loads(fields[b"e"]) for _, fields in redis_client.xrange("multiq:events")]
    return [e["type"] for e in found if e.get("uuid") == task_id]
