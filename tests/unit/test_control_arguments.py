"""Remote-control arguments are checked before a node changes anything: a bad one gets an
``{"error": ...}`` reply saying what is wrong, and the node is left as it was.

``commands.dispatch`` runs against a small stand-in node that records every change asked
of it.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, List

import pytest

from multiq.control import commands

pytestmark = pytest.mark.timeout(10)


class FakeTask:
    name = "proj.add"
    rate_limit = None
    time_limit = None
    soft_time_limit = None


class FakeWorker:
    """A stand-in node (``multiq.control.node.Node``); ``changes`` lists what the handlers
    asked of it."""

    hostname = "fake@h"
    started = 0.0
    clock = 0

    def __init__(self) -> None:
        self.changes: List[Any] = []
        self.task = FakeTask()
        tasks = {"proj.add": self.task}
        self.tasks = tasks
        self.app = SimpleNamespace(
            tasks=SimpleNamespace(get=tasks.get, regular=lambda: dict(tasks)),
            broker=SimpleNamespace(),  # no Redis: a handler that gets this far fails
        )
        self.queues = ["a", "b"]

    def pool_info(self) -> Dict[str, Any]:
        return {"max-concurrency": 1}

    def prefetch(self) -> int:
        return 1

    def totals(self) -> Dict[str, int]:
        return {}

    def current_queues(self) -> List[str]:
        return list(self.queues)

    def consuming(self) -> bool:
        return True

    def running(self) -> List[Any]:
        return []

    def reserved(self) -> List[Any]:
        return []

    def revoked(self) -> List[str]:
        return []

    def autoscaling(self) -> bool:
        return False

    def set_events(self, enabled: bool) -> None:
        self.changes.append(("events", enabled))

    def set_rate_limit(self, task_name: str, rate: Any) -> None:
        self.tasks[task_name].rate_limit = rate
        self.changes.append(("rate", (task_name, rate)))

    def set_time_limit(self, task_name: str, soft: Any, hard: Any) -> None:
        task = self.tasks[task_name]
        task.soft_time_limit, task.time_limit = soft, hard

    def revoke(self, ids: Any, terminate: bool, signo: int) -> List[str]:
        self.changes.append(("revoke", ids))
        if terminate:
            self.changes.append(("terminate", ids, signo))
        return []

    def request_stop(self, mode: str) -> None:
        self.changes.append(("stop", mode))

    def request_restart(self) -> None:
        self.changes.append(("restart",))

    def grow(self, n: int) -> int:
        self.changes.append(("grow", n))
        return 2

    def shrink(self, n: int) -> int:
        self.changes.append(("shrink", n))
        return 1

    def set_autoscale(self, high: int, low: int) -> Any:
        self.changes.append(("autoscale", high, low))
        return high, low

    def add_queue(self, queue: str) -> None:
        self.changes.append(("add", queue))

    def cancel_queue(self, queue: str) -> None:
        self.changes.append(("cancel", queue))


BAD = [
    ("time_limit", {"task_name": "proj.add", "soft": "abc", "hard": "x"}, "soft"),
    ("time_limit", {"task_name": "proj.add", "soft": 1, "hard": "x"}, "hard"),
    ("time_limit", {"task_name": "proj.add", "soft": -1}, "soft"),
    ("time_limit", {"task_name": "proj.add", "soft": [1]}, "soft"),
    ("time_limit", {"task_name": "proj.add", "soft": True}, "soft"),
    ("time_limit", {"task_name": "proj.add", "soft": "nan"}, "soft"),
    ("time_limit", {"task_name": "proj.add", "hard": "inf"}, "hard"),
    ("time_limit", {"task_name": "proj.add", "soft": 5, "hard": 2}, "soft limit"),
    ("time_limit", {"task_name": ["proj.add"], "soft": 1}, "task_name"),
    ("rate_limit", {"task_name": "proj.add", "rate_limit": [10]}, "rate_limit"),
    ("rate_limit", {"task_name": "proj.add", "rate_limit": {"n": 1}}, "rate_limit"),
    ("rate_limit", {"task_name": "proj.add", "rate_limit": "-5/s"}, "rate limit"),
    ("rate_limit", {"task_name": 7, "rate_limit": "1/s"}, "task_name"),
    ("pool_grow", {"n": "abc"}, "positive integer"),
    ("pool_grow", {"n": 0}, "positive integer"),
    ("pool_grow", {"n": -2}, "positive integer"),
    ("pool_grow", {"n": 1.5}, "positive integer"),
    ("pool_shrink", {"n": [1]}, "positive integer"),
    ("pool_shrink", {"n": True}, "positive integer"),
    ("autoscale", {"max": "x", "min": 1}, "max"),
    ("autoscale", {"max": 3, "min": -1}, "min"),
    ("autoscale", {"max": 1, "min": 3}, "below min"),
    ("autoscale", {"max": 3.5, "min": 1}, "max"),
    ("revoke", {"task_id": 5}, "task_id"),
    ("revoke", {"task_id": ["a", 5]}, "task_id"),
    ("revoke", {"task_id": []}, "task_id"),
    ("revoke", {"task_id": "a", "terminate": "yes"}, "terminate"),
    ("revoke", {"task_id": "a", "terminate": True, "signal": "SIGNOPE"}, "signal"),
    ("revoke", {"task_id": "a", "terminate": True, "signal": 9999}, "signal"),
    ("revoke", {"task_id": "a", "terminate": True, "signal": [9]}, "signal"),
    ("add_consumer", {"queue": ""}, "queue"),
    ("add_consumer", {"queue": ["q"]}, "queue"),
    ("cancel_consumer", {"queue": 5}, "queue"),
    ("registered", {"taskinfoitems": "rate_limit"}, "taskinfoitems"),
    ("registered", {"taskinfoitems": [1]}, "taskinfoitems"),
    ("query_task", {"ids": "abc"}, "ids"),
    ("query_task", {"ids": [None]}, "ids"),
    ("scheduled", {"limit": 0}, "limit"),
    ("scheduled", {"limit": "ten"}, "limit"),
]


GOOD = {  # method -> arguments it accepts, and the change they make
    "time_limit": ({"task_name": "proj.add", "soft": "1.5", "hard": "3"}, None),
    "rate_limit": ({"task_name": "proj.add", "rate_limit": "10/m"},
                   ("rate", ("proj.add", "10/m"))),
    "pool_grow": ({"n": "2"}, ("grow", 2)),
    "pool_shrink": ({"n": 1}, ("shrink", 1)),
    "autoscale": ({"max": "4", "min": "0"}, ("autoscale", 4, 0)),
    "revoke": ({"task_id": ["a", "b"], "terminate": True, "signal": "KILL"},
               ("revoke", ["a", "b"])),
    "add_consumer": ({"queue": "c"}, ("add", "c")),
    "cancel_consumer": ({"queue": "b"}, ("cancel", "b")),
    "registered": ({"taskinfoitems": ["rate_limit"]}, None),
    "query_task": ({"ids": ["x"]}, None),
    "scheduled": None,  # reads Redis: not here
}


@pytest.mark.parametrize("method,arguments,mentions", BAD,
                         ids=[f"{m}-{i}" for i, (m, _, _) in enumerate(BAD)])
def test_bad_argument_gets_an_error_reply_and_changes_nothing(method, arguments, mentions):
    worker = FakeWorker()
    reply = commands.dispatch(worker, method, arguments)
    assert isinstance(reply, dict) and set(reply) == {"error"}, reply
    assert mentions in reply["error"], reply
    assert worker.changes == []
    assert (worker.task.time_limit, worker.task.soft_time_limit) == (None, None)
    assert worker.task.rate_limit is None
    if GOOD[method] is not None:  # the same command with good arguments does its work
        good, change = GOOD[method]
        reply = commands.dispatch(worker, method, good)
        assert not (isinstance(reply, dict) and "error" in reply), reply
        assert worker.changes[:1] == ([change] if change else [])


def test_time_limit_strings_are_stored_as_numbers():
    worker = FakeWorker()
    commands.dispatch(worker, "time_limit", {"task_name": "proj.add", "soft": "1.5",
                                             "hard": "3"})
    assert (worker.task.soft_time_limit, worker.task.time_limit) == (1.5, 3.0)


def test_revoke_terminate_passes_the_signal_number():
    worker = FakeWorker()
    commands.dispatch(worker, "revoke", {"task_id": "a", "terminate": True, "signal": "KILL"})
    assert worker.changes[-1] == ("terminate", ["a"], 9)


def test_restart_asks_the_node_to_restart_and_takes_no_arguments():
    worker = FakeWorker()
    assert commands.dispatch(worker, "restart", {}) == {"ok": "restarting (warm)"}
    assert worker.changes == [("restart",)]
    assert "error" in commands.dispatch(worker, "restart", {"now": True})
    assert worker.changes == [("restart",)]
