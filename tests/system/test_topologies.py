"""The same scenarios on a Redis Cluster (3 masters, 3 replicas) and on Sentinel (a master,
a replica, 3 sentinels): only the URLs change.

The tutorial, crash, revoke, queue-order, beat and chord-fault tests of their own modules
are collected here a second time with this module's fixtures, which point the broker and
the result backend at the topology. What the tasks did is recorded in db 3 of the plain test Redis
(``SYSQ_RECORD_URL``), so a failover cannot touch the record. The failover tests start a
private topology (see test_topology_failover.py).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]

import topology_support  # noqa: E402
from helpers import wait_until  # noqa: E402
from sysq_beat_support import beat_env  # noqa: E402
from sysq_support import TASK, runs, start, wait_results  # noqa: E402
from test_beat_leader import (  # noqa: E402,F401
    test_kill_the_leader_the_other_continues_within_the_lease,
    test_two_beats_send_each_due_run_exactly_once,
)
from test_canvas_faults import (  # noqa: E402,F401
    app,
    backend,
    test_chain_of_a_hundred_tasks,
    test_sigkill_mid_header_acks_late_body_runs_once_with_every_result,
)
from test_guarantees_crash import (  # noqa: E402,F401
    test_countdown_survives_sigkill_and_runs_once_when_due,
    test_sigkill_acks_late_every_task_succeeds,
    test_sigkill_early_ack_running_tasks_fail_as_lost_others_run_once,
)
from test_guarantees_input import (  # noqa: E402,F401
    test_priority_9_runs_before_priority_0,
    test_revoked_before_any_worker_never_runs,
)
from test_queue_order import test_a_busy_queue_does_not_starve_the_next  # noqa: E402,F401
from test_tutorial_000 import (  # noqa: E402,F401
    multiq_cli,
    project,
    script_env,
    test_apply_async_with_task_id_and_countdown,
    test_async_result_api_and_the_result_document,
    test_delay_returns_at_once_and_worker_runs_the_task,
    test_query_script_prints_what_the_tutorial_shows,
)
from topology_support import is_sentinel, urls  # noqa: E402

pytestmark = pytest.mark.system

rec = topology_support.rec
worker_env = topology_support.worker_env


@pytest.fixture(params=[pytest.param("cluster", marks=pytest.mark.cluster),
                        pytest.param("sentinel", marks=pytest.mark.sentinel)])
def topology(request: Any) -> Any:
    """The session's cluster or sentinel setup, flushed."""
    topo = request.getfixturevalue("redis_cluster" if request.param == "cluster"
                                   else "redis_sentinel")
    topo.flush()
    return topo


@pytest.fixture
def redis_url(topology: Any) -> str:
    return urls(topology)["broker"]


@pytest.fixture
def backend_url(topology: Any) -> str:
    return urls(topology)["backend"]


def _client(topo: Any, which: str, **kwargs: Any) -> Any:
    if is_sentinel(topo):
        return topo.master_client(1 if which == "broker" else 2, **kwargs)
    return topo.client(**kwargs)


@pytest.fixture
def redis_client(topology: Any) -> Iterator[Any]:
    """A client on the broker's keys (a RedisCluster, or the Sentinel master's db 1)."""
    client = _client(topology, "broker")
    yield client
    client.close()


@pytest.fixture
def backend_client(topology: Any) -> Iterator[Any]:
    client = _client(topology, "backend", decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def client(make_app: Any) -> Any:
    return make_app("sysq_client")


@pytest.fixture
def broker(redis_client: Any) -> Any:
    return redis_client


@pytest.fixture
def env(worker_env: Dict[str, str]) -> Dict[str, str]:
    return beat_env(worker_env)


def _cli(environ: Dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    environ = dict(environ, PYTHONPATH=str(HERE / "apps"))
    return subprocess.run([sys.executable, "-m", "multiq", "-A", "sysq_reliable", *args],
                          env=environ, text=True,
                          capture_output=True, timeout=timeout)


# -- inspect / control and many queues ----------------------------------------------------------


@pytest.mark.timeout(90)
def test_inspect_and_control_reach_every_node(start_worker: Any, worker_env: Dict[str, str],
                                             client: Any, rec: Any) -> None:
    a = start(start_worker, hostname="a@%h")
    b = start(start_worker, "-Q", "multiq,images", hostname="b@%h")
    ping = _cli(worker_env, "inspect", "ping")
    assert ping.returncode == 0, ping.stderr
    assert "a@" in ping.stdout and "b@" in ping.stdout, ping.stdout
    queues = _cli(worker_env, "inspect", "active_queues", "--json")
    assert '"images"' in queues.stdout, queues.stdout
    status = _cli(worker_env, "status")
    assert status.returncode == 0 and "2 nodes online." in status.stdout, status.stdout
    limited = _cli(worker_env, "control", "rate_limit", TASK("record"), "5/s")
    assert limited.returncode == 0 and limited.stdout.count(": OK") == 2, limited.stdout
    # a revoke through the control path reaches a node's live set
    client.control.revoke("never-sent-id")
    revoked = client.control.inspect().revoked()
    assert all("never-sent-id" in ids for ids in revoked.values()), revoked
    assert a.alive and b.alive


@pytest.mark.timeout(90)
def test_a_node_on_queues_of_every_shard_wakes_for_each_queue(
        start_worker: Any, client: Any, rec: Any, topology: Any) -> None:
    """Queues on different slots: the node blocks on all of them and wakes at once."""
    queues = [f"q{i}" for i in range(6)]
    start(start_worker, "-Q", ",".join(queues), "--prefetch-multiplier", "1")
    for q in queues:  # one at a time, to an idle node: each must wake it
        started = time.monotonic()
        r = client.send_task(TASK("record"), args=[f"wake-{q}"], queue=q)
        r.get(timeout=10)
        assert time.monotonic() - started < 2.0, q
    assert sorted(runs(rec)) == sorted(f"wake-{q}" for q in queues)
    rec.delete("runs")
    sent = [client.send_task(TASK("record"), args=[f"p{p}-{i}"], queue="q3", priority=p)
            for i in range(10) for p in (0, 9)]
    wait_results(sent, timeout=20)
    assert len(runs(rec)) == 20


@pytest.mark.timeout(90)
def test_events_of_a_task_reach_the_events_cli(start_worker: Any, worker_env: Dict[str, str],
                                               client: Any, redis_client: Any) -> None:
    start(start_worker, "-E")
    r = client.send_task(TASK("record"), args=["ev"])
    r.get(timeout=10)
    wait_until(lambda: redis_client.xlen("multiq:events") >= 3, timeout=10)
    total = redis_client.xlen("multiq:events")
    run = _cli(worker_env, "events", "--dump", "--from-start", "--limit", str(total),
               "--timeout", "10")
    assert run.returncode == 0, run.stderr
    mine = [line for line in run.stdout.splitlines() if r.id in line]
    assert {kind for kind in ("task-received", "task-started", "task-succeeded")
            if any(f" {kind}: " in line for line in mine)} == \
        {"task-received", "task-started", "task-succeeded"}, run.stdout
