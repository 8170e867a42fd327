"""What the green pools share: each request in a green thread of its own, up to ``-c``.

For I/O-bound tasks by the hundred (``multiq worker -P gevent -c 500``, or ``-P eventlet``),
as Celery's green pools. The node's process is monkey-patched (:mod:`multiq.patching`), so
the consumer, the committer and every task share one OS thread and yield to each other
whenever one waits: on a socket, ``time.sleep``, a lock. A task that computes without
waiting holds every other one up.

Time limits (the message's, else the task's, else the node's, as prefork's) are timers of
the green library's hub. The soft one raises ``SoftTimeLimitExceeded`` inside the task's
green thread; the hard one, and ``revoke --terminate``, throw :class:`CallKilled` into it:
it passes the task's hooks untouched and the pool records the outcome as prefork's node
does for a child it killed (FAILURE with ``TimeLimitExceeded``, REVOKED "terminated").
Whatever the task does with it, its own outcome is never recorded; the node goes on.

A warm shutdown waits for the running green threads; a cold one kills them and settles
their requests as prefork's cold stop does (late-ack ones back to their queue, early-ack
ones failed as lost), and hands back those not started.

:class:`GreenPool` holds that logic; a subclass speaks one library's API (spawn, timers,
the hub's callbacks, joining, killing): ``greenlets.GeventPool``, ``eventlets.EventletPool``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Set

from multiq import states, trace
from multiq.exceptions import CallKilled, SoftTimeLimitExceeded, TimeLimitExceeded
from multiq.pools.base import Fail, Pool, settle_cold
from multiq.pools.limits import time_limits
from multiq.worker.items import Outcome

if TYPE_CHECKING:
    from multiq.worker.execute import Executor
    from multiq.worker.items import Request

logger = logging.getLogger("multiq.worker")

TIMEOUT, TERMINATED, COLD = "timeout", "terminated", "cold"

#: Disarms a timer of the hub.
Disarm = Callable[[], None]


@dataclass
class Call:
    """A task call in progress: between ``Executor._starting`` and ``_ended``."""

    req: Request
    hard: Optional[float]
    timers: List[Disarm]
    killed: Optional[str] = None  # why it is being ended (TIMEOUT, TERMINATED, COLD)

    def cancel(self) -> None:
        for disarm in self.timers:
            disarm()
        self.timers = []


class GreenPool(Pool):
    """The bookkeeping of a green pool; subclasses fill in the library's calls."""

    batched_marks = True
    watches_calls = True

    def __init__(self, executor: Executor, concurrency: int,
                 time_limit: Optional[float] = None, soft_time_limit: Optional[float] = None,
                 *, fail: Optional[Fail] = None) -> None:
        super().__init__(executor.execute, concurrency, fail=fail)
        conf = executor.app.conf
        self.committer = executor.committer
        self.time_limit, self.soft_time_limit = time_limit, soft_time_limit
        self._hard_default = time_limit or conf.task_time_limit
        self._soft_default = soft_time_limit or conf.task_soft_time_limit
        self._held: Dict[int, Request] = {}  # applied, running or not, by id()
        self._running: Dict[int, Request] = {}  # their green thread has begun
        self._calls: Dict[Any, Call] = {}  # green thread -> the task call it is in
        self._freed = self._event()
        self._loop: Optional[Any] = None  # the LoopThread of async def tasks
        executor.watcher = self  # told of each call's start and end

    # -- what a library's pool provides ----------------------------------------------------

    def _event(self) -> Any:
        """A green event (``set``, ``clear``, ``wait(timeout)``)."""
        raise NotImplementedError

    def _spawn(self, req: Request) -> None:
        """Run ``self._run(req)`` in a new green thread."""
        raise NotImplementedError

    def _current(self) -> Any:
        """The green thread this runs in."""
        raise NotImplementedError

    def _timer(self, seconds: float, callback: Callable[..., None], *args: Any) -> Disarm:
        """Call ``callback(*args)`` in the hub ``seconds`` from now."""
        raise NotImplementedError

    def _soon(self, callback: Callable[..., None], *args: Any) -> None:
        """Call ``callback(*args)`` in the hub at its next turn."""
        raise NotImplementedError

    def _threads(self) -> List[Any]:
        """The pool's green threads still alive."""
        raise NotImplementedError

    def _kill(self, threads: Iterable[Any]) -> None:
        """Kill these green threads (outside a task call), without waiting."""
        raise NotImplementedError

    def _join(self, timeout: Optional[float]) -> None:
        """Wait for every green thread of the pool (at most ``timeout`` seconds)."""
        raise NotImplementedError

    def _new_loop(self) -> Any:
        """The LoopThread that ``async def`` tasks run on."""
        raise NotImplementedError

    # -- the consumer's side -------------------------------------------------------------

    def start(self) -> None:
        trace.set_coroutine_runner(self._run_coroutine)

    def free_slots(self) -> int:
        return self.concurrency - len(self._held)

    def apply(self, req: Request) -> None:
        self._held[id(req)] = req
        try:
            self._spawn(req)
        except BaseException:
            self._held.pop(id(req), None)
            raise

    def wait_for_slot(self, timeout: float) -> None:
        if self.free_slots() <= 0:
            self._freed.clear()
            self._freed.wait(timeout)

    def _run(self, req: Request) -> None:
        self._running[id(req)] = req
        try:
            self.execute(req)
        except CallKilled as killed:
            self._killed(req, killed)
        except Exception as exc:  # not the task's own (an outcome): it fails, we go on
            if self.fail is not None:
                self.fail(req, exc)
            else:
                logger.exception("Green thread failed running %s", req.id)
        except BaseException:  # (GreenletExit: killed at a cold stop, settled there)
            logger.debug("Green thread running %s killed", req.id)
        finally:
            self._calls.pop(self._current(), None)
            self._running.pop(id(req), None)
            self._held.pop(id(req), None)
            self._freed.set()

    def _killed(self, req: Request, killed: CallKilled) -> None:
        """Record the outcome of a call the pool ended."""
        reason = killed.args[0] if killed.args else None
        if reason == TERMINATED:
            logger.warning("Task %s[%s] terminated (revoked)", req.name, req.id)
            self.committer.revoked(req, "terminated")
        elif reason == TIMEOUT:
            hard = killed.args[1]
            logger.error("Task %s[%s] killed by its hard time limit (%ss)", req.name, req.id,
                         f"{hard:g}")
            self.committer.complete(req, Outcome(states.FAILURE, exc=TimeLimitExceeded(hard)))
        # COLD: settled by cold_stop

    # -- the executor's side (Executor.watcher) ----------------------------------------

    def starting(self, req: Request) -> None:
        """In the task's green thread, as its call starts: arm its time limits."""
        current = self._current()
        hard, soft = time_limits(req, self._hard_default, self._soft_default)
        call = Call(req, hard, [])
        if soft:
            call.timers.append(self._timer(soft, self._throw, current, req, None,
                                           SoftTimeLimitExceeded("SoftTimeLimitExceeded()")))
        if hard:
            call.timers.append(self._timer(hard, self._throw, current, req, TIMEOUT,
                                           CallKilled(TIMEOUT, hard)))
        self._calls[current] = call

    def ended(self) -> None:
        """In the task's green thread, as its call has returned or raised: disarm; a call
        the pool ended never hands in an outcome of its own."""
        call = self._calls.pop(self._current(), None)
        if call is None:
            return
        call.cancel()
        if call.killed is not None:
            raise CallKilled(call.killed, call.hard)

    def _throw(self, thread: Any, req: Request, reason: Optional[str],
               exc: BaseException) -> None:
        """(In the hub: a timer or a callback.) Raise ``exc`` in ``thread`` at once, if it
        is still in ``req``'s call; ``reason`` marks the call as ended by the pool."""
        call = self._calls.get(thread)
        if call is None or call.req is not req or call.killed is not None:
            return
        if reason is not None:
            call.killed = reason
            call.cancel()
        thread.throw(exc)

    def _end(self, thread: Any, call: Call, reason: str) -> None:
        self._soon(self._throw, thread, call.req, reason, CallKilled(reason, call.hard))

    def _run_coroutine(self, coro: Any) -> Any:
        if self._loop is None:
            self._loop = self._new_loop()
        return self._loop.run(coro)

    # -- what the node asks ------------------------------------------------------------

    def active(self) -> List[Request]:
        return list(self._running.values())

    def held(self) -> List[Request]:
        return list(self._held.values())

    def terminate(self, ids: Set[str], signum: int) -> List[str]:
        """End the calls of these task ids now (``revoke --terminate``; the signal has no
        meaning for a green thread)."""
        ended = []
        for thread, call in list(self._calls.items()):
            if call.req.id in ids and call.killed is None:
                self._end(thread, call, TERMINATED)
                ended.append(call.req.id)
        return ended

    def grow(self, n: int = 1) -> int:
        self.concurrency += max(0, n)
        self._freed.set()
        return self.concurrency

    def shrink(self, n: int = 1) -> int:
        self.concurrency -= max(0, min(n, self.concurrency - 1))
        return self.concurrency

    def info(self) -> dict:
        running = len(self._running)
        return {"implementation": self.kind, "max-concurrency": self.concurrency,
                "free-threads": max(0, self.concurrency - running),
                "running-threads": running,
                "timeouts": [self.soft_time_limit, self.time_limit]}

    # -- stopping ----------------------------------------------------------------------

    def stop(self, wait: bool = True, timeout: float = 0.0) -> None:
        """Warm (``wait``): the running green threads finish; else they are killed."""
        if wait:
            self._join(timeout or None)
        else:
            self._kill_all(timeout or 5.0)
        self._close_loop()

    def cold_stop(self, committer: Any) -> None:
        """Kill every green thread; what ran is settled as prefork's cold stop settles it,
        and what never started goes back to its queue."""
        running = self.active()
        started = {id(r) for r in running}
        unstarted = [r for r in self.held() if id(r) not in started]
        self._kill_all(5.0)
        settle_cold(committer, running)
        if committer is not None:
            for req in unstarted:
                if not req.committed:
                    committer.redeliver(req, count=False)
        self._close_loop()

    def _kill_all(self, timeout: float) -> None:
        for thread, call in list(self._calls.items()):
            self._end(thread, call, COLD)
        self._kill([t for t in self._threads() if t not in self._calls])
        self._join(timeout)

    def _close_loop(self) -> None:
        trace.set_coroutine_runner(None)
        if self._loop is not None:
            self._loop.close()
            self._loop = None
