"""Tasks for the system tests of the green pools (tests/system/test_gevent_pool.py,
test_eventlet_pool.py).

Tasks that a test watches record ``<tag>:<what>:<pid>`` in db 3 (``RPUSH runs``). The node
gets its URLs from ``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``; a short liveness
(``worker_lost_timeout`` 2 s) lets another node take a killed node's work soon.
``SYSQ_GREEN_POOL`` sets ``worker_pool`` (a node started without ``-P``).

The test process imports nothing from here: it sends the tasks by name.
"""
from __future__ import annotations

import asyncio
import os
import time

from sysq_recorder import recorder

from multiq import MultiQ
from multiq.exceptions import SoftTimeLimitExceeded

RUNS = "runs"

_settings = {}
if os.environ.get("SYSQ_GREEN_POOL"):
    _settings["worker_pool"] = os.environ["SYSQ_GREEN_POOL"]

app = MultiQ(
    "sysq_green",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
    result_extended=True,
    worker_lost_timeout=2.0,
    worker_heartbeat_interval=0.5,
    **_settings,
)


def note(tag: str, what: str) -> None:
    recorder().rpush(RUNS, f"{tag}:{what}:{os.getpid()}")


@app.task
def patched(library="gevent"):
    """Whether the node's standard library is patched by ``library`` (gevent or eventlet)
    for time, socket and threading."""
    if library == "eventlet":
        from eventlet import patcher

        return [patcher.is_monkey_patched(m) for m in ("time", "socket", "thread")]
    from gevent import monkey

    return [monkey.is_module_patched(m) for m in ("time", "socket", "threading")]


@app.task
def sleep(seconds):
    """``time.sleep``: cooperative in a patched node."""
    time.sleep(seconds)
    return seconds


@app.task
def nap(tag, seconds):
    """Records ``start``, sleeps, records ``end``; returns the pid."""
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


@app.task(soft_time_limit=0.5)
def soft_nap(tag, seconds):
    """Returns "soft" when its soft time limit (0.5 s) interrupts its sleep."""
    note(tag, "start")
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        note(tag, "soft")
        return "soft"
    return "slept"


@app.task(time_limit=0.5)
def hard_nap(tag, seconds):
    """Sleeps past its hard time limit (0.5 s); what it catches must not save it."""
    note(tag, "start")
    try:
        time.sleep(seconds)
    except Exception:
        note(tag, "caught")
        return "caught"
    note(tag, "end")
    return "slept"


@app.task(bind=True, max_retries=3, default_retry_delay=0.1)
def flaky(self, tag, fails):
    """Fails ``fails`` times (retrying each time), then returns its retry count."""
    note(tag, f"try{self.request.retries}")
    if self.request.retries < fails:
        raise self.retry(exc=ValueError(f"try {self.request.retries}"))
    return self.request.retries


@app.task
async def anap(seconds, value):
    """An ``async def`` task: many run at once on the node's one asyncio loop."""
    await asyncio.sleep(seconds)
    return [value, id(asyncio.get_running_loop())]
