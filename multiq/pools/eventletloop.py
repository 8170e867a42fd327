"""``async def`` tasks under the eventlet pool (see :mod:`multiq.pools.loopthread`).

The loop runs in a native thread of the standard library's own ``threading`` (eventlet's
``patcher.original``). Eventlet's hub is not thread-safe, so the loop's thread never
touches a green object: a coroutine's end is handed back as ``eventlet.tpool`` hands its
results back, through a socket pair that a green thread of the pool reads, waking the
green thread that waits for that coroutine. Coroutines are handed over with
``call_soon_threadsafe``, and each becomes a task of the loop in the loop's thread.
"""
from __future__ import annotations

import collections
import importlib.util
import logging
import sys
from typing import Any, Deque, Optional

import eventlet
import eventlet.event
from eventlet import greenio, patcher

from multiq.pools import loopthread

logger = logging.getLogger("multiq.worker")

_socket = patcher.original("socket")
_threading = patcher.original("threading")


def _selector() -> Any:
    """The standard library's default selector, on the original ``select`` (eventlet's
    patch leaves a green ``select`` only, and ``patcher.original("selectors")`` is
    imported against that one): a copy of ``selectors`` imported with the original."""
    spec = importlib.util.find_spec("selectors")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saver = patcher.SysModulesSaver(("select",))
    try:
        sys.modules["select"] = patcher.original("select")
        spec.loader.exec_module(module)
    finally:
        saver.restore()
    return module.DefaultSelector()


class _Job:
    """A coroutine handed to the loop; ``done`` is sent (in the hub) once it has ended."""

    __slots__ = ("coro", "done", "task", "cancelled")

    def __init__(self, coro: Any) -> None:
        self.coro = coro
        self.done = eventlet.event.Event()
        self.task: Optional[Any] = None  # its asyncio Task, made in the loop's thread
        self.cancelled = False


class LoopThread(loopthread.LoopThread):
    """The shared loop of the eventlet pool, in a native thread of its own."""

    def __init__(self) -> None:
        super().__init__(_selector())
        reader, self._writer = _socket.socketpair()
        self._reader = greenio.GreenSocket(reader)
        self._ended: Deque[Optional[_Job]] = collections.deque()  # None: the loop's end
        self._stopped = eventlet.event.Event()
        self._waker = eventlet.spawn(self._wake)
        self._thread: Optional[Any] = _threading.Thread(
            target=self._serve, name="multiq-eventlet-loop", daemon=True)
        self._thread.start()

    # -- in the loop's thread ------------------------------------------------------------

    def _serve(self) -> None:
        try:
            super()._serve()
        finally:
            self._post(None)

    def _begin(self, job: _Job) -> None:
        if job.cancelled:  # (its green thread stopped waiting before it began)
            job.coro.close()
            return
        job.task = self.loop.create_task(job.coro)
        job.task.add_done_callback(lambda _: self._post(job))

    def _cancel(self, job: _Job) -> None:
        job.cancelled = True
        if job.task is not None:
            job.task.cancel()

    def _post(self, job: Optional[_Job]) -> None:
        """Hand a finished job (None: the loop has ended) to the green side."""
        self._ended.append(job)
        try:
            self._writer.send(b"x")
        except OSError:  # (closed: the pool gave up waiting for the loop)
            pass

    # -- green ---------------------------------------------------------------------------

    def _wake(self) -> None:
        """(The pool's waker green thread.) Wake the waiter of each job that has ended."""
        while not self._stopped.ready():
            try:
                data = self._reader.recv(4096)
            except OSError:
                data = b""
            while self._ended:
                job = self._ended.popleft()
                if job is None:
                    self._stopped.send()
                elif not job.done.ready():
                    job.done.send()
            if not data:
                return

    def run(self, coro: Any) -> Any:
        job = _Job(coro)
        self.loop.call_soon_threadsafe(self._begin, job)
        try:
            job.done.wait()
        except BaseException:  # a time limit, or the node stopping: the coroutine ends too
            self.loop.call_soon_threadsafe(self._cancel, job)
            raise
        assert job.task is not None
        return job.task.result()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop (what still runs on it is cancelled) and its thread."""
        if self._thread is None:
            return
        self._thread = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        with eventlet.Timeout(timeout, False):
            self._stopped.wait()
        if not self._stopped.ready():
            logger.warning("The asyncio loop of the eventlet pool did not stop in %ss",
                           f"{timeout:g}")
        self._writer.close()
        self._reader.close()
        self._waker.kill()
