"""A prefork child has died: what becomes of the messages it held, at once.

Its consumer name's pending entries are what it held. The one its slot names is the one
it died on: a task it ran fails as the pool says (WorkerLostError, TimeLimitExceeded, or
REVOKED when ``revoke --terminate`` killed it; with ``acks_late`` it goes back to its
queue unless ``reject_on_worker_lost`` says otherwise, or at a cold shutdown), an entry it
was decoding goes back counted as a delivery (so a message that kills its decoder ends
in the dead-letter stream). An entry marked started (an early-ack task that finished, its
outcome not yet written) keeps its stored result or fails as lost, as recovery of a dead
node does. Everything else never started: back to its queue, unchanged.
"""
from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, List, Optional

from multiq import states
from multiq.broker.redis import LostEntry
from multiq.exceptions import TimeLimitExceeded, WorkerLostError
from multiq.message import from_envelope, peek
from multiq.pools.slots import PREPARING, RUNNING, SlotView
from multiq.worker.items import Outcome, Request

if TYPE_CHECKING:
    from multiq.broker.redis import Delivery
    from multiq.worker.execute import Executor

logger = logging.getLogger("multiq.worker")


@dataclass
class Death:
    """A child that died, as its node knew it."""

    index: int
    pid: int
    consumer: str
    status: int
    view: SlotView  # its slot, as it left it
    terminated: Optional[bytes]  # the entry the node killed it for (revoke --terminate)
    timed_out: Optional[bytes]  # the entry whose hard time limit killed it
    cold: bool  # at a cold shutdown


def resolve(executor: Executor, death: Death, queues: List[str]) -> None:
    """Settle every message ``death``'s child held; raises on a Redis error (the caller
    tries again later: the entries stay pending for that child's name meanwhile)."""
    broker, committer = executor.app.broker, executor.committer
    pending = broker.own_pending(death.consumer, queues)
    view = death.view
    last = None
    if view.state in (PREPARING, RUNNING) and view.entry:
        last = next((d for d in pending if d.entry_id == view.entry and d.band == view.band
                     and d.queue == view.queue), None)
    rest = [d for d in pending if d is not last]
    started = broker.started_owners(rest)
    lost = [LostEntry(d.queue, d.band, d.entry_id, d.data) for d in rest
            if started.get(d.entry_id) == death.consumer]
    back = [d for d in rest if started.get(d.entry_id) != death.consumer]
    if back:
        broker.handback(back)
    if lost:
        committer.lost(lost, death.consumer)
    if last is not None:
        req = _request(executor, last, death) if view.state == RUNNING else None
        if req is None:
            _count_back(broker, last, death)
        else:
            _lost(executor, req, death)
        committer.flush(10.0)
    broker.retire(death.consumer, queues)


def _request(executor: Executor, d: Delivery, death: Death) -> Optional[Request]:
    """The request the child ran, decoded again here; None if that fails."""
    try:
        msg = from_envelope(peek(d.data), executor.accept)
    except Exception:
        return None
    task = executor.app.tasks.get(msg.task)
    if task is None:
        return None
    req = Request(d, msg, task, early_ack=death.view.early_ack,
                  info={"hostname": executor.hostname})
    req.started, req.marked = death.view.early_ack, True  # (its marker goes with the ack)
    req.time_start, req.worker_pid = death.view.start or None, death.pid
    return req


def _count_back(broker: Any, d: Delivery, death: Death) -> None:
    """Back to its queue as one more delivery (dead-lettered past the bound)."""
    n = d.redeliveries + 1
    p = broker.client.pipeline(transaction=True)
    if n >= broker.max_deliveries:
        logger.error("Message %s killed pool child %d %d times; moved to the dead-letter "
                     "stream", d.entry_id.decode(), death.index, n)
        broker.dead_letter(p, d, f"delivered {n} times; its process died each time")
    else:
        p.xadd(broker.keys.stream(d.queue, d.band), {"m": d.data, "n": n})
    broker.ack(p, d, started=True)
    p.execute()


def _lost(executor: Executor, req: Request, death: Death) -> None:
    committer = executor.committer
    entry = req.delivery.entry_id
    if death.terminated == entry:
        logger.warning("Task %s[%s] terminated (revoked)", req.name, req.id)
        committer.revoked(req, "terminated")
        return
    if death.timed_out == entry:
        hard = death.view.hard
        logger.error("Task %s[%s] killed by its hard time limit (%ss)", req.name, req.id,
                     f"{hard:g}")
        committer.complete(req, Outcome(states.FAILURE, exc=TimeLimitExceeded(hard)))
        return
    how = describe_exit(death.status)
    exc = WorkerLostError(f"Worker exited prematurely: {how} Job: {req.id}.")
    acks_late = not req.early_ack
    if death.cold and acks_late:  # cold shutdown: unfinished late-ack work goes back
        committer.redeliver(req, count=False)
        return
    task = req.task
    requeue = acks_late and (
        task.reject_on_worker_lost if task.reject_on_worker_lost is not None
        else bool(executor.app.conf.task_reject_on_worker_lost))
    if requeue:
        logger.error("Pool child %d died running %s[%s] (%s); the message goes back to the "
                     "queue", death.index, req.name, req.id, how)
        committer.redeliver(req)
    else:
        logger.error("Task %s[%s] raised unexpected: %r", req.name, req.id, exc)
        committer.complete(req, Outcome(states.FAILURE, exc=exc))


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"signal {sig} ({name})"
    return f"exitcode {os.WEXITSTATUS(status)}"
