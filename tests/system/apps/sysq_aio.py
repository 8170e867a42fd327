"""Tasks for tests/system/test_asyncio_pool.py (workers run with ``-P asyncio``).

Runs are recorded in db 3 of the broker's server (``RPUSH runs <tag>``, see
``sysq_recorder``). The worker gets its URLs from ``MULTIQ_BROKER_URL`` /
``MULTIQ_RESULT_BACKEND``; the test process imports this module too, where they may be
unset (the app is then simply not connected).
"""
from __future__ import annotations

import asyncio
import os
import threading
import time

from sysq_recorder import recorder

from multiq import MultiQ
from multiq.exceptions import SoftTimeLimitExceeded

app = MultiQ(
    "sysq_aio",
    broker=os.environ.get("MULTIQ_BROKER_URL"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND"),
)

RUNS = "runs"


def _record(tag: str) -> None:
    recorder().rpush(RUNS, tag)


@app.task
async def nap(seconds: float = 0.5, value: object = None) -> object:
    await asyncio.sleep(seconds)
    return value


@app.task(bind=True)
async def whoami(self, n: int) -> list:
    """Its own request before and after awaits, and in coroutines it gathers."""
    seen = [self.request.id]
    await asyncio.sleep(0.01 * (n % 7))

    async def inner() -> str:
        await asyncio.sleep(0.01 * (n % 3))
        return self.request.id

    seen += await asyncio.gather(inner(), inner())
    await asyncio.sleep(0)
    seen.append(self.request.id)
    return [seen, self.request.args[0]]


@app.task
def block(seconds: float = 3.0) -> str:
    """A plain function that blocks its thread."""
    time.sleep(seconds)
    return threading.current_thread().name


@app.task
async def hog(seconds: float = 3.0) -> str:
    """A coroutine that blocks the loop itself."""
    time.sleep(seconds)
    return threading.current_thread().name


@app.task(soft_time_limit=0.3)
async def soft_caught() -> str:
    try:
        await asyncio.sleep(10)
    except SoftTimeLimitExceeded:
        return "caught"
    return "slept"


@app.task(soft_time_limit=0.3)
async def soft_in_gather() -> str:
    """Waits on a gather (no plain future): cancelled, fails SoftTimeLimitExceeded."""
    await asyncio.gather(asyncio.sleep(10))
    return "slept"


@app.task(time_limit=0.5)
async def too_long() -> str:
    await asyncio.sleep(10)
    return "slept"


@app.task(time_limit=0.5)
async def stubborn() -> str:
    """Swallows the cancellation of its hard limit and goes on."""
    for _ in range(2):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            pass
    return "stubborn"


@app.task
async def long(tag: str, seconds: float = 30.0) -> str:
    _record(f"start:{tag}")
    await asyncio.sleep(seconds)
    _record(f"end:{tag}")
    return tag


@app.task(acks_late=True)
async def long_late(tag: str, seconds: float = 30.0) -> str:
    _record(f"start:{tag}")
    await asyncio.sleep(seconds)
    _record(f"end:{tag}")
    return tag


@app.task(bind=True, max_retries=3)
async def flaky(self, times: int) -> int:
    await asyncio.sleep(0)
    if self.request.retries < times:
        raise self.retry(countdown=0.1)
    return self.request.retries


class Flaky(Exception):
    pass


@app.task(bind=True, autoretry_for=(Flaky,), retry_kwargs={"countdown": 0.1, "max_retries": 3})
async def auto_flaky(self, times: int) -> int:
    await asyncio.sleep(0)
    if self.request.retries < times:
        raise Flaky(self.request.retries)
    return self.request.retries


@app.task(rate_limit="5/s")
async def limited(i: int) -> float:
    return time.time()


@app.task
async def add(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y
