"""The eventlet pool of a node started from the command line (``-P eventlet``): hundreds of
cooperative tasks at once, what ``inspect`` shows, the pool named by the configuration.
What it does as the gevent pool does (limits, terminate, shutdowns, ``async def`` tasks):
test_green_pools.py. Skipped without eventlet (its refusal then: test_gevent_pool.py).

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
from green_support import TASK, node_without_pool_option, started  # noqa: E402
from sysq_node_support import wait_results  # noqa: E402

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
