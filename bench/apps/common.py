"""URLs from the environment and the completion counter of the counted task.

The counted task (``noop_count``) does one ``INCR bench:done``; the task that gets 1
stamps ``bench:t_first`` and the one that gets ``$BENCH_N`` stamps ``bench:t_last``
(``time.time()``), so the drain rate is ``(N-1)/(t_last-t_first)`` as in the reference.
"""
from __future__ import annotations

import os
import time
from typing import Any, Optional, Tuple

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/1")
BACKEND_URL = os.environ.get("BENCH_BACKEND_URL", "redis://127.0.0.1:6379/2")
COUNTER_URL = os.environ.get("BENCH_COUNTER_URL", "redis://127.0.0.1:6379/0")

COUNTER = "bench:done"
T_FIRST = "bench:t_first"
T_LAST = "bench:t_last"

_conn: Optional[Tuple[int, Any]] = None


def _client() -> Any:
    """One counter connection per process (pool children get their own after fork)."""
    global _conn
    if _conn is None or _conn[0] != os.getpid():
        import redis

        _conn = (os.getpid(), redis.Redis.from_url(COUNTER_URL))
    return _conn[1]


def count() -> None:
    """Count one completion; stamp the time of the first and of the N-th."""
    client = _client()
    done = client.incr(COUNTER)
    if done == 1:
        client.set(T_FIRST, repr(time.time()))
    if done == int(os.environ.get("BENCH_N", "0")):
        client.set(T_LAST, repr(time.time()))
