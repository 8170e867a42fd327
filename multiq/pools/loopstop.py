"""Stopping a coroutine task of the asyncio pool: time limits and ``revoke --terminate``.

Soft limit: SoftTimeLimitExceeded is raised inside the coroutine, at the await where it is
suspended: set on the future it waits for, the way ``Task.cancel`` cancels that future;
when it waits on no plain future (another Task, a gather), it is cancelled instead, and a
CancelledError it lets out fails the call with SoftTimeLimitExceeded.

Hard limit and terminate: it is cancelled, and the CancelledError it lets out becomes a
:class:`~multiq.exceptions.CallKilled` that passes the task's hooks untouched (see
``multiq.trace.atrace``); the pool records the outcome, as prefork's node does for a
child it killed (and as the gevent pool does): FAILURE with TimeLimitExceeded, or REVOKED
"terminated". Whatever the task does with the cancellation, its own outcome is never
recorded; one still running ``GRACE`` seconds later is left to itself, its slot freed.

A coroutine that blocks the loop without awaiting cannot be stopped until it awaits.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional

from multiq import states
from multiq.exceptions import CallKilled, SoftTimeLimitExceeded, TimeLimitExceeded
from multiq.worker.items import Outcome

if TYPE_CHECKING:
    from multiq.worker.committer import Committer
    from multiq.worker.items import Request

logger = logging.getLogger("multiq.worker")

GRACE = 1.0  # seconds a killed coroutine has to end before it is left to itself
TIMEOUT, TERMINATED = "timeout", "terminated"  # why a call is killed (CallKilled.args[0])
_PLAIN_FUTURES = {asyncio.Future, getattr(asyncio.futures, "_PyFuture", asyncio.Future)}
_claims = threading.Lock()

Release = Callable[["Job"], None]


class Job:
    """A request in the asyncio pool, and what stopping it needs."""

    __slots__ = ("req", "coroutine", "wait", "runner", "running", "settled", "reason",
                 "killed", "timers")

    def __init__(self, req: Request, coroutine: bool) -> None:
        self.req = req
        self.coroutine = coroutine  # an ``async def`` task (else it runs in a thread)
        self.wait = 0.0  # seconds until its rate limit may let it start
        self.runner: Optional[asyncio.Task] = None
        self.running = False  # its call has started
        self.settled = False  # its outcome is handed in (see claim)
        self.reason: Optional[BaseException] = None  # why the pool cancelled it (soft)
        self.killed: Optional[CallKilled] = None  # why the pool ended it (hard, terminate)
        self.timers: List[asyncio.TimerHandle] = []

    def claim(self) -> bool:
        """Whether the caller is the one to hand in this request's outcome: the first to
        ask (its run, the pool ending it, a cold shutdown)."""
        with _claims:
            if self.settled:
                return False
            self.settled = True
            return True

    def cancelled(self) -> Optional[BaseException]:
        """What a cancellation of the call stands for (see ``multiq.trace.atrace``)."""
        return self.killed or self.reason

    def disarm(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers = []


def arm(job: Job, loop: asyncio.AbstractEventLoop, hard: Optional[float],
        soft: Optional[float], committer: Committer, release: Release) -> None:
    """(On the loop, as the call starts.) Its time limits' timers."""
    if soft:
        job.timers.append(loop.call_later(soft, _soft, job, soft))
    if hard:
        job.timers.append(loop.call_later(hard, _hard, job, hard, loop, committer, release))


def _soft(job: Job, soft: float) -> None:
    runner = job.runner
    if runner is None or runner.done():
        return
    logger.warning("Soft time limit (%ss) exceeded for %s[%s]", f"{soft:g}", job.req.name,
                   job.req.id)
    exc = SoftTimeLimitExceeded(f"soft time limit ({soft:g}s) exceeded")
    waiter: Any = getattr(runner, "_fut_waiter", None)
    if type(waiter) in _PLAIN_FUTURES and not waiter.done():
        waiter.set_exception(exc)  # raised where the coroutine awaits it
    else:
        job.reason = exc
        runner.cancel()


def _hard(job: Job, hard: float, loop: asyncio.AbstractEventLoop, committer: Committer,
          release: Release) -> None:
    logger.error("Hard time limit (%ss) exceeded for %s[%s]; cancelling it", f"{hard:g}",
                 job.req.name, job.req.id)
    kill([job], CallKilled(TIMEOUT, hard), loop, committer, release)


def kill(jobs: Iterable[Job], killed: CallKilled, loop: asyncio.AbstractEventLoop,
         committer: Committer, release: Release) -> None:
    """(On the loop.) End these calls now, for ``killed``'s reason."""
    for job in jobs:
        runner = job.runner
        if job.killed is not None or runner is None or runner.done():
            continue
        job.killed = killed
        runner.cancel()
        job.timers.append(loop.call_later(GRACE, _abandon, job, committer, release))


def _abandon(job: Job, committer: Committer, release: Release) -> None:
    if record_killed(job, committer):
        logger.error("Task %s[%s] runs on though cancelled; it is left running, its outcome "
                     "dropped", job.req.name, job.req.id)
        release(job)


def record_killed(job: Job, committer: Committer) -> bool:
    """Record the outcome of a call the pool ended (unless it is recorded already)."""
    killed = job.killed
    if killed is None or not job.claim():
        return False
    req, reason = job.req, killed.args[0] if killed.args else None
    if reason == TERMINATED:
        logger.warning("Task %s[%s] terminated (revoked)", req.name, req.id)
        committer.revoked(req, "terminated")
    else:
        hard = killed.args[1]
        logger.error("Task %s[%s] killed by its hard time limit (%ss)", req.name, req.id,
                     f"{hard:g}")
        committer.complete(req, Outcome(states.FAILURE, exc=TimeLimitExceeded(hard)),
                           here=False)
    return True


def cancel(jobs: Iterable[Job]) -> None:
    """(On the loop, at a cold shutdown.) Cancel these calls; their outcome is settled."""
    for job in jobs:
        if job.runner is not None and not job.runner.done():
            job.runner.cancel()
