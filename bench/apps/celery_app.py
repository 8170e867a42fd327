"""Celery app with its defaults: ``noop``, ``noop_count``, ``add``, ``tsum``, the I/O-bound
``sleep_count``; Redis result backend."""
from __future__ import annotations

import time
from typing import Any, List

from celery import Celery

from bench.apps.common import BACKEND_URL, BROKER_URL, SLEEP, count

app = Celery("bench", broker=BROKER_URL, backend=BACKEND_URL)
app.conf.broker_connection_retry_on_startup = True


@app.task
def noop(i: Any) -> Any:
    """Return ``i``."""
    return i


@app.task
def noop_count(i: Any) -> Any:
    """Count the completion, return ``i``."""
    count()
    return i


@app.task
def add(x: int, y: int) -> int:
    """``x + y``: the header and chain links of the canvas figures."""
    return x + y


@app.task
def tsum(values: List[int]) -> int:
    """The sum of a chord header's results."""
    return sum(values)


@app.task
def sleep_count(i: Any) -> Any:
    """Wait ``SLEEP`` seconds in ``time.sleep`` (cooperative under gevent), count, return ``i``."""
    time.sleep(SLEEP)
    count()
    return i
