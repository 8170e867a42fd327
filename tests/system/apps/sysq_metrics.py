"""Tasks for tests/system/test_metrics.py: successes (``aok`` an ``async def`` one),
failures and a task that retries once before it succeeds. A short liveness
(``worker_lost_timeout`` 2 s) lets a killed node's key expire soon."""
from __future__ import annotations

import os

from multiq import MultiQ

app = MultiQ(
    "sysq_metrics",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
    worker_lost_timeout=2.0,
    worker_heartbeat_interval=0.5,
)


@app.task
def ok(x):
    return x


@app.task
def fail():
    raise ValueError("expected")


@app.task(bind=True, default_retry_delay=0)
def flaky(self):
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    return "second time"


@app.task
async def aok(x):
    return x
