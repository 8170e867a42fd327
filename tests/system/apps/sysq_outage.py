"""Tasks for the system tests of liveness across Redis outages (test_guarantees_outage.py).

Every run is recorded outside Redis, by appending ``<tag>@<node>`` to the file named by
``SYSQ_RUNS_FILE`` (one short ``O_APPEND`` write per run, so several processes can share
it), since Redis itself goes away during the test. The liveness is short, for speed:
``worker_lost_timeout`` / ``worker_heartbeat_interval`` come from ``SYSQ_LOST_TIMEOUT`` /
``SYSQ_HEARTBEAT_INTERVAL``.
"""
from __future__ import annotations

import os
import time

from multiq import MultiQ

app = MultiQ(
    "sysq_outage",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
    worker_lost_timeout=float(os.environ.get("SYSQ_LOST_TIMEOUT", "2")),
    worker_heartbeat_interval=float(os.environ.get("SYSQ_HEARTBEAT_INTERVAL", "0.5")),
)


def _record(tag: str, node: str) -> None:
    fd = os.open(os.environ["SYSQ_RUNS_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{tag}@{node}\n".encode())
    finally:
        os.close(fd)


@app.task(bind=True)
def run(self, tag, seconds=0.0):
    """Records that it ran (and on which node), then sleeps ``seconds`` without Redis."""
    _record(tag, self.request.hostname.split("@")[0])
    time.sleep(seconds)
    return tag
