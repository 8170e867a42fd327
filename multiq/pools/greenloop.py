"""``async def`` tasks under the gevent pool: one asyncio loop, in a thread of its own.

Greenlets share their OS thread, and asyncio allows one running loop per OS thread: a
loop per greenlet (what :func:`multiq.trace.run_coroutine` would make, its thread-local
being a greenlet-local once ``threading`` is patched) fails as soon as two async tasks
run at once, and would leave a loop behind for each task. So every coroutine runs on
one loop, in one native thread (gevent's own thread pool, with the standard library's
selector): the greenlet that runs the task waits for it cooperatively, and a time limit
thrown into that greenlet cancels the coroutine.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

import gevent.event
import gevent.threadpool
from gevent import monkey

from multiq.trace import cancel_left

logger = logging.getLogger("multiq.worker")


class LoopThread:
    """``LoopThread().run(coro)``: run ``coro`` to its end on the shared loop; the calling
    greenlet waits without blocking the others."""

    def __init__(self) -> None:
        selector = monkey.get_original("selectors", "DefaultSelector")()
        self.loop = asyncio.SelectorEventLoop(selector)
        self._thread = gevent.threadpool.ThreadPool(1)
        self._done: Optional[Any] = self._thread.spawn(self._serve)

    def _serve(self) -> None:
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
            logger.exception("Could not settle the asyncio loop of the gevent pool")
        finally:
            loop.close()

    def run(self, coro: Any) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        done = gevent.event.AsyncResult()
        future.add_done_callback(done.set)  # (from the loop's thread: gevent wakes us)
        try:
            done.get()
        except BaseException:  # a time limit, or the node stopping: the coroutine ends too
            future.cancel()
            raise
        return future.result()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop (what still runs on it is cancelled) and its thread."""
        if self._done is None:
            return
        done, self._done = self._done, None
        self.loop.call_soon_threadsafe(self.loop.stop)
        done.wait(timeout)
        self._thread.kill()
