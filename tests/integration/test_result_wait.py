"""Waiting for a result (``RedisBackend.wait_for``): woken by the write, one read."""
from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from multiq import states
from multiq.backends.base import make_doc


def _gets(client: Any) -> int:
    return int(client.info("commandstats").get("cmdstat_get", {}).get("calls", 0))


@pytest.mark.timeout(10)
def test_a_wait_reads_the_result_once_and_is_woken_by_its_write(
        make_app: Any, redis_server: Any) -> None:
    backend = make_app().backend
    stats = redis_server.client(0)
    for n in range(3):  # the subscriber connection is reused from the second wait on
        task_id = f"t{n}"
        timer = threading.Timer(0.2, backend.store,
                                (task_id, make_doc(task_id, states.SUCCESS, n)))
        before = _gets(stats)
        began = time.monotonic()
        timer.start()
        doc = backend.wait_for(task_id, timeout=5)
        assert doc["status"] == states.SUCCESS and doc["result"] == n
        assert time.monotonic() - began < 1.0  # woken by the write, not by a poll
        assert _gets(stats) - before == 1  # the GET after subscribing, and no other
        timer.join()
