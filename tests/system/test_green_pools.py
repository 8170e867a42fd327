"""What the gevent and eventlet pools do alike, on a node started from the command line
(``-P gevent`` / ``-P eventlet``): ``async def`` tasks on one loop, soft and hard time
limits, ``revoke --terminate``, warm and cold shutdowns. The eventlet runs are skipped
without eventlet. What is each pool's own: test_gevent_pool.py, test_eventlet_pool.py.

Nodes run ``python -m multiq -A sysq_green worker -P <pool>`` (apps/sysq_green.py); tasks
that a test watches record ``<tag>:<what>:<pid>`` in db 3.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

import green_support  # noqa: E402
from green_support import TASK, pending, started  # noqa: E402
from helpers import wait_until  # noqa: E402
from sysq_node_support import recorded, wait_results  # noqa: E402

from multiq.exceptions import TimeLimitExceeded, WorkerLostError  # noqa: E402
from multiq.patching import _installed  # noqa: E402

pytestmark = pytest.mark.system


@pytest.fixture(params=["gevent", "eventlet"])
def start(request, start_worker):
    """``start(*args, **options)``: a node of the pool under test."""
    if not _installed(request.param):
        pytest.skip(f"{request.param} is not installed (pip install 'multiq[{request.param}]')")
    return lambda *args, **options: green_support.start(start_worker, request.param, *args,
                                                        **options)


@pytest.fixture
def client(make_app):
    return make_app("sysq_green_client")


@pytest.mark.timeout(40)
def test_async_def_tasks_share_one_loop_and_run_at_once(start, client):
    start("-c", "50")
    began = time.monotonic()
    results = [client.send_task(TASK("anap"), args=[0.5, i]) for i in range(50)]
    values = [r.get(timeout=20) for r in results]
    took = time.monotonic() - began
    assert [v[0] for v in values] == list(range(50))
    assert len({v[1] for v in values}) == 1, values  # one loop, not one per greenlet
    assert took < 10, took
    again = client.send_task(TASK("anap"), args=[0, "again"]).get(timeout=10)
    assert again[1] == values[0][1]


@pytest.mark.timeout(30)
def test_soft_time_limit_raises_inside_the_task(start, client, rec):
    start("-c", "10")
    began = time.monotonic()
    r = client.send_task(TASK("soft_nap"), args=["s1", 10])
    assert r.get(timeout=10) == "soft"
    assert time.monotonic() - began < 5
    assert recorded(rec, "s1", "soft")


@pytest.mark.timeout(30)
def test_hard_time_limit_fails_the_task_and_the_node_goes_on(start, client, rec):
    node = start("-c", "10")
    other = client.send_task(TASK("nap"), args=["beside", 1.5])
    r = client.send_task(TASK("hard_nap"), args=["h1", 10])
    wait_results([r], timeout=10)
    assert r.status == "FAILURE", (r.status, r.result)
    assert isinstance(r.result, TimeLimitExceeded), repr(r.result)
    assert recorded(rec, "h1", "caught") == []  # its ``except Exception`` did not stop it
    assert recorded(rec, "h1", "end") == []
    assert other.get(timeout=10) == node.pid  # the greenlet beside it was untouched
    assert client.send_task(TASK("sleep"), args=[0]).get(timeout=10) == 0
    # the limit from the message beats the task's and the node's
    slow = client.send_task(TASK("nap"), args=["h2", 10], time_limit=0.5)
    wait_results([slow], timeout=10)
    assert isinstance(slow.result, TimeLimitExceeded), repr(slow.result)
    assert node.alive


@pytest.mark.timeout(30)
def test_revoke_terminate_ends_the_running_task(start, client, rec):
    node = start("-c", "10")
    r = client.send_task(TASK("nap"), args=["t1", 20])
    beside = client.send_task(TASK("nap"), args=["t2", 1])
    started(rec, "t1")
    began = time.monotonic()
    client.control.revoke(r.id, terminate=True)
    wait_results([r], timeout=10)
    assert r.status == "REVOKED", (r.status, r.result)
    assert time.monotonic() - began < 5
    assert recorded(rec, "t1", "end") == []
    assert beside.get(timeout=10) == node.pid
    assert client.send_task(TASK("sleep"), args=[0]).get(timeout=10) == 0


@pytest.mark.timeout(30)
def test_warm_shutdown_waits_for_running_tasks(start, client, rec):
    node = start("-c", "10")
    results = [client.send_task(TASK("nap"), args=[f"w{i}", 1.5]) for i in range(3)]
    for i in range(3):
        started(rec, f"w{i}")
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=15) == 0
    assert [r.status for r in results] == ["SUCCESS"] * 3
    assert all(recorded(rec, f"w{i}", "end") for i in range(3))


@pytest.mark.timeout(40)
def test_cold_shutdown_kills_running_tasks_and_hands_back_the_rest(
        start, client, rec, redis_client):
    node = start("-c", "2", "--prefetch-multiplier", "2", hostname="cold@%h")
    early = client.send_task(TASK("nap"), args=["early", 20])
    late = client.send_task(TASK("nap_late"), args=["late", 20])
    started(rec, "early")
    started(rec, "late")
    waiting = [client.send_task(TASK("nap"), args=[f"q{i}", 0]) for i in range(2)]
    wait_until(lambda: pending(redis_client)[0] >= 4, timeout=10,
               message=f"the node did not take its prefetch: {pending(redis_client)}")
    began = time.monotonic()
    node.send_signal(signal.SIGQUIT)
    assert node.wait(timeout=10) != 0
    assert time.monotonic() - began < 8
    wait_results([early], timeout=5)
    assert isinstance(early.result, WorkerLostError), (early.status, repr(early.result))
    assert not late.ready() and not any(r.ready() for r in waiting)
    assert recorded(rec, "late", "end") == []
    # the late-ack task and the two never started are back in the queue, held by no one
    assert pending(redis_client) == (0, 3), pending(redis_client)

    second = start("-c", "10", hostname="second@%h")
    assert late.get(timeout=30) == second.pid
    wait_results(waiting, timeout=10)
    assert [r.status for r in waiting] == ["SUCCESS"] * 2
    assert len(recorded(rec, "early")) == 1  # an early-ack task is never run twice
