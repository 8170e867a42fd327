"""Tasks for the system tests of a node's life (tests/system/test_node_*.py): prefork children,
limits, lost children, signals, detaching, autoscaling.

Tasks that a test needs to watch record themselves in db 3 of the broker's Redis server
(``RECORD_DB``): ``RPUSH runs <tag>:<what>:<pid>``. The node gets its URLs from
``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``. ``SYSQ_NODE_BROKER`` is the broker when
``MULTIQ_BROKER_URL`` is unset (that variable wins over ``broker=``, as Celery's does): a
closed port, to test a node that cannot connect; ``SYSQ_NODE_NO_RETRY=1`` sets
``broker_connection_retry_on_startup=False``.

The test process imports nothing from here: it sends the tasks by name.
"""
from __future__ import annotations

import os
import sys
import time

from sysq_recorder import recorder

from multiq import MultiQ
from multiq.exceptions import SoftTimeLimitExceeded

RUNS = "runs"

_settings = {}
if os.environ.get("SYSQ_NODE_NO_RETRY"):
    _settings["broker_connection_retry_on_startup"] = False

app = MultiQ(
    "sysq_node",
    broker=os.environ.get("SYSQ_NODE_BROKER"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
    result_extended=True,
    **_settings,
)






def note(tag: str, what: str) -> None:
    recorder().rpush(RUNS, f"{tag}:{what}:{os.getpid()}")


_hoard = []  # what ``hog`` allocates stays here for the life of the process


@app.task
def pid():
    """The pid of the process that ran the task."""
    return os.getpid()


@app.task
def loaded(names):
    """Which of the modules ``names`` the process that ran the task has imported."""
    return [name for name in names if name in sys.modules]


@app.task
def hog(megabytes):
    """Allocate ``megabytes`` MB (touched, so resident) and keep them; returns the pid."""
    _hoard.append(bytearray(b"x" * (megabytes * 1024 * 1024)))
    return os.getpid()


@app.task
def nap(tag, seconds):
    """Records ``start`` (with its pid), sleeps, records ``end``; returns the pid."""
    note(tag, "start")
    time.sleep(seconds)
    note(tag, "end")
    return os.getpid()


@app.task(acks_late=True)
def nap_late(tag, seconds):
    """``nap`` with ``acks_late``: a node that dies while running it leaves it to others."""
    note(tag, "start")
    time.sleep(seconds)
    note(tag, "end")
    return os.getpid()


@app.task
def soft_nap(tag, seconds):
    """Sleeps, but returns "soft" when the soft time limit interrupts it."""
    note(tag, "start")
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        note(tag, "soft")
        return "soft"
    return "slept"


@app.task
def suicide(tag):
    """Records its pid, then SIGKILLs its own process."""
    note(tag, "start")
    os.kill(os.getpid(), 9)
    time.sleep(10)
    return "survived"


@app.task(acks_late=True, reject_on_worker_lost=True)
def suicide_late(tag):
    """Like ``suicide``, but its message goes back to the queue each time its process dies."""
    note(tag, "start")
    os.kill(os.getpid(), 9)
    time.sleep(10)
    return "survived"


@app.task(soft_time_limit=3)
def soft_nap3(tag, seconds):
    """``soft_nap`` with its own soft time limit of 3 s (overrides the worker's)."""
    note(tag, "start")
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        note(tag, "soft")
        return "soft"
    return "slept"
