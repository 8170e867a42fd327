"""Tasks for the system tests of multiq's delivery guarantees (tests/system/test_guarantees*.py).

Every execution is recorded in db 3 of the broker's Redis server (``RECORD_DB``), so a test
can count runs: ``RPUSH runs <tag>`` for ``record``; ``slow`` pushes ``start:<tag>`` when
it begins and ``end:<tag>`` when it ends. The worker gets its URLs from
``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``; ``SYSQ_VISIBILITY_TIMEOUT`` sets
``broker_transport_options["visibility_timeout"]`` (which must not cause redeliveries),
``SYSQ_QUEUE_ORDER`` its ``queue_order_strategy``.

The test process imports this module too (to rebuild ``SysqBoom``), where the variables may
be unset: the app is then simply not connected.
"""
from __future__ import annotations

import os
import time

from sysq_recorder import recorder

from multiq import MultiQ

RUNS = "runs"
ROUTES = {"sysq_reliable.render": {"queue": "images"}}

_options = {}
if os.environ.get("SYSQ_VISIBILITY_TIMEOUT"):
    _options["visibility_timeout"] = float(os.environ["SYSQ_VISIBILITY_TIMEOUT"])
if os.environ.get("SYSQ_QUEUE_ORDER"):
    _options["queue_order_strategy"] = os.environ["SYSQ_QUEUE_ORDER"]

app = MultiQ(
    "sysq_reliable",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
    result_extended=True,
    task_routes=ROUTES,
    broker_transport_options=_options,
)


class SysqBoom(Exception):
    """Raised by ``boom``; importable by the test process to compare types."""






@app.task
def record(tag):
    """Push ``tag`` to ``runs``; returns the time it ran."""
    recorder().rpush(RUNS, tag)
    return time.time()


@app.task
def slow(tag, seconds):
    recorder().rpush(RUNS, f"start:{tag}")
    time.sleep(seconds)
    recorder().rpush(RUNS, f"end:{tag}")
    return tag


@app.task(acks_late=True)
def slow_late(tag, seconds):
    recorder().rpush(RUNS, f"start:{tag}")
    time.sleep(seconds)
    recorder().rpush(RUNS, f"end:{tag}")
    return tag


@app.task
def nap(tag, seconds):
    """Records its start, then sleeps without touching Redis (runs across an outage)."""
    recorder().rpush(RUNS, f"start:{tag}")
    time.sleep(seconds)
    return tag


@app.task(bind=True, max_retries=5)
def flaky(self, tag, fails, countdown=1):
    """Fails (retrying after ``countdown`` s) the first ``fails`` times, then succeeds."""
    recorder().rpush(RUNS, tag)
    if self.request.retries < fails:
        raise self.retry(countdown=countdown)
    return self.request.retries


@app.task
def boom(message):
    raise SysqBoom(message)  # the raise line the tests look for in the traceback


@app.task(bind=True)
def render(self, tag):
    """Routed to the ``images`` queue by ``task_routes``; records which node ran it."""
    recorder().rpush(RUNS, f"{tag}@{self.request.hostname}")
    return self.request.hostname


@app.task(bind=True)
def where(self, tag):
    recorder().rpush(RUNS, f"{tag}@{self.request.hostname}")
    return self.request.hostname


class Opaque:
    """Neither JSON nor msgpack can carry it (pickle can)."""


@app.task
def opaque(tag):
    """Records its run and returns what the JSON result serializer cannot encode."""
    recorder().rpush(RUNS, tag)
    return Opaque()
