"""multiq app: ``noop``, the counted ``noop_count``, ``add`` and ``tsum`` (canvas), the
I/O-bound ``sleep_count`` and ``asleep_count``; results in the backend db."""
from __future__ import annotations

import asyncio
import time
from typing import Any, List

from bench.apps.common import BACKEND_URL, BROKER_URL, SLEEP, acount, count
from multiq import MultiQ

app = MultiQ("bench", broker=BROKER_URL, backend=BACKEND_URL)


@app.task
def noop(i: Any) -> Any:
    """Return ``i``."""
    return i


@app.task
def noop_count(i: Any) -> Any:
    """Count the completion, return ``i``."""
    count()
    return i


@app.task
def add(x: int, y: int) -> int:
    """``x + y``: the header and chain links of the canvas figures."""
    return x + y


@app.task
def tsum(values: List[int]) -> int:
    """The sum of a chord header's results."""
    return sum(values)


@app.task
def sleep_count(i: Any) -> Any:
    """Wait ``SLEEP`` seconds in ``time.sleep`` (cooperative under gevent), count, return ``i``."""
    time.sleep(SLEEP)
    count()
    return i


@app.task
async def asleep_count(i: Any) -> Any:
    """Wait ``SLEEP`` seconds in ``asyncio.sleep``, count, return ``i``."""
    await asyncio.sleep(SLEEP)
    await acount()
    return i
