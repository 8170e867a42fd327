"""The asyncio pool (``-P asyncio``): ``async def`` tasks run as asyncio Tasks on one loop.

One thread, ``task-loop``, runs the node's event loop; the consumer, the committer, the
heartbeat and the control mailbox keep their threads, so a task that blocks the loop
stops none of them. The consumer hands requests in (:meth:`AsyncioPool.apply`): the
checks before a start (revoked, expired, rate limit) and the start marker are done in its
thread, then the request joins an inbox that the loop drains in one callback, however
many wait (one wake-up of the loop, not one per request). At most ``concurrency``
requests are in the pool.

A coroutine task runs under :func:`multiq.trace.atrace`, every hook and signal included;
its outcome goes to the committer's queue, never written in the loop's thread. A task
whose rate limit makes it wait sleeps on the loop. A plain (``def``) task runs
``Executor.execute`` in a bounded thread executor of min(32, concurrency) threads: a
blocking call must not stall the loop, and more threads than that would mostly contend
for the GIL (an asyncio node runs mostly coroutines; ``-P threads`` is for the rest).

Time limits (the message's, the task's, the node's: see :mod:`.limits`) apply to the
coroutine tasks, as :mod:`.loopstop` describes; so does ``revoke --terminate``. A plain
task's thread cannot be interrupted (as on the threads pool). A warm shutdown waits for
every request in the pool; a cold one cancels the coroutines, settles the running requests
as prefork's cold stop does (late-ack ones back to their queue, early-ack ones failed as
lost) and hands back those not started.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Set

from multiq.exceptions import CallKilled
from multiq.pools.base import Fail, Pool, settle_cold
from multiq.pools.limits import time_limits
from multiq.pools.loopstop import TERMINATED, Job, arm, cancel, kill, record_killed
from multiq.trace import atrace

if TYPE_CHECKING:
    from multiq.task import Task
    from multiq.worker.execute import Executor
    from multiq.worker.items import Outcome, Request

logger = logging.getLogger("multiq.worker")

THREADS_MAX = 32  # threads for plain (def) tasks, at most


class AsyncioPool(Pool):
    kind = "asyncio"
    batched_marks = True
    watches_calls = True

    def __init__(self, executor: Executor, concurrency: int,
                 time_limit: Optional[float] = None, soft_time_limit: Optional[float] = None,
                 *, fail: Optional[Fail] = None) -> None:
        super().__init__(executor.execute, concurrency, fail=fail)
        self.executor = executor
        conf = executor.app.conf
        self.time_limit, self.soft_time_limit = time_limit, soft_time_limit
        self._hard_default = time_limit or conf.task_time_limit
        self._soft_default = soft_time_limit or conf.task_soft_time_limit
        self.threads = min(THREADS_MAX, self.concurrency)
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._calls: Optional[ThreadPoolExecutor] = None
        self._jobs: Dict[int, Job] = {}  # every request in the pool, by id()
        self._inbox: List[Job] = []  # handed in, for the loop to start
        self._woken = False  # the loop was asked to drain the inbox
        self._cond = threading.Condition()
        self._coroutines: Dict[str, bool] = {}  # task name: whether it is ``async def``
        self._cold = False

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._calls = ThreadPoolExecutor(self.threads, thread_name_prefix="pool-sync")
        self._thread = threading.Thread(target=self._run_loop, name="task-loop",
                                        daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        assert self.loop is not None
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def stop(self, wait: bool = True, timeout: float = 0.0) -> None:
        """Warm: every request in the pool runs to its end first; then the loop stops."""
        deadline = time.monotonic() + timeout if timeout else None
        with self._cond:
            while wait and self._jobs and (deadline is None or time.monotonic() < deadline):
                self._cond.wait(0.1)
        if self.loop is not None and self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5.0)
            if not self._thread.is_alive():
                self.loop.close()
        if self._calls is not None:
            self._calls.shutdown(wait=wait)

    def cold_stop(self, committer: Any) -> None:
        """Stop now: running requests are cancelled, early-ack ones failing as lost and
        late-ack ones going back to their queue, as does every one not started."""
        self._cold = True
        with self._cond:
            jobs = [job for job in self._jobs.values() if job.claim()]
        settle_cold(committer, [job.req for job in jobs if job.running])
        for job in jobs:
            if not job.running and committer is not None:
                committer.redeliver(job.req, count=False)
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(cancel, jobs)

    # -- handing in (the consumer's thread) --------------------------------------------

    def apply(self, req: Request) -> None:
        job = Job(req, self._is_coroutine(req.task))
        if not job.coroutine:  # a plain function: it runs in a thread, checks and all
            self._hold(job)
            try:
                self._calls.submit(self._call, job)  # type: ignore[union-attr]
            except BaseException:
                self._release(job)
                raise
            return
        ex = self.executor
        if ex.discard(req):
            return
        job.wait = ex.rate_wait(req.task)
        if not job.wait:
            ex.start(req)
        self._hold(job)
        with self._cond:
            self._inbox.append(job)
            wake, self._woken = not self._woken, True
        if wake:
            try:
                self.loop.call_soon_threadsafe(self._drain)  # type: ignore[union-attr]
            except BaseException:
                self._release(job)
                raise

    def _is_coroutine(self, task: Task) -> bool:
        known = self._coroutines.get(task.name)
        if known is None:
            fun = type(task).__call__ if task._custom_call else task.run
            known = self._coroutines[task.name] = inspect.iscoroutinefunction(fun)
        return known

    def _hold(self, job: Job) -> None:
        with self._cond:
            self._jobs[id(job.req)] = job

    def _release(self, job: Job) -> None:
        with self._cond:
            if self._jobs.pop(id(job.req), None) is not None:
                self._cond.notify_all()

    # -- plain tasks (a thread of the executor) ----------------------------------------

    def _call(self, job: Job) -> None:
        job.running = True
        try:
            if not self._cold:
                self.executor.execute(job.req)
        except Exception as exc:  # not the task's own (an outcome): it fails alone
            self.executor.fail(job.req, exc)
        except BaseException:
            logger.exception("Pool thread failed running %s", job.req.id)
        finally:
            self._release(job)

    # -- coroutine tasks (the loop's thread) -------------------------------------------

    def _drain(self) -> None:
        with self._cond:
            jobs, self._inbox, self._woken = self._inbox, [], False
        if self._cold:
            return
        create = self.loop.create_task  # type: ignore[union-attr]
        for job in jobs:
            job.runner = create(self._run(job))

    async def _run(self, job: Job) -> None:
        req, ex = job.req, self.executor
        try:
            if job.wait and not await self._admitted(job):
                return
            if ex.should_skip(req):  # revoked since it was handed in
                if job.claim():
                    ex.discard(req)
                return
            outcome = await self._traced(job)
            if job.killed is not None:  # (the pool's outcome, not the task's)
                record_killed(job, ex.committer)
            elif outcome is not None and job.claim():
                ex.committer.complete(req, outcome, here=False)
        except Exception as exc:  # not the task's own (an outcome): it fails alone
            if job.claim():
                ex.fail(req, exc, here=False)
        finally:
            self._release(job)

    async def _admitted(self, job: Job) -> bool:
        """Wait on the loop for the rate limit; False when the request must not run."""
        req, ex = job.req, self.executor
        while job.wait:
            await asyncio.sleep(job.wait)
            if ex.should_skip(req):
                if job.claim():
                    ex.discard(req)
                return False
            job.wait = ex.rate_wait(req.task)
        # (the start marker may be a write to Redis: not in the loop's thread)
        await self.loop.run_in_executor(self._calls, ex.start, req)  # type: ignore[union-attr]
        return True

    async def _traced(self, job: Job) -> Optional[Outcome]:
        """Run the call under its time limits; its outcome, counted, logged, callbacks
        applied (their writes deferred to the ack, in a thread if there are any)."""
        req, ex, loop = job.req, self.executor, self.loop
        assert loop is not None
        request = ex.context(req)
        outcome: Optional[Outcome] = None
        if req.message.options.get("chord_of"):  # (reads the header's values)
            outcome = await loop.run_in_executor(self._calls, ex.chord_values, req, request)
        started = time.monotonic()
        job.running = True
        arm(job, loop, *time_limits(req, self._hard_default, self._soft_default),
            ex.committer, self._release)
        try:
            if outcome is None:
                outcome = await atrace(req.task, request, job.cancelled)
        except CallKilled:
            return None
        finally:
            job.disarm()
        if job.killed is not None or job.settled or self._cold:
            return None
        runtime = time.monotonic() - started
        opts = req.message.options
        if opts and (opts.get("link") or opts.get("link_error") or opts.get("chain")):
            await loop.run_in_executor(self._calls, ex.finish, req, request, outcome, runtime)
        else:
            ex.finish(req, request, outcome, runtime)
        return outcome

    # -- what the consumer and the control commands ask ---------------------------------

    def free_slots(self) -> int:
        return self.concurrency - len(self._jobs)

    def wait_for_slot(self, timeout: float) -> None:
        with self._cond:
            if len(self._jobs) >= self.concurrency:
                self._cond.wait(timeout)

    def active(self) -> List[Request]:
        with self._cond:
            return [job.req for job in self._jobs.values() if job.running]

    def held(self) -> List[Request]:
        with self._cond:
            return [job.req for job in self._jobs.values()]

    def waiting(self) -> int:
        with self._cond:
            return sum(1 for job in self._jobs.values() if not job.running)

    def terminate(self, ids: Set[str], signum: int) -> List[str]:
        """Cancel the running coroutine tasks of these ids: they end REVOKED (terminated).
        (Plain tasks' threads cannot be interrupted.)"""
        with self._cond:
            jobs = [job for job in self._jobs.values()
                    if job.coroutine and job.running and job.req.id in ids]
        if jobs and self.loop is not None:
            self.loop.call_soon_threadsafe(kill, jobs, CallKilled(TERMINATED, None), self.loop,
                                           self.executor.committer, self._release)
        return [job.req.id for job in jobs]

    def grow(self, n: int = 1) -> int:
        self.concurrency += n
        return self.concurrency

    def shrink(self, n: int = 1) -> int:
        self.concurrency = max(1, self.concurrency - n)
        return self.concurrency

    def info(self) -> dict:
        return {"implementation": self.kind, "max-concurrency": self.concurrency,
                "threads": self.threads, "timeouts": [self.soft_time_limit, self.time_limit]}
