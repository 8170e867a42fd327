"""Tasks for tests/system/test_canvas_docs.py and test_canvas_faults.py: those of the canvas
user guide of Celery (``add``, ``mul``, ``xsum``, ``tsum``, the errbacks ``log_error`` and
``on_chord_error``, ``raising_task``...) with the names changed, and a few that show what a
task sees of its workflow (``request_info``) or replace themselves (``replace_with_*``).

What the tasks did is recorded in db 3 of the broker's server (see ``sysq_recorder``):
errbacks push a JSON object to the list ``errbacks`` and count their runs in
``errback-runs:<failed id>``; other records go to ``runs``. The worker gets its URLs from
``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``; the test process imports this module too
and points the app at its server itself.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Optional

from sysq_recorder import recorder

from multiq import MultiQ

RUNS = "runs"
ERRBACKS = "errbacks"

app = MultiQ(
    "sysq_canvas",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
)


def record(tag: str) -> None:
    recorder().rpush(RUNS, tag)


def _errback_record(name: str, task_id: str, exc: Any, traceback: Any) -> None:
    """What an errback was called with, and how many times for this failed task."""
    recorder().rpush(ERRBACKS, json.dumps({
        "errback": name, "id": task_id, "exc": type(exc).__name__, "text": str(exc),
        "traceback": traceback if isinstance(traceback, str) or traceback is None
        else repr(traceback),
    }))
    recorder().incr(f"errback-runs:{task_id}")


def _names(signatures: Optional[List[Any]]) -> List[str]:
    return [s["task"] if isinstance(s, dict) else str(s) for s in signatures or ()]


# -- the user guide's tasks -------------------------------------------------------------


@app.task
def add(x, y, debug=False):
    if debug:
        record(f"add({x}, {y}, debug=True)")
    return x + y


@app.task
def subtract(x, y):
    return x - y


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(numbers):
    return sum(numbers)


@app.task
def tsum(numbers):
    return sum(numbers)


@app.task
def log_result(value):
    record(f"log_result:{value}")
    return value


@app.task
def reset_buffers():
    """A callback that takes no arguments (linked immutable)."""
    record("reset_buffers")
    return "reset"


@app.task
def log_error(request, exc, traceback):
    """An errback called in the worker with the failed task's request, error and traceback."""
    _errback_record("log_error", request.id, exc, traceback)


@app.task
def on_chord_error(request, exc, traceback):
    print(f"Task {request.id!r} raised error: {exc!r}")
    _errback_record("on_chord_error", request.id, exc, traceback)


@app.task
def log_error_id(task_id):
    """An errback of one argument: sent as a task with the failed task's id."""
    result = app.AsyncResult(task_id)
    result.get(propagate=False)  # make sure the result is written
    _errback_record("log_error_id", task_id, result.result, result.traceback)


@app.task
def raising_task():
    raise ValueError("something something")


@app.task
def fail():
    raise ValueError("fail")


@app.task
def import_contact(contact):
    record(f"import_contact:{contact}")
    return contact


@app.task
def notify_complete(import_id):
    record(f"notify_complete:{import_id}")
    return import_id


@app.task
def create_user(username, first, last, email):
    return username


@app.task
def import_contacts(username):
    return f"contacts of {username}"


@app.task
def send_welcome_email(username):
    return f"welcome {username}"


# -- what a task sees of its workflow ---------------------------------------------------


@app.task
def identity(value):
    return value


@app.task
def echo(value):
    return value


@app.task(bind=True)
def request_info(self, *args: Any) -> Dict[str, List[str]]:
    """The names in ``self.request.chain`` (the chain's next tasks, the next one last) and
    in ``self.request.callbacks``."""
    return {"chain": _names(self.request.chain), "callbacks": _names(self.request.callbacks)}


@app.task(bind=True)
def replace_with_mul(self, x, y):
    return self.replace(mul.s(x, y))


@app.task(bind=True)
def replace_with_chain(self, x):
    return self.replace(add.s(x, 1) | mul.s(2))


@app.task(bind=True)
def replace_with_group(self, n):
    from multiq import group

    return self.replace(group(add.s(i, i) for i in range(n)))


@app.task
def gate(name, timeout=20):
    """Waits until the test pushes to ``gate:<name>`` in db 3; returns ``name``."""
    if recorder().blpop(f"gate:{name}", timeout=timeout) is None:
        raise TimeoutError(f"gate {name} was never opened")
    return name


# -- faults -----------------------------------------------------------------------------


@app.task(acks_late=True)
def slow_add(x, y, seconds):
    """Records ``start:<x>`` and ``end:<x>`` around a nap; acknowledged once it returns."""
    record(f"start:{x}")
    time.sleep(seconds)
    record(f"end:{x}")
    return x + y


@app.task
def nap_add(x, y, seconds):
    """``slow_add`` acknowledged early (the default): lost, not run again, when its node
    dies."""
    record(f"start:{x}")
    time.sleep(seconds)
    record(f"end:{x}")
    return x + y


@app.task
def count_tsum(numbers, key):
    """A chord body that counts its runs (``INCR <key>``) and records what it summed."""
    recorder().incr(key)
    recorder().rpush(f"{key}:values", json.dumps(numbers))
    return sum(numbers)
