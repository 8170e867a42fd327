"""A node on several queues serves them in rotation (``queue_order_strategy``, default
``round_robin``): a busy queue does not starve the others. ``priority`` keeps the strict
order of ``-Q``. Every run is recorded in order in db 3 (see apps/sysq_reliable.py)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "apps")]  # sysq_support, sysq_reliable

from helpers import wait_until  # noqa: E402
from sysq_support import TASK, runs, start  # noqa: E402

pytestmark = pytest.mark.system

BUSY = 400  # short tasks on "a", sent before the one on "b"
# Rotation runs "b" within about one prefetch batch (4 solo, 8 prefork -c 2) of the start;
# reading "a" first on every fetch ran it last, 401st.
SOON = 40
POOLS = [pytest.param(("solo",), id="solo"),
         pytest.param(("prefork", "-c", "2"), id="prefork2")]


@pytest.fixture
def client(make_app: Any) -> Any:
    return make_app("sysq_client")


def _queue_up(client: Any) -> None:
    """BUSY tasks on "a", then one on "b", before any node is up."""
    with client.publish_batch():
        for i in range(BUSY):
            client.send_task(TASK("record"), args=[f"a{i}"], queue="a")
        client.send_task(TASK("record"), args=["b"], queue="b")


def _run_all(start_worker: Any, rec: Any, pool: Any, env: Any = None) -> List[str]:
    kind, *args = pool
    worker = start(start_worker, "-Q", "a,b", *args, pool=kind, env=env)
    wait_until(lambda: len(runs(rec)) >= BUSY + 1, timeout=90,
               message=f"only {len(runs(rec))} of {BUSY + 1} tasks ran")
    assert worker.alive
    order = runs(rec)
    assert sorted(order) == sorted([*(f"a{i}" for i in range(BUSY)), "b"])  # each once
    return order


@pytest.mark.timeout(150)
@pytest.mark.parametrize("pool", POOLS)
def test_a_busy_queue_does_not_starve_the_next(start_worker: Any, client: Any, rec: Any,
                                               pool: Any) -> None:
    _queue_up(client)
    order = _run_all(start_worker, rec, pool)
    assert order.index("b") < SOON, f"b ran {order.index('b') + 1}th of {len(order)}"


@pytest.mark.timeout(150)
@pytest.mark.parametrize("pool", POOLS)
def test_priority_order_serves_the_first_queue_first(start_worker: Any, client: Any,
                                                     rec: Any, pool: Any) -> None:
    _queue_up(client)
    order = _run_all(start_worker, rec, pool, env={"SYSQ_QUEUE_ORDER": "priority"})
    # strict: "b" only once "a" is empty (with 2 processes, a last "a" may finish after it)
    assert order.index("b") >= BUSY - 2, f"b ran {order.index('b') + 1}th of {len(order)}"


@pytest.mark.timeout(60)
def test_an_unknown_queue_order_stops_the_node_at_start(start_worker: Any) -> None:
    worker = start(start_worker, "-Q", "a,b", env={"SYSQ_QUEUE_ORDER": "fastest"},
                   wait_ready=False)
    assert worker.wait(timeout=30) != 0
    log = worker.log()
    assert "queue_order_strategy" in log and "'fastest'" in log, log
    assert all(name in log for name in ("'round_robin'", "'priority'", "'sorted'")), log
