"""Remote-control arguments are checked before a node changes anything: a bad one gets an
``{"error": ...}`` reply saying what is wrong, and the node is left as it was.

``commands.dispatch`` runs against a small stand-in for the worker that records every
change asked of it.
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
    """What the command handlers use of a worker; ``changes`` lists what they did."""

    def __init__(self) -> None:
        self.changes: List[Any] = []
        self.task = FakeTask()
        tasks = {"proj.add": self.task}
        self.app = SimpleNamespace(
            tasks=SimpleNamespace(get=tasks.get, regular=lambda: dict(tasks)),
            broker=SimpleNamespace(),  # no Redis: a handler that gets this far fails
        )
        self.options: Dict[str, Any] = {}
        self.executor = SimpleNamespace(
            set_rate_limit=lambda *a: self.changes.append(("rate", a)))
        self.pool = SimpleNamespace(
            grow=lambda n: self.changes.append(("grow", n)) or 2,
            shrink=lambda n: self.changes.append(("shrink", n)) or 1,
            active=lambda: [], held=lambda: [])
        self.consumer = SimpleNamespace(
            queues=["a", "b"], reserved=[],
            add_queue=lambda q: self.changes.append(("add", q)),
            cancel_queue=lambda q: self.changes.append(("cancel", q)))

    def resize(self, size: int) -> None:
        self.changes.append(("resize", size))

    def set_autoscale(self, high: int, low: int) -> Any:
        self.changes.append(("autoscale", high, low))
        return SimpleNamespace(max=high, min=low)

    def revoke(self, ids: Any) -> None:
        self.changes.append(("revoke", ids))

    def terminate(self, ids: Any, signo: Any) -> List[str]:
        self.changes.append(("terminate", ids, signo))
        return []

    def current_queues(self) -> List[str]:
        return list(self.consumer.queues)


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
