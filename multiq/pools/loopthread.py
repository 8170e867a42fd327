"""``async def`` tasks under a green pool: one asyncio loop, in a native thread of its own.

Green threads share their OS thread, and asyncio allows one running loop per OS thread: a
loop per green thread (what :func:`multiq.trace.run_coroutine` would make, its
thread-local being a green-local once ``threading`` is patched) fails as soon as two async
tasks run at once, and would leave a loop behind for each task. So every coroutine runs on
one loop, in one native thread, with the standard library's own selector: the green thread
that runs the task waits for it cooperatively, and a time limit thrown into that green
thread cancels the coroutine.

:class:`LoopThread` is the loop and what runs in its thread; a green library's subclass
starts the thread, and hands coroutines over and their ends back
(:mod:`multiq.pools.greenloop` for gevent, :mod:`multiq.pools.eventletloop` for eventlet).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from multiq.trace import cancel_left

logger = logging.getLogger("multiq.worker")


class LoopThread:
    """``run(coro)``: run ``coro`` to its end on the shared loop; the calling green thread
    waits without blocking the others. ``close()`` stops the loop and its thread."""

    def __init__(self, selector: Any) -> None:
        self.loop = asyncio.SelectorEventLoop(selector)

    def _serve(self) -> None:
        """(The loop's thread.) Run the loop until it is stopped, then settle it."""
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self._settle()

    def _settle(self) -> None:
        """(In the loop's thread.) Cancel what is left; close the loop."""
        loop = self.loop
        try:
            cancel_left(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        except BaseException:
            logger.exception("Could not settle the asyncio loop of the green pool")
        finally:
            loop.close()

    def run(self, coro: Any) -> Any:
        raise NotImplementedError

    def close(self, timeout: float = 5.0) -> None:
        raise NotImplementedError
