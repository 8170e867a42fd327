"""App of the beat system tests (tests/system/test_beat_*.py).

``beat_schedule`` has one entry, ``tick``, sending ``sysq_beat.tick`` every
``SYSQ_BEAT_EVERY`` seconds (default 1). Everything is recorded in db 3 of the broker's
Redis server (``RECORD_DB``), as ``"<epoch>|<pid>"`` strings:

* ``runs``  -- each execution of ``tick`` (in the worker);
* ``sent``  -- each time a process publishes ``tick`` (``before_task_publish``, so in the
  beat process, or the ``worker -B`` node, that sent it);
* ``beat_init`` -- each ``beat_init`` signal (a beat starting).

The URLs come from ``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``.
"""
from __future__ import annotations

import os
import time

from sysq_recorder import recorder

from multiq import MultiQ, signals

TICK = "sysq_beat.tick"

app = MultiQ(
    "sysq_beat",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
    beat_schedule={
        "tick": {"task": TICK, "schedule": float(os.environ.get("SYSQ_BEAT_EVERY", "1"))},
    },
)



def _record(key: str) -> None:
    recorder().rpush(key, f"{time.time()!r}|{os.getpid()}")


@app.task(name=TICK)
def tick():
    _record("runs")
    return os.getpid()


@signals.before_task_publish.connect
def _sent(sender=None, **kwargs):
    if sender == TICK:
        _record("sent")


ECHO = "sysq_beat.echo"


@app.task(name=ECHO)
def echo(word):
    return word


@app.on_after_configure.connect
def _periodic(sender, **kwargs):
    """With ``SYSQ_BEAT_CONFIGURED``, one more entry, added the Celery way."""
    if os.environ.get("SYSQ_BEAT_CONFIGURED"):
        sender.add_periodic_task(1.0, echo.s("hi"), name="echo every second")


@signals.before_task_publish.connect
def _sent_echo(sender=None, body=None, **kwargs):
    if sender == ECHO:
        recorder().rpush("sent_echo", f"{time.time()!r}|{os.getpid()}|{body[0][0]}")


@signals.beat_init.connect
def _beat_init(sender=None, **kwargs):
    _record("beat_init")
