"""The prefork reader looks up a child's jobs while the dispatching thread queues more."""
from __future__ import annotations

import sys
import threading
import time
from collections import deque
from types import SimpleNamespace

import pytest

from multiq.pools.prefork import Child, PreforkPool


@pytest.mark.timeout(30)
def test_finding_a_job_while_another_thread_queues_one_never_fails():
    child = Child(1, 0, None)  # type: ignore[arg-type]
    child.queue = deque(SimpleNamespace(id=str(i)) for i in range(200))
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            child.queue.append(SimpleNamespace(id="x"))
            child.queue.pop()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end:
            assert PreforkPool._find(None, child, "199").id == "199"  # type: ignore[arg-type]
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)


class _Committer:
    def __init__(self) -> None:
        self.redelivered: list = []
        self.completed: list = []

    def redeliver(self, req, count=True):  # noqa: ANN001
        self.redelivered.append((req.id, count))

    def complete(self, req, outcome):  # noqa: ANN001
        self.completed.append((req.id, outcome.state))


def _dead_child_pool(started_numbers: int):  # noqa: ANN202
    """A pool whose child 1 died after being sent jobs 1..3 and starting ``started``."""
    from multiq.pools.gate import Gate

    committer = _Committer()
    pool = PreforkPool.__new__(PreforkPool)
    pool.children, pool._cond, pool._running, pool._cold = {}, threading.Condition(), \
        False, False
    pool._starved = threading.Event()
    pool.executor = SimpleNamespace(committer=committer, app=SimpleNamespace(
        conf=SimpleNamespace(task_reject_on_worker_lost=False)))
    pool._close = lambda child: None  # type: ignore[method-assign]
    gate = Gate()
    for number in range(1, started_numbers + 1):
        assert gate.enter(number)
    child = Child(1, 0, SimpleNamespace(closed=True), gate=gate)  # type: ignore[arg-type]
    reqs = [SimpleNamespace(id=f"job{i}", name="t", early_ack=True,
                            task=SimpleNamespace(reject_on_worker_lost=None))
            for i in (1, 2, 3)]
    child.queue = deque(reqs)
    child.numbers = {id(r): i for i, r in enumerate(reqs, 1)}
    child.running = reqs[0]  # the parent marks an idle child's first job as running
    pool.children[1] = child
    return pool, child, committer


@pytest.mark.timeout(10)
def test_jobs_sent_to_a_child_that_died_before_starting_them_go_back_unharmed():
    pool, child, committer = _dead_child_pool(started_numbers=0)
    pool._on_exit(child, 9)
    assert committer.completed == []  # no WorkerLostError for a job never started
    assert committer.redelivered == [("job1", False), ("job2", False), ("job3", False)]


@pytest.mark.timeout(10)
def test_the_job_a_dead_child_had_started_is_lost_the_others_go_back():
    pool, child, committer = _dead_child_pool(started_numbers=1)
    pool._on_exit(child, 9)
    assert committer.completed == [("job1", "FAILURE")]
    assert committer.redelivered == [("job2", False), ("job3", False)]
