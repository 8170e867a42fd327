"""Tasks for the fault soak (tests/system/test_soak.py).

Every execution is recorded outside Redis, so that no Redis fault can touch the record:
each task appends a ``start`` line when it begins and an ``end`` line when it returns to
the file ``SYSQ_RUN_LOG``, with one ``write`` on a descriptor opened with ``O_APPEND`` (a
line is far below the size the kernel appends in one piece, and what was written survives
a SIGKILL of the writer)::

    start|end <task id> <attempt (retries)> <node name> <pid> <monotonic> <epoch>

``SYSQ_LOST_TIMEOUT`` / ``SYSQ_HEARTBEAT`` set ``worker_lost_timeout`` /
``worker_heartbeat_interval`` (a short liveness makes an outage longer than it quick to
cause).
"""
from __future__ import annotations

import os
import time
from typing import Dict

from multiq import MultiQ

app = MultiQ(
    "sysq_soak",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
    result_extended=True,
    worker_lost_timeout=float(os.environ.get("SYSQ_LOST_TIMEOUT", "5")),
    worker_heartbeat_interval=float(os.environ.get("SYSQ_HEARTBEAT", "1")),
)

_fds: Dict[int, int] = {}  # pid -> descriptor (a forked child opens its own)


def _record(event: str, request) -> None:
    pid = os.getpid()
    fd = _fds.get(pid)
    if fd is None:
        fd = _fds[pid] = os.open(os.environ["SYSQ_RUN_LOG"],
                                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    line = (f"{event} {request.id} {request.retries} {request.hostname} {pid} "
            f"{time.monotonic():.6f} {time.time():.6f}\n")
    os.write(fd, line.encode())


def _run(request, seconds: float = 0.0):
    _record("start", request)
    if seconds:
        time.sleep(seconds)
    _record("end", request)
    return request.id


@app.task(bind=True)
def quick(self):
    return _run(self.request)


@app.task(bind=True, acks_late=True)
def quick_late(self):
    return _run(self.request)


@app.task(bind=True)
def nap(self, seconds):
    return _run(self.request, seconds)


@app.task(bind=True, acks_late=True, reject_on_worker_lost=True)
def nap_late(self, seconds):
    """Late ack, and back to the queue if its pool process dies: at least once."""
    return _run(self.request, seconds)


@app.task(bind=True, max_retries=3)
def retry_once(self):
    """Fails its first attempt (retried 0.3 s later), succeeds on the second."""
    _run(self.request)
    if self.request.retries == 0:
        raise self.retry(countdown=0.3)
    return self.request.id
