"""A worker node in a thread of the test process, so tasks defined in a test module run.

``WorkerThread(app, pool="solo").start()`` returns once the node consumes (its ``on_ready``),
``.stop()`` is a warm shutdown bounded by a timeout. Only the solo and threads pools: the
prefork pool forks, which a test process (with its threads) should not do.
"""
from __future__ import annotations

import itertools
import sys
import threading
from typing import Any, List, Optional

from multiq.exceptions import MultiQError, TimeoutError
from multiq.worker.worker import Worker

POOLS = ("solo", "threads")
_numbers = itertools.count(1)


class WorkerThreadError(MultiQError):
    """The test worker did not start, or did not stop, in time."""


class _InProcessWorker(Worker):
    """A cold shutdown ends the whole process (``os._exit``): here every stop is warm, and
    the fixture bounds how long it may take."""

    def request_stop(self, mode: str = "warm") -> None:
        super().request_stop("warm")


class WorkerThread:
    """A worker node for one test (or session): ``.hostname``, ``.app``, ``.worker``,
    ``.wait_for_task(result_or_id, timeout)``."""

    def __init__(self, app: Any, *, pool: str = "solo", concurrency: Optional[int] = None,
                 queues: Optional[List[str]] = None, hostname: Optional[str] = None,
                 ready_timeout: float = 10.0, stop_timeout: float = 10.0,
                 **options: Any) -> None:
        if pool not in POOLS:
            raise ValueError(f"the test worker runs pool {' or '.join(POOLS)}, not {pool!r}")
        self.app = app
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        options.setdefault("switch_interval", sys.getswitchinterval())  # the process's own
        self.worker = _InProcessWorker(
            app, pool=pool, concurrency=concurrency, queues=queues,
            hostname=hostname or f"pytest{next(_numbers)}@%h", on_ready=self._on_ready,
            **options)
        self.hostname: str = self.worker.hostname
        self.exit_code: Optional[int] = None
        self._changed = threading.Event()  # ready, or the thread ended
        self._ready = False
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name=f"multiq {self.hostname}",
                                        daemon=True)

    def __repr__(self) -> str:
        return f"<WorkerThread {self.hostname} pool={self.worker.pool_kind}>"

    def _on_ready(self) -> None:
        self._ready = True
        self._changed.set()

    def _run(self) -> None:
        self.app.set_current()  # this thread's current app: the one it serves
        try:
            self.exit_code = self.worker.run()
        except BaseException as exc:  # reported to the test by start() / stop()
            self._error = exc
        finally:
            self._changed.set()

    def start(self) -> WorkerThread:
        """Start the node and wait (``ready_timeout``) until it consumes."""
        title = _title()
        self._thread.start()
        self._changed.wait(self.ready_timeout)
        _set_title(title)  # the node names the process after itself; it is still pytest
        if self._ready and self._thread.is_alive():
            return self
        if self._thread.is_alive():
            self.worker.request_stop()
            self._thread.join(self.stop_timeout)
            raise WorkerThreadError(
                f"worker {self.hostname} was not ready within {self.ready_timeout:.0f}s")
        why = self.worker.failure or f"exit code {self.exit_code}"
        raise WorkerThreadError(
            f"worker {self.hostname} stopped before it was ready: {why}") from self._error

    def stop(self) -> None:
        """Warm shutdown; raises if it takes longer than ``stop_timeout`` or the node failed."""
        self.worker.request_stop()
        self._thread.join(self.stop_timeout)
        if self._thread.is_alive():
            raise WorkerThreadError(
                f"worker {self.hostname} did not stop within {self.stop_timeout:.0f}s "
                f"(is a task still running?)")
        if self._error is not None:
            raise WorkerThreadError(f"worker {self.hostname} failed") from self._error

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait_for_task(self, result_or_id: Any, timeout: float = 10.0) -> Any:
        """Wait until the task has finished (succeeded or failed) and return its
        AsyncResult; ``AssertionError`` if it has not within ``timeout`` seconds."""
        from multiq.result import AsyncResult

        result = AsyncResult(result_or_id, self.app) if isinstance(result_or_id, str) \
            else result_or_id
        try:
            result.get(timeout=timeout, propagate=False)
        except TimeoutError:
            state = "running" if self.alive else "stopped"
            raise AssertionError(
                f"task {result.id} did not finish within {timeout:.1f}s (state {result.state}; "
                f"worker {self.hostname} {state})") from None
        return result


def _title() -> Optional[str]:
    try:
        import setproctitle
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return str(setproctitle.getproctitle())


def _set_title(title: Optional[str]) -> None:
    if title is not None:
        import setproctitle
        setproctitle.setproctitle(title)
