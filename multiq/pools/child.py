"""Inside a prefork child: take jobs from the parent's pipe, run them, send records back.

The parent queues the next job in a child while it runs one, so it never idles; a queued
job the parent took back (see :mod:`multiq.pools.gate`) is skipped. Before starting a job
the child writes one message with the previous job's outcome (``D``) and this job's start
(``S``); when it has nothing left to do it writes the outcome at once. So each task costs
one write, the parent learns of a start before the task's code runs, and an outcome is
never held back behind a long task.
"""
from __future__ import annotations

import ctypes
import logging
import os
import pickle
import signal
import sys
import traceback
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Deque, List, NamedTuple, Optional, Tuple

from multiq import signals, states
from multiq.backends.base import exception_to_dict
from multiq.describe import describe
from multiq.exceptions import NotRegistered, SoftTimeLimitExceeded
from multiq.message import decode, peek
from multiq.pools.channel import Channel
from multiq.pools.gate import Gate
from multiq.trace import Outcome

if TYPE_CHECKING:
    from multiq.worker.execute import Executor

logger = logging.getLogger("multiq.worker")

PR_SET_PDEATHSIG = 1
Record = Tuple[Any, ...]


class Job(NamedTuple):
    """What the parent sends: the message as read from Redis and how to run it."""

    data: bytes  # the envelope: decoded again here, cheaper than pickling it decoded
    redeliveries: int
    soft_limit: Optional[float]
    announce: bool = True  # send an S record on start (the parent queued it behind others)
    number: int = 0  # in the order sent to this child (see multiq.pools.gate); 0: no gate


@dataclass
class ChildConfig:
    index: int
    max_tasks: Optional[int]
    max_memory_kib: Optional[int]
    setup: Any  # callable(index) run first in the child (logging, process title)
    gate: Optional[Gate] = None  # which queued jobs it may still start


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphans)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _soft_timeout(signum: int, frame: Any) -> None:
    raise SoftTimeLimitExceeded("SoftTimeLimitExceeded()")


def child_main(conn: Channel, executor: Executor, config: ChildConfig,
               parent_pid: int) -> None:
    """The child's whole life; never returns (``os._exit``)."""
    code = 0
    try:
        die_with_parent()
        if os.getppid() != parent_pid:
            os._exit(1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGALRM, _soft_timeout)
        config.setup(config.index)
        executor.app._reset_connections()  # never share a connection across fork
        executor.committer = None  # type: ignore[assignment]
        signals.worker_process_init.send(sender=None, index=config.index)
        _serve(conn, executor, config)
    except (EOFError, OSError, KeyboardInterrupt):
        code = 0
    except BaseException:
        logger.exception("Pool child %d failed", config.index)
        code = 1
    finally:
        try:
            signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=code)
            logging.shutdown()
        finally:
            os._exit(code)


def _serve(conn: Channel, executor: Executor, config: ChildConfig) -> None:
    inbox: Deque[Job] = deque()
    pending: List[Record] = []  # records not yet written to the parent
    done = 0
    while True:
        if not inbox:
            if pending:
                _send(conn, pending)
            inbox.extend(conn.receive())  # every job waiting, in one read
        job = inbox.popleft()
        if job.number and config.gate is not None and not config.gate.enter(job.number):
            continue  # taken back by the parent: it runs elsewhere
        pending.append(_run(conn, executor, job, pending))
        done += 1
        if (config.max_tasks and done >= config.max_tasks) or _over_memory(config):
            while conn.poll():
                inbox.extend(conn.receive())
            # never started: give back (one whose id cannot be read the parent redelivers
            # when this child has left)
            pending += [("R", task_id) for task_id in map(_job_id, inbox) if task_id]
            pending.append(("X",))
            _send(conn, pending)
            return


def _run(conn: Channel, executor: Executor, job: Job, pending: List[Record]) -> Record:
    """Run one job; its outcome record. Whatever fails on the way (decoding, the task
    lookup, the request) is that job's FAILURE with the real reason, not the child's end
    (which the parent would record as WorkerLostError)."""
    from multiq.worker.execute import Request

    try:
        msg = decode(job.data, executor.accept)  # the parent checked it already
        task = executor.app.tasks.get(msg.task)
        if task is None:
            raise NotRegistered(msg.task)
    except Exception as exc:
        return _failed(job, None, exc)
    if job.announce:
        pending.append(("S", msg.id))
        _send(conn, pending)
    try:
        delivery: Any = _ChildDelivery(job.redeliveries)
        req = Request(delivery, msg, task, early_ack=True, info={"hostname": executor.hostname})
        if job.soft_limit:
            signal.setitimer(signal.ITIMER_REAL, job.soft_limit)
        try:
            outcome = executor.run(req)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except Exception as exc:
        return _failed(job, msg.id, exc)
    return _outcome_record(msg.id, outcome)


def _failed(job: Job, task_id: Optional[str], exc: Exception) -> Record:
    """The FAILURE record of a job that could not be run; without an id the parent could
    not tell which job failed: then the child dies after all (re-raising ``exc``)."""
    task_id = task_id or _job_id(job)
    if task_id is None:
        raise exc
    logger.error("Task %s could not be run: %r", task_id, exc, exc_info=exc)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return _outcome_record(task_id, Outcome(states.FAILURE, exc=exc, traceback=tb))


def _job_id(job: Job) -> Optional[str]:
    """The task id of a job, as the parent read it; None when it cannot be read here."""
    for headroom in (0, 200):  # the parent read it with more stack to spare than a child
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(limit + headroom)
        try:
            task_id = peek(job.data).get("id")
            return task_id if type(task_id) is str and task_id else None
        except Exception:
            continue
        finally:
            sys.setrecursionlimit(limit)
    return None


def _send(conn: Channel, records: List[Record]) -> None:
    try:
        conn.send(records)
    except OSError:
        raise
    except Exception:  # an unpicklable return value: report it as that task's failure
        conn.send([_picklable(r) for r in records])
    records.clear()


def _picklable(record: Record) -> Record:
    """``record`` if it pickles, else a FAILURE outcome of that task saying why."""
    try:
        pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        return record
    except Exception as err:
        why = f"Task result cannot be sent back: {describe(err)}"
        info = exception_to_dict(TypeError(why))
        return ("D", record[1], "FAILURE", None, info, None, None, False, None, None)


class _ChildDelivery:
    def __init__(self, redeliveries: int) -> None:
        self.redeliveries = redeliveries


def _over_memory(config: ChildConfig) -> bool:
    if not config.max_memory_kib:
        return False
    import psutil
    return bool(psutil.Process().memory_info().rss // 1024 > config.max_memory_kib)


def _outcome_record(task_id: str, outcome: Any) -> Record:
    """The ``D`` record of an outcome: the exception travels as its JSON description."""
    exc = outcome.exc
    exc_info = exception_to_dict(exc) if exc is not None else None
    plan = getattr(outcome.retry, "plan", None) if outcome.retry is not None else None
    return ("D", task_id, outcome.state, outcome.retval, exc_info, outcome.traceback, plan,
            outcome.requeue, outcome.children, outcome.sends)
