"""The threads pool: N long-lived threads take requests from a local queue."""
from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Dict, List, Optional

from multiq.pools.base import Execute, Fail, Pool

if TYPE_CHECKING:
    from multiq.worker.items import Request

logger = logging.getLogger("multiq.worker")


class ThreadPool(Pool):
    kind = "threads"
    batched_marks = True

    def __init__(self, execute: Execute, concurrency: int, *,
                 fail: Optional[Fail] = None) -> None:
        super().__init__(execute, concurrency, fail=fail)
        self._inbox: queue.SimpleQueue[Optional[Request]] = queue.SimpleQueue()
        self._threads: List[threading.Thread] = []
        self._running: Dict[int, Request] = {}
        self._held: Dict[int, Request] = {}  # applied, running or not, by id()
        self._pending = 0
        self._cond = threading.Condition()

    def start(self) -> None:
        for i in range(self.concurrency):
            self._spawn(i + 1)

    def _spawn(self, index: int) -> None:
        t = threading.Thread(target=self._work, name=f"pool-{index}", daemon=True)
        self._threads.append(t)
        t.start()

    def _work(self) -> None:
        ident = threading.get_ident()
        while True:
            req = self._inbox.get()
            if req is None:
                return
            with self._cond:
                self._running[ident] = req
            try:
                self.execute(req)
            except Exception as exc:  # not the task's own (an outcome): it fails, we go on
                if self.fail is not None:
                    self.fail(req, exc)
                else:
                    logger.exception("Pool thread failed running %s", req.id)
            except BaseException:
                logger.exception("Pool thread failed running %s", req.id)
            finally:
                with self._cond:
                    self._running.pop(ident, None)
                    self._held.pop(id(req), None)
                    self._pending -= 1
                    self._cond.notify_all()

    def free_slots(self) -> int:
        return self.concurrency - self._pending

    def apply(self, req: Request) -> None:
        with self._cond:
            self._pending += 1
            self._held[id(req)] = req
        self._inbox.put(req)

    def wait_for_slot(self, timeout: float) -> None:
        with self._cond:
            if self._pending >= self.concurrency:
                self._cond.wait(timeout)

    def active(self) -> List[Request]:
        with self._cond:
            return list(self._running.values())

    def held(self) -> List[Request]:
        with self._cond:
            return list(self._held.values())

    def stop(self, wait: bool = True, timeout: float = 0.0) -> None:
        for _ in self._threads:
            self._inbox.put(None)
        if wait:
            for t in self._threads:
                t.join(timeout or None)

    def grow(self, n: int = 1) -> int:
        for _ in range(n):
            self.concurrency += 1
            self._spawn(self.concurrency)
        return self.concurrency

    def shrink(self, n: int = 1) -> int:
        n = min(n, self.concurrency - 1)
        for _ in range(n):
            self.concurrency -= 1
            self._inbox.put(None)
        self._threads = [t for t in self._threads if t.is_alive()]
        return self.concurrency
