"""Tasks for the system tests of ``multiq multi`` (tests/system/test_multi_*.py).

Nodes are started by ``multiq multi start ... -A sysq_multi`` with this directory as the
working directory. The app takes its URLs from ``SYSQ_MULTI_BROKER`` / ``SYSQ_MULTI_BACKEND``
when set (a test that must keep ``MULTIQ_*`` out of the environment), else from
``MULTIQ_BROKER_URL`` / ``MULTIQ_RESULT_BACKEND``.

Tasks that count their runs do so in db 3 of the broker's Redis server (``RECORD_DB``).
The test process sends every task by name and imports nothing from here.
"""
from __future__ import annotations

import os
import time

from sysq_recorder import recorder

from multiq import MultiQ

BROKER = os.environ.get("SYSQ_MULTI_BROKER") or os.environ.get("MULTIQ_BROKER_URL")
BACKEND = os.environ.get("SYSQ_MULTI_BACKEND") or os.environ.get("MULTIQ_RESULT_BACKEND")

app = MultiQ("sysq_multi", broker=BROKER, backend=BACKEND, result_extended=True)






@app.task(bind=True)
def where(self, tag=""):
    """The full name of the node that ran it."""
    return self.request.hostname


@app.task(bind=True, acks_late=True)
def hold(self, tag, seconds):
    """Counts its runs in ``hold:<tag>``; the first run sleeps ``seconds``, a redelivered
    one returns at once. Returns ``[run number, node name]``."""
    run = int(recorder(str(BROKER)).incr(f"hold:{tag}"))
    if run == 1:
        time.sleep(seconds)
    return [run, self.request.hostname]
