"""Tasks for tests/system/test_redis_acl.py: nodes run as the README's ``multiq-worker``
Redis user, so these tasks touch nothing in Redis themselves (that user may only use
multiq's own keys). URLs come from ``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``.
A node started with ``-B`` also sends ``tick`` every second (beat's lease and last-run
times are the worker user's too)."""
from __future__ import annotations

import os

from multiq import MultiQ

app = MultiQ("sysq_acl", broker=os.environ.get("MULTIQ_BROKER_URL"),
             backend=os.environ.get("MULTIQ_RESULT_BACKEND"))
app.conf.beat_schedule = {"tick": {"task": "sysq_acl.add", "schedule": 1.0, "args": (0, 0)}}


@app.task(bind=True)
def where(self):
    """The full name of the node that ran it."""
    return self.request.hostname


@app.task
def add(x, y):
    return x + y


@app.task(bind=True, max_retries=3, default_retry_delay=0.2)
def flaky(self):
    """Retries (with a countdown) twice, then returns its number of retries."""
    if self.request.retries < 2:
        raise self.retry()
    return self.request.retries


@app.task
def boom():
    raise ValueError("boom")
