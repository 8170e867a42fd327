"""URLs from the environment and the completion counter of the counted task.

The counted task (``noop_count``) does one ``INCR bench:done``; the task that gets 1
stamps ``bench:t_first`` and the one that gets ``$BENCH_N`` stamps ``bench:t_last``
(``time.time()``), so the drain rate is ``(N-1)/(t_last-t_first)`` as in the reference.
"""
from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional, Tuple

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/1")
BACKEND_URL = os.environ.get("BENCH_BACKEND_URL", "redis://127.0.0.1:6379/2")
COUNTER_URL = os.environ.get("BENCH_COUNTER_URL", "redis://127.0.0.1:6379/0")

COUNTER = "bench:done"
T_FIRST = "bench:t_first"
T_LAST = "bench:t_last"

#: seconds each I/O-bound task of the ``io`` figure waits (``sleep_count``, ``asleep_count``)
SLEEP = float(os.environ.get("BENCH_SLEEP", "0.5"))

_conn: Optional[Tuple[int, Any]] = None
_aconn: Dict[int, Any] = {}  # per event loop


def _client() -> Any:
    """One counter connection per process (pool children get their own after fork)."""
    global _conn
    if _conn is None or _conn[0] != os.getpid():
        import redis

        # room for a thousand green threads counting at once; a plain pool, as fast to take
        # a connection from as redis-py's default (a blocking one costs every task more)
        pool = redis.ConnectionPool.from_url(COUNTER_URL, max_connections=4096)
        _conn = (os.getpid(), redis.Redis(connection_pool=pool))
    return _conn[1]


def count() -> None:
    """Count one completion; stamp the time of the first and of the N-th."""
    client = _client()
    done = client.incr(COUNTER)
    if done == 1:
        client.set(T_FIRST, repr(time.time()))
    if done == int(os.environ.get("BENCH_N", "0")):
        client.set(T_LAST, repr(time.time()))


async def acount() -> None:
    """:func:`count` for ``async def`` tasks, on an asyncio client of this event loop (a
    blocking call would hold up every task of the loop)."""
    import asyncio

    import redis.asyncio

    loop = id(asyncio.get_running_loop())
    client = _aconn.get(loop)
    if client is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(COUNTER_URL, max_connections=64,
                                                             timeout=None)
        client = _aconn[loop] = redis.asyncio.Redis(connection_pool=pool)
    done = await client.incr(COUNTER)
    if done == 1:
        await client.set(T_FIRST, repr(time.time()))
    if done == int(os.environ.get("BENCH_N", "0")):
        await client.set(T_LAST, repr(time.time()))
