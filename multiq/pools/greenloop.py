"""``async def`` tasks under the gevent pool (see :mod:`multiq.pools.loopthread`): the
loop runs in gevent's own thread pool, and a coroutine's end wakes its greenlet through
gevent's cross-thread ``AsyncResult``."""
from __future__ import annotations

import asyncio
from typing import Any, Optional

import gevent.event
import gevent.threadpool
from gevent import monkey

from multiq.pools import loopthread


class LoopThread(loopthread.LoopThread):
    """The shared loop of the gevent pool, in a thread of gevent's thread pool."""

    def __init__(self) -> None:
        super().__init__(monkey.get_original("selectors", "DefaultSelector")())
        self._thread = gevent.threadpool.ThreadPool(1)
        self._done: Optional[Any] = self._thread.spawn(self._serve)

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
