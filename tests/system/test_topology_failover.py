"""Failover mid-stream: a worker drains a queue, the master holding it is killed, a
replica takes over (Sentinel, or the Cluster itself), and every task still runs and
every result is stored.

Each test starts a private topology (the kill damages it). What tasks did is recorded in
db 3 of the plain test Redis (``SYSQ_RECORD_URL``), out of the failover's reach.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import topology_support  # noqa: E402
from helpers import wait_until  # noqa: E402
from sysq_support import TASK, runs, start, wait_results  # noqa: E402
from topology_support import is_sentinel, urls  # noqa: E402

pytestmark = pytest.mark.system

rec = topology_support.rec
worker_env = topology_support.worker_env
QUEUE_KEY = "multiq:q:{multiq}:0"  # the default queue's slot


@pytest.fixture(params=[pytest.param("cluster", marks=pytest.mark.cluster),
                        pytest.param("sentinel", marks=pytest.mark.sentinel)])
def topology(request: Any) -> Any:
    return request.getfixturevalue(f"fresh_{request.param}")


@pytest.fixture
def redis_url(topology: Any) -> str:
    return urls(topology)["broker"]


@pytest.fixture
def backend_url(topology: Any) -> str:
    return urls(topology)["backend"]


@pytest.mark.timeout(180)
def test_master_killed_mid_stream_nothing_is_lost(
        topology: Any, start_worker: Any, make_app: Any, rec: Any) -> None:
    n = 600
    worker = start(start_worker, "-c", "4", pool="threads")
    options = {"wait_replicas": 1} if is_sentinel(topology) else {}
    client = make_app("sysq_client", broker_transport_options=options)
    tags = [f"t{i:04d}" for i in range(n)]
    results = [client.send_task(TASK("slow"), args=[tag, 0.01]) for tag in tags]
    if not is_sentinel(topology):
        topology.wait_replicated()  # what was sent is on a replica before the kill
    wait_until(lambda: len(runs(rec)) >= 100, timeout=30,
               message=f"the worker is not running tasks:\n{worker.log()[-2000:]}")

    if is_sentinel(topology):
        topology.wait_failover(topology.kill_master(), timeout=60)
    else:
        topology.wait_failover(topology.kill_master_for_key(QUEUE_KEY), timeout=60)

    wait_results(results, timeout=90)
    done = {x[len("end:"):] for x in runs(rec) if x.startswith("end:")}
    missing = sorted(set(tags) - done)
    assert not missing, f"{len(missing)} tasks never ran: {missing[:10]}"
    assert {r.state for r in results} == {"SUCCESS"}
    assert worker.alive, worker.log()[-2000:]
    late = client.send_task(TASK("record"), args=["after"])
    assert late.get(timeout=20) is not None  # the worker consumes from the new master
