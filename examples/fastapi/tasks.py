"""The multiq app and its tasks, shared by the web process and the worker."""
import asyncio
import os

from multiq import MultiQ

app = MultiQ(
    "fastapi_demo",
    broker=os.environ.get("MULTIQ_BROKER_URL", "redis://127.0.0.1:6379/1"),
    backend=os.environ.get("MULTIQ_RESULT_BACKEND", "redis://127.0.0.1:6379/2"),
)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
async def slow_square(x: int, seconds: float = 0.1) -> int:
    """An ``async def`` task: the worker runs it on an event loop of its own."""
    await asyncio.sleep(seconds)
    return x * x
