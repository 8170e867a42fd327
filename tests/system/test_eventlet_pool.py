"""The eventlet pool of a node started from the command line (``-P eventlet``): hundreds of
cooperative tasks at once, soft and hard time limits, ``revoke --terminate``, warm and cold
shutdowns, what ``inspect`` shows, the pool named by the configuration, and ``async def``
tasks. Skipped without eventlet (its refusal then: test_gevent_pool.py).

Nodes run ``python -m multiq -A sysq_green worker -P eventlet`` (apps/sysq_green.py); tasks
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
from green_support import TASK, node_without_pool_option, pending, started  # noqa: E402
from helpers import wait_until  # noqa: E402
from sysq_node_support import recorded, wait_results  # noqa: E402

from multiq.exceptions import TimeLimitExceeded, WorkerLostError  # noqa: E402
from multiq.patching import _installed  # noqa: E402

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(not _installed("eventlet"),
                       reason="eventlet is not installed (pip install 'multiq[eventlet]')"),
]


@pytest.fixture
def client(make_app):
    return make_app("sysq_green_client")


def start(start_worker, *args, **options):
    return green_support.start(start_worker, "eventlet", *args, **options)


@pytest.mark.timeout(60)
def test_200_sleeping_tasks_run_at_once_on_200_green_threads(start_worker, client):
    start(start_worker, "-c", "200", "--prefetch-multiplier", "1")
    assert client.send_task(TASK("patched"), args=["eventlet"]).get(timeout=10) == \
        [True, True, True]
    began = time.monotonic()
    results = [client.send_task(TASK("sleep"), args=[0.2]) for _ in range(200)]
    wait_results(results, timeout=40)
    took = time.monotonic() - began
    assert [r.status for r in results] == ["SUCCESS"] * 200
    assert took < 10, took  # one at a time: 40 s


@pytest.mark.timeout(40)
def test_async_def_tasks_share_one_loop_and_run_at_once(start_worker, client):
    node = start(start_worker, "-c", "50")
    began = time.monotonic()
    results = [client.send_task(TASK("anap"), args=[0.5, i]) for i in range(50)]
    values = [r.get(timeout=20) for r in results]
    took = time.monotonic() - began
    assert [v[0] for v in values] == list(range(50))
    assert len({v[1] for v in values}) == 1, values  # one loop, not one per green thread
    assert took < 10, took
    again = client.send_task(TASK("anap"), args=[0, "again"]).get(timeout=10)
    assert again[1] == values[0][1]
    node.send_signal(signal.SIGTERM)  # the loop's thread stops with the node
    assert node.wait(timeout=15) == 0


@pytest.mark.timeout(30)
def test_soft_time_limit_raises_inside_the_task(start_worker, client, rec):
    start(start_worker, "-c", "10")
    began = time.monotonic()
    r = client.send_task(TASK("soft_nap"), args=["s1", 10])
    assert r.get(timeout=10) == "soft"
    assert time.monotonic() - began < 5
    assert recorded(rec, "s1", "soft")


@pytest.mark.timeout(30)
def test_hard_time_limit_fails_the_task_and_the_node_goes_on(start_worker, client, rec):
    node = start(start_worker, "-c", "10")
    other = client.send_task(TASK("nap"), args=["beside", 1.5])
    r = client.send_task(TASK("hard_nap"), args=["h1", 10])
    wait_results([r], timeout=10)
    assert r.status == "FAILURE", (r.status, r.result)
    assert isinstance(r.result, TimeLimitExceeded), repr(r.result)
    assert recorded(rec, "h1", "caught") == []  # its ``except Exception`` did not stop it
    assert recorded(rec, "h1", "end") == []
    assert other.get(timeout=10) == node.pid  # the green thread beside it was untouched
    assert client.send_task(TASK("sleep"), args=[0]).get(timeout=10) == 0
    slow = client.send_task(TASK("nap"), args=["h2", 10], time_limit=0.5)
    wait_results([slow], timeout=10)
    assert isinstance(slow.result, TimeLimitExceeded), repr(slow.result)
    assert node.alive


@pytest.mark.timeout(30)
def test_revoke_terminate_ends_the_running_task(start_worker, client, rec):
    node = start(start_worker, "-c", "10")
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
def test_inspect_stats_show_the_eventlet_pool(start_worker, client, rec):
    node = start(start_worker, "-c", "25", hostname="green@%h")
    running = [client.send_task(TASK("nap"), args=[f"i{i}", 3]) for i in range(3)]
    for i in range(3):
        started(rec, f"i{i}")
    inspect = client.control.inspect(timeout=2)
    (stats,) = inspect.stats().values()
    pool = stats["pool"]
    assert pool["implementation"] == "eventlet"
    assert pool["max-concurrency"] == 25
    assert pool["running-threads"] == 3
    assert stats["pid"] == node.pid
    (active,) = inspect.active().values()
    assert sorted(t["id"] for t in active) == sorted(r.id for r in running)
    wait_results(running, timeout=10)


@pytest.mark.timeout(30)
def test_warm_shutdown_waits_for_running_tasks(start_worker, client, rec):
    node = start(start_worker, "-c", "10")
    results = [client.send_task(TASK("nap"), args=[f"w{i}", 1.5]) for i in range(3)]
    for i in range(3):
        started(rec, f"w{i}")
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=15) == 0
    assert [r.status for r in results] == ["SUCCESS"] * 3
    assert all(recorded(rec, f"w{i}", "end") for i in range(3))


@pytest.mark.timeout(40)
def test_cold_shutdown_kills_running_tasks_and_hands_back_the_rest(
        start_worker, client, rec, redis_client):
    node = start(start_worker, "-c", "2", "--prefetch-multiplier", "2", hostname="cold@%h")
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
    assert pending(redis_client) == (0, 3), pending(redis_client)


@pytest.mark.timeout(30)
def test_worker_pool_eventlet_in_the_configuration(process_tracker, worker_env, tmp_path,
                                                   client):
    node = node_without_pool_option(process_tracker, worker_env, tmp_path,
                                    env={"SYSQ_GREEN_POOL": "eventlet"})
    log = node.wait_for_log(" ready.\n", timeout=20)  # (not a warning's "already")
    assert "Give -P eventlet on the command line" in log, log[-2000:]
    assert "(eventlet)" in log  # the banner's concurrency line
    assert "eventlet is deprecated upstream" in log
    assert client.send_task(TASK("patched"), args=["eventlet"]).get(timeout=10) == \
        [True, True, True]
    results = [client.send_task(TASK("sleep"), args=[0.2]) for _ in range(10)]
    wait_results(results, timeout=15)
    assert [r.status for r in results] == ["SUCCESS"] * 10
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=15) == 0
