"""The worker as control commands see it (``multiq.worker.node.NodeControl``): what it
reads and changes of the node's parts, with and without them."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any, List, Set

import pytest

from multiq import MultiQ
from multiq.control import commands
from multiq.pools.base import Pool
from multiq.pools.solo import SoloPool
from multiq.worker.node import NodeControl
from multiq.worker.worker import Worker

pytestmark = pytest.mark.timeout(10)


def held(task_id: str) -> Any:
    return SimpleNamespace(id=task_id, describe=lambda: {"id": task_id})


class RecordingPool(Pool):
    """Two requests held, the first one running; records what it is asked to kill."""

    kind = "recording"

    def __init__(self) -> None:
        super().__init__(lambda req: None, 2)
        self.requests = [held("run"), held("next")]
        self.killed: List[Any] = []

    def active(self) -> List[Any]:
        return self.requests[:1]

    def held(self) -> List[Any]:
        return list(self.requests)

    def terminate(self, ids: Set[str], signum: int) -> List[str]:
        self.killed.append((ids, signum))
        return sorted(ids & {"run"})

    def grow(self, n: int = 1) -> int:
        self.concurrency += n
        return self.concurrency


class KillingPool(RecordingPool):
    """Its running task ends a moment after the signal, as a killed child does."""

    def terminate(self, ids: Set[str], signum: int) -> List[str]:
        killed = super().terminate(ids, signum)
        threading.Timer(0.05, self.requests.pop, (0,)).start()
        return killed


class ThreadPoolLike(RecordingPool):
    """Runs its tasks in the node's own process: it can signal none of them."""

    kind = "threads"

    def terminate(self, ids: Set[str], signum: int) -> List[str]:
        self.killed.append((ids, signum))
        return []


@pytest.fixture
def worker() -> Worker:
    app = MultiQ("unit", broker="redis://127.0.0.1:1/0")
    return Worker(app, hostname="n1@h", pool="threads", concurrency=2, queues=["a", "b"])


def test_a_pool_in_the_nodes_own_process_terminates_nothing():
    assert SoloPool(lambda req: None).terminate({"a"}, 15) == []


def test_before_its_parts_exist_the_node_reads_as_empty(worker):
    node = NodeControl(worker)
    assert (node.hostname, node.started, node.clock) == ("n1@h", worker.started, 0)
    assert node.pool_info() == {"max-concurrency": 0}
    assert node.prefetch() == worker.prefetch == 8
    assert (node.running(), node.reserved(), node.consuming()) == ([], [], False)
    assert node.current_queues() == ["a", "b"]
    assert node.revoke(["x"], True, 9) == []
    assert set(node.revoked()) == {"x"}
    assert commands.dispatch(node, "add_consumer", {"queue": "c"}) == {"error": "not consuming"}
    assert commands.dispatch(node, "cancel_consumer", {"queue": "a"}) == {
        "error": "not consuming from 'a'"}


def test_reserved_is_what_the_pool_queues_then_what_the_consumer_prefetched(worker):
    worker.pool = RecordingPool()
    worker.consumer = SimpleNamespace(reserved=[held("later")], queues=["a"], prefetch=3)
    node = NodeControl(worker)
    assert [r.id for r in node.running()] == ["run"]
    assert [r.id for r in node.reserved()] == ["next", "later"]
    assert node.pool_info() == {"implementation": "recording", "max-concurrency": 2}
    assert node.prefetch() == 3
    assert commands.dispatch(node, "query_task", {"ids": ["run", "later"]}) == {
        "run": ["active", {"id": "run"}], "later": ["reserved", {"id": "later"}]}


def test_revoke_with_terminate_answers_once_the_task_has_ended(worker):
    worker.pool = pool = KillingPool()
    node = NodeControl(worker)
    started = time.monotonic()
    reply = commands.dispatch(node, "revoke", {"task_id": ["run", "other"],
                                               "terminate": True, "signal": "KILL"})
    assert reply == {"ok": "tasks ['run', 'other'] flagged as revoked; terminated ['run']"}
    assert time.monotonic() - started >= 0.05  # not before the task was gone
    assert "run" not in [req.id for req in node.running()]
    assert pool.killed == [({"run", "other"}, 9)]
    assert {"run", "other"} <= set(node.revoked())
    commands.dispatch(node, "revoke", {"task_id": "quiet"})
    assert len(pool.killed) == 1


def test_revoke_with_terminate_says_when_the_task_has_not_ended_yet(worker):
    worker.pool = RecordingPool()  # signalled, but still running when the wait is over
    reply = commands.dispatch(NodeControl(worker), "revoke", {"task_id": ["run"],
                                                              "terminate": True})
    assert reply == {"ok": "tasks ['run'] flagged as revoked; SIGTERM sent to ['run'], "
                           "not ended yet"}


def test_revoke_with_terminate_says_what_the_pool_cannot_kill(worker):
    worker.pool = ThreadPoolLike()
    reply = commands.dispatch(NodeControl(worker), "revoke", {"task_id": ["run", "next"],
                                                              "terminate": True})
    assert reply == {"ok": "tasks ['run', 'next'] flagged as revoked; ['run'] cannot be "
                           "terminated on the threads pool: they run to the end"}


def test_growing_the_pool_keeps_the_prefetch_in_step(worker):
    worker.pool = RecordingPool()
    worker.consumer = SimpleNamespace(reserved=[], queues=["a"], prefetch=8)
    node = NodeControl(worker)
    assert commands.dispatch(node, "pool_grow", {"n": 2}) == {"ok": "pool will grow to 4"}
    assert worker.consumer.prefetch == 4 * worker.multiplier
