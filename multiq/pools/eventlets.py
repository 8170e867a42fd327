"""The eventlet pool: each request runs in a green thread of its own, up to ``-c`` at once.

``multiq worker -P eventlet -c 500``, as Celery's eventlet pool (eventlet is deprecated
upstream: ``-P gevent`` does the same, ``-P asyncio`` runs ``async def`` tasks). What it
does is :mod:`multiq.pools.green`'s; this module speaks eventlet's API: ``eventlet.spawn``,
calls scheduled on eventlet's hub for the time limits and what must run there, and
``async def`` tasks on :mod:`multiq.pools.eventletloop`'s loop thread.
"""
from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Set

import eventlet
import eventlet.hubs
from eventlet import greenthread
from eventlet.green import threading as green_threading
from greenlet import GreenletExit

from multiq.pools.green import Disarm, GreenPool

if TYPE_CHECKING:
    from multiq.pools.eventletloop import LoopThread
    from multiq.worker.items import Request

logger = logging.getLogger("multiq.worker")


class EventletPool(GreenPool):
    kind = "eventlet"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._live: Set[Any] = set()  # the pool's green threads, until they end
        super().__init__(*args, **kwargs)

    def start(self) -> None:
        super().start()
        logger.warning("eventlet is deprecated upstream: -P gevent runs the same tasks, "
                       "-P asyncio runs async def tasks")

    def _event(self) -> Any:
        return green_threading.Event()

    def _spawn(self, req: Request) -> None:
        thread = eventlet.spawn(self._run, req)
        self._live.add(thread)
        thread.link(self._live.discard)

    def _current(self) -> Any:
        return greenthread.getcurrent()

    def _timer(self, seconds: float, callback: Callable[..., None], *args: Any) -> Disarm:
        timer = eventlet.hubs.get_hub().schedule_call_global(seconds, callback, *args)
        return timer.cancel

    def _soon(self, callback: Callable[..., None], *args: Any) -> None:
        eventlet.hubs.get_hub().schedule_call_global(0, callback, *args)

    def _threads(self) -> List[Any]:
        return list(self._live)

    def _kill(self, threads: Iterable[Any]) -> None:
        for thread in threads:
            greenthread.kill(thread)  # (this green thread goes on at the hub's next turn)

    def _join(self, timeout: Optional[float]) -> None:
        with eventlet.Timeout(timeout, False):
            for thread in list(self._live):
                try:
                    thread.wait()
                except (Exception, GreenletExit):  # (its own outcome, recorded already)
                    pass

    def _new_loop(self) -> LoopThread:
        from multiq.pools.eventletloop import LoopThread

        return LoopThread()

    def dump_stacks(self) -> None:
        stacks = ["".join(traceback.format_stack(t.gr_frame)) for t in self._threads()
                  if t.gr_frame is not None]
        logger.warning("Green threads of the eventlet pool:\n%s", "\n".join(stacks))
