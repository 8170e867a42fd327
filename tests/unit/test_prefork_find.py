"""The prefork reader looks up a child's jobs while the dispatching thread queues more."""
from __future__ import annotations

import sys
import threading
import time
from collections import deque
from types import SimpleNamespace

import pytest

from multiq.pools.prefork import Child, PreforkPool


@pytest.mark.timeout(30)
def test_finding_a_job_while_another_thread_queues_one_never_fails():
    child = Child(1, 0, None)  # type: ignore[arg-type]
    child.queue = deque(SimpleNamespace(id=str(i)) for i in range(200))
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            child.queue.append(SimpleNamespace(id="x"))
            child.queue.pop()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end:
            assert PreforkPool._find(None, child, "199").id == "199"  # type: ignore[arg-type]
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
