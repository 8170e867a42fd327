"""Celery app with its defaults: ``noop`` and ``noop_count``; Redis result backend."""
from __future__ import annotations

from typing import Any

from celery import Celery

from bench.apps.common import BACKEND_URL, BROKER_URL, count

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
