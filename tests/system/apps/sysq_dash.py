"""Tasks for the dashboard's system tests (tests/system/test_dashboard_*.py).

The node gets its URLs from ``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``; events are
on (``worker_send_task_events``, ``task_send_sent_event``) and results are extended, so
the dashboard can show and re-send arguments.
"""
from __future__ import annotations

import os
import time

from multiq import MultiQ

app = MultiQ(
    "sysq_dash",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
    result_extended=True,
    worker_send_task_events=True,
    task_send_sent_event=True,
)


@app.task
def add(x, y):
    return x + y


@app.task
def evil(markup):
    """Returns what it is given: markup that a page must show as text."""
    return markup


@app.task
def boom(message):
    raise ValueError(message)


@app.task
def nap(seconds):
    time.sleep(seconds)
    return seconds


@app.task(bind=True)
def parent(self):
    """Sends one child (``add``) and returns its id."""
    return add.delay(1, 1).id


@app.task
def total(values):
    return sum(values)
