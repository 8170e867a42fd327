"""The gevent pool: each request runs in a greenlet of its own, up to ``-c`` at once.

``multiq worker -P gevent -c 500``, as Celery's gevent pool; what it does is
:mod:`multiq.pools.green`'s, and this module speaks gevent's API: a greenlet group, timers
of gevent's loop, its callbacks for what must run in the hub, and ``async def`` tasks on
:mod:`multiq.pools.greenloop`'s loop thread.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional

import gevent
import gevent.event
import gevent.pool

from multiq.pools.green import Disarm, GreenPool

if TYPE_CHECKING:
    from multiq.pools.greenloop import LoopThread
    from multiq.worker.items import Request

logger = logging.getLogger("multiq.worker")


class GeventPool(GreenPool):
    kind = "gevent"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._group = gevent.pool.Group()
        super().__init__(*args, **kwargs)

    def _event(self) -> Any:
        return gevent.event.Event()

    def _spawn(self, req: Request) -> None:
        self._group.spawn(self._run, req)

    def _current(self) -> Any:
        return gevent.getcurrent()

    def _timer(self, seconds: float, callback: Callable[..., None], *args: Any) -> Disarm:
        timer = gevent.get_hub().loop.timer(seconds)
        timer.start(callback, *args)
        return timer.close

    def _soon(self, callback: Callable[..., None], *args: Any) -> None:
        gevent.get_hub().loop.run_callback(callback, *args)

    def _threads(self) -> List[Any]:
        return list(self._group)

    def _kill(self, threads: Iterable[Any]) -> None:
        gevent.killall(list(threads), block=False)

    def _join(self, timeout: Optional[float]) -> None:
        self._group.join(timeout=timeout)

    def _new_loop(self) -> LoopThread:
        from multiq.pools.greenloop import LoopThread

        return LoopThread()

    def dump_stacks(self) -> None:
        from gevent.util import format_run_info

        logger.warning("Greenlets of the gevent pool:\n%s", "\n".join(format_run_info()))
