"""The gevent pool of a node started from the command line (``-P gevent``): hundreds of
cooperative tasks at once, soft and hard time limits, ``revoke --terminate``, retries, warm
and cold shutdowns, a killed node's late-ack work, what ``inspect`` shows, the pool named
by the configuration, ``async def`` tasks, and ``-P eventlet``'s refusal.

Nodes run ``python -m multiq -A sysq_green worker -P gevent`` (apps/sysq_green.py); tasks
that a test watches record ``<tag>:<what>:<pid>`` in db 3.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

import green_support  # noqa: E402
from green_support import (  # noqa: E402
    TASK,
    WITHOUT_EVENTLET,
    node_without_pool_option,
    pending,
    started,
)
from helpers import wait_until  # noqa: E402
from sysq_node_support import recorded, records, wait_results  # noqa: E402

from multiq.exceptions import TimeLimitExceeded, WorkerLostError  # noqa: E402
from multiq.patching import EVENTLET_REFUSED  # noqa: E402

pytest.importorskip("gevent")

pytestmark = pytest.mark.system


@pytest.fixture
def client(make_app):
    return make_app("sysq_green_client")


def start(start_worker, *args, **options):
    return green_support.start(start_worker, "gevent", *args, **options)


# -- many at once --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_500_sleeping_tasks_run_at_once_on_500_greenlets(start_worker, client):
    start(start_worker, "-c", "500", "--prefetch-multiplier", "1")
    assert client.send_task(TASK("patched")).get(timeout=10) == [True, True, True]
    began = time.monotonic()
    results = [client.send_task(TASK("sleep"), args=[0.2]) for _ in range(500)]
    wait_results(results, timeout=40)
    took = time.monotonic() - began
    assert [r.status for r in results] == ["SUCCESS"] * 500
    assert took < 20, took  # one at a time: 100 s


@pytest.mark.timeout(40)
def test_async_def_tasks_share_one_loop_and_run_at_once(start_worker, client):
    start(start_worker, "-c", "50")
    began = time.monotonic()
    results = [client.send_task(TASK("anap"), args=[0.5, i]) for i in range(50)]
    values = [r.get(timeout=20) for r in results]
    took = time.monotonic() - began
    assert [v[0] for v in values] == list(range(50))
    assert len({v[1] for v in values}) == 1, values  # one loop, not one per greenlet
    assert took < 10, took
    again = client.send_task(TASK("anap"), args=[0, "again"]).get(timeout=10)
    assert again[1] == values[0][1]


# -- time limits, terminate, retries -----------------------------------------------------


@pytest.mark.timeout(30)
def test_soft_time_limit_raises_inside_the_task(start_worker, client, rec):
    start(start_worker, "-c", "10")
    began = time.monotonic()
    r = client.send_task(TASK("soft_nap"), args=["s1", 10])
    assert r.get(timeout=10) == "soft"
    assert time.monotonic() - began < 5
    assert recorded(rec, "s1", "soft")


@pytest.mark.timeout(30)
def test_soft_time_limit_from_the_command_line(start_worker, client, rec):
    start(start_worker, "-c", "10", "--soft-time-limit", "0.5")
    r = client.send_task(TASK("nap"), args=["s2", 10])
    wait_results([r], timeout=10)
    assert r.status == "FAILURE" and type(r.result).__name__ == "SoftTimeLimitExceeded", \
        (r.status, repr(r.result))


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
    assert other.get(timeout=10) == node.pid  # the greenlet beside it was untouched
    assert client.send_task(TASK("sleep"), args=[0]).get(timeout=10) == 0
    # the limit from the message beats the task's and the node's
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
def test_retries(start_worker, client, rec):
    start(start_worker, "-c", "10")
    assert client.send_task(TASK("flaky"), args=["f", 2]).get(timeout=15) == 2
    assert [x.split(":")[1] for x in records(rec) if x.startswith("f:")] == \
        ["try0", "try1", "try2"]


# -- inspect -----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_inspect_stats_and_active_show_the_pool_and_its_tasks(start_worker, client, rec):
    node = start(start_worker, "-c", "25", hostname="green@%h")
    running = [client.send_task(TASK("nap"), args=[f"i{i}", 3]) for i in range(3)]
    for i in range(3):
        started(rec, f"i{i}")
    inspect = client.control.inspect(timeout=2)
    (stats,) = inspect.stats().values()
    pool = stats["pool"]
    assert pool["implementation"] == "gevent"
    assert pool["max-concurrency"] == 25
    assert pool["running-threads"] == 3
    assert stats["pid"] == node.pid
    (active,) = inspect.active().values()
    assert sorted(t["id"] for t in active) == sorted(r.id for r in running)
    assert {t["name"] for t in active} == {TASK("nap")}
    assert {t["worker_pid"] for t in active} == {node.pid}
    client.control.pool_grow(5, reply=True)
    (stats,) = client.control.inspect(timeout=2).stats().values()
    assert stats["pool"]["max-concurrency"] == 30
    wait_results(running, timeout=10)


# -- shutdowns and a killed node ----------------------------------------------------------


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
    # the late-ack task and the two never started are back in the queue, held by no one
    assert pending(redis_client) == (0, 3), pending(redis_client)

    second = start(start_worker, "-c", "10", hostname="second@%h")
    assert late.get(timeout=30) == second.pid
    wait_results(waiting, timeout=10)
    assert [r.status for r in waiting] == ["SUCCESS"] * 2
    assert len(recorded(rec, "early")) == 1  # an early-ack task is never run twice


@pytest.mark.timeout(60)
def test_sigkill_acks_late_task_runs_again_on_another_node(start_worker, client, rec):
    first = start(start_worker, "-c", "10", hostname="first@%h")
    r = client.send_task(TASK("nap_late"), args=["k1", 3])
    started(rec, "k1")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    second = start(start_worker, "-c", "10", hostname="second@%h")
    assert r.get(timeout=40) == second.pid
    assert len(recorded(rec, "k1")) == 2 and len(recorded(rec, "k1", "end")) == 1


# -- how the pool is chosen ---------------------------------------------------------------


@pytest.mark.timeout(30)
def test_worker_pool_gevent_in_the_configuration(process_tracker, worker_env, tmp_path,
                                                 client):
    node = node_without_pool_option(process_tracker, worker_env, tmp_path,
                                    env={"SYSQ_GREEN_POOL": "gevent"})
    log = node.wait_for_log(" ready.\n", timeout=20)  # (not a warning's "already")
    assert "Give -P gevent on the command line" in log, log[-2000:]
    assert "(gevent)" in log  # the banner's concurrency line
    assert client.send_task(TASK("patched")).get(timeout=10) == [True, True, True]
    results = [client.send_task(TASK("sleep"), args=[0.2]) for _ in range(10)]
    wait_results(results, timeout=15)
    assert [r.status for r in results] == ["SUCCESS"] * 10
    node.send_signal(signal.SIGTERM)
    assert node.wait(timeout=15) == 0


@pytest.mark.timeout(30)
def test_eventlet_not_installed_is_refused_at_start_with_one_clear_line(
        process_tracker, worker_env, tmp_path):
    node = node_without_pool_option(process_tracker, worker_env, tmp_path, "-P", "eventlet",
                                    paths=[WITHOUT_EVENTLET])
    assert node.wait(timeout=20) == 1
    assert node.log().strip().splitlines() == [f"Error: {EVENTLET_REFUSED}"]

    from_config = node_without_pool_option(process_tracker, worker_env, tmp_path,
                                           env={"SYSQ_GREEN_POOL": "eventlet"},
                                           paths=[WITHOUT_EVENTLET])
    assert from_config.wait(timeout=20) != 0
    assert EVENTLET_REFUSED in from_config.log()
