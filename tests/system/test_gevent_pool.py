"""The gevent pool of a node started from the command line (``-P gevent``): hundreds of
cooperative tasks at once, the node's soft time limit, retries, a killed node's late-ack
work, what ``inspect`` shows, the pool named by the configuration, and ``-P eventlet``'s
refusal. What it does as the eventlet pool does (limits, terminate, shutdowns, ``async
def`` tasks): test_green_pools.py.

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
    started,
)
from sysq_node_support import recorded, records, wait_results  # noqa: E402

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




# -- the node's soft time limit, retries ------------------------------------------------




@pytest.mark.timeout(30)
def test_soft_time_limit_from_the_command_line(start_worker, client, rec):
    start(start_worker, "-c", "10", "--soft-time-limit", "0.5")
    r = client.send_task(TASK("nap"), args=["s2", 10])
    wait_results([r], timeout=10)
    assert r.status == "FAILURE" and type(r.result).__name__ == "SoftTimeLimitExceeded", \
        (r.status, repr(r.result))






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


# -- a killed node --------------------------------------------------------------------------






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
