"""Inside a prefork child: a consumer of its own, as a solo node is.

The child fetches its own prefetch under its own consumer name, runs each task inline and
commits its outcomes in batches that ride on its next fetch: the solo node's consumer,
executor and committer, built here after the fork. What the node must see without asking
goes to the child's shared-memory slot (:mod:`multiq.pools.slots`): the entry being
decoded, the task running, its start and hard deadline, how many messages wait unstarted.

One small thread besides reads the node's pipe (go, stop, revoked ids, control commands,
hand back what is reserved, report totals) and tops up the prefetch while a long task runs
and no sibling is idle (so a node holds its prefetch while busy, as a prefork node whose
main process fetches does). Revoked ids come from Redis once, then from the node, which
follows the revoke channel for its children.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from multiq import signals
from multiq.exceptions import SoftTimeLimitExceeded
from multiq.pools.channel import Channel
from multiq.pools.limits import time_limits
from multiq.pools.slots import RUNNING, Slot, SlotTable
from multiq.pools.solo import SoloPool
from multiq.redisconn import REDIS_ERRORS
from multiq.worker.committer import Committer
from multiq.worker.consumer import Consumer, rides
from multiq.worker.execute import Executor
from multiq.worker.state import WorkerState

if TYPE_CHECKING:
    from multiq.broker.redis import Delivery
    from multiq.worker.items import Request

logger = logging.getLogger("multiq.worker")
PR_SET_PDEATHSIG = 1


_prctl: Optional[Callable[..., int]] = None


def before_fork() -> None:
    """Load, in the node, what every child needs first, so the children share it rather
    than each loading a copy of its own: libc's ``prctl``, and ``multiprocessing`` (a
    child names itself there, for logging's ``processName``). Then give the C heap's free
    pages back (glibc), so that no child inherits them."""
    global _prctl
    import multiprocessing  # noqa: F401

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - not Linux
        return
    _prctl = getattr(libc, "prctl", None)
    trim = getattr(libc, "malloc_trim", None)  # (glibc only)
    if trim is not None:
        trim(0)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphans)."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _soft_timeout(signum: int, frame: Any) -> None:
    raise SoftTimeLimitExceeded("SoftTimeLimitExceeded()")


TOPUP_AFTER = 0.2  # seconds a task runs before the child fetches more beside it
TOPUP_EVERY = 0.1


@dataclass(frozen=True)
class ChildSpec:
    """What a child is told at its fork."""

    index: int
    consumer: str
    hostname: str
    queues: List[str]
    prefetch: int
    max_tasks: Optional[int]
    max_memory_kib: Optional[int]
    hard_default: Optional[float]
    soft_default: Optional[float]
    events: bool
    span: int  # the highest child index at the fork (its siblings, for top-ups)
    setup: Callable[[int], None]


def child_main(app: Any, spec: ChildSpec, table: SlotTable, conn: Channel,
               parent_pid: int, spares: Any = None) -> None:
    """The child's whole life; never returns (``os._exit``). ``spares``: the broker and
    backend the node built for its children (see ``MultiQ._spares``)."""
    code = 0
    try:
        die_with_parent()
        if os.getppid() != parent_pid:
            os._exit(1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGALRM, _soft_timeout)
        spec.setup(spec.index)
        app._reset_connections()  # never share a connection across fork
        signals.worker_process_init.send(sender=None, index=spec.index)
        app._adopt(spares)
        ChildNode(app, spec, table, conn).run()
    except (EOFError, OSError, KeyboardInterrupt):
        code = 0
    except BaseException:
        logger.exception("Pool child %d failed", spec.index)
        code = 1
    finally:
        try:
            signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=code)
            logging.shutdown()
        finally:
            os._exit(code)


class ChildExecutor(Executor):
    """The solo executor, telling the slot what runs, under the task's time limits."""

    def __init__(self, node: ChildNode, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.node = node
        self._soft: Optional[float] = None  # the running task's soft time limit

    def _starting(self, req: Request) -> None:
        node = self.node
        hard, soft = time_limits(req, node.spec.hard_default, node.spec.soft_default)
        node.slot_running(req.delivery, req.id, req.early_ack, hard)
        self._soft = soft
        if soft:
            signal.setitimer(signal.ITIMER_REAL, soft)

    def _ended(self) -> None:
        if self._soft:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self.node.finished()


class ChildConsumer(Consumer):
    """The solo consumer; each entry it decodes is named in the slot first (should the
    decoding kill the child, the node counts that delivery)."""

    def __init__(self, node: ChildNode, *args: Any) -> None:
        self.node = node
        super().__init__(*args)

    def _receive(self, deliveries: List[Delivery]) -> None:
        node = self.node
        for d in deliveries:
            node.slot_preparing(d)
            super()._receive([d])
        node.slot_idle()


class ChildNode:
    """The parts of one child, built after the fork, and its life."""

    def __init__(self, app: Any, spec: ChildSpec, table: SlotTable, conn: Channel) -> None:
        self.app, self.spec, self.table, self.conn = app, spec, table, conn
        self.slot: Slot = table.slot(spec.index)
        self._slot_lock = threading.Lock()  # the task thread and the top-up thread write
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._go = threading.Event()
        self.done = 0
        self.state = WorkerState()

    # -- the slot ----------------------------------------------------------------------

    def slot_preparing(self, d: Delivery) -> None:
        with self._slot_lock:
            self.slot.preparing(d.entry_id, d.queue, d.band)

    def slot_running(self, d: Delivery, task_id: str, early_ack: bool,
                     hard: Optional[float]) -> None:
        with self._slot_lock:
            self.slot.running(d.entry_id, d.queue, d.band, task_id, early_ack, hard,
                              len(self.consumer.reserved))

    def slot_idle(self) -> None:
        with self._slot_lock:
            self.slot.idle(len(self.consumer.reserved))

    def finished(self) -> None:
        """A task ended: the slot says so; the child retires when its time has come."""
        self.slot_idle()
        self.done += 1
        spec = self.spec
        if spec.max_tasks:
            left = spec.max_tasks - self.done
            self.consumer.prefetch = max(1, min(spec.prefetch, left))
            if left <= 0:
                self._stop.set()
        if spec.max_memory_kib and _rss_kib() > spec.max_memory_kib:
            self._stop.set()

    # -- life --------------------------------------------------------------------------

    def run(self) -> None:
        spec, app = self.spec, self.app
        self.slot.reset(os.getpid())
        broker = app.broker
        committer = Committer(app, spec.consumer, spec.hostname)
        committer.events_enabled = spec.events
        riding = rides(SoloPool, broker, committer)
        executor = ChildExecutor(self, app, spec.hostname, spec.consumer, self.state,
                                 committer, batched_marks=riding or SoloPool.batched_marks)
        pool = SoloPool(executor.execute, fail=executor.fail)
        prefetch = min(spec.prefetch, spec.max_tasks) if spec.max_tasks else spec.prefetch
        self.consumer = consumer = ChildConsumer(self, broker, spec.consumer, spec.queues,
                                                 prefetch, pool, executor)
        self.executor, self.committer = executor, committer
        # the consumer runs in this thread: the outcomes of its tasks ride on its fetches
        committer.start(idle=consumer.holds_only,
                        rider=threading.get_ident() if riding else None)
        threading.Thread(target=self._listen, name="pipe", daemon=True).start()
        self._go.wait()  # the node has made this child's name alive and follows revokes
        try:
            # (what the node forwards from now on is added to this)
            self.state.add_revoked(broker.revoked_ids())
            consumer.run(self._stop.is_set)
        finally:
            self._leave()

    def _leave(self) -> None:
        """Hand back what never started, write what finished, leave the groups."""
        self._stop.set()
        consumer = self.consumer
        with consumer._take_lock:
            pass  # a top-up in progress has put its messages in the reserve
        try:
            consumer.handback()
        finally:
            self.committer.stop()
            try:
                self.app.broker.retire(self.spec.consumer, consumer.queues)
            except REDIS_ERRORS as exc:
                logger.warning("Could not leave the consumer groups: %s", exc)
            self._report()

    # -- the node's pipe ------------------------------------------------------------------

    def _listen(self) -> None:
        """Apply what the node sends; between its messages, top up beside a long task."""
        try:
            while True:
                if self.conn.poll(TOPUP_EVERY):
                    for command in self.conn.receive():
                        self._apply_safely(command)
                if self._go.is_set() and not self._stop.is_set():
                    self._top_up_safely()
        except (EOFError, OSError):
            self._stop.set()  # the node is gone (or closed the pipe): leave
            self._go.set()

    def _apply_safely(self, command: tuple) -> None:
        try:
            self._apply(command)
        except Exception:
            logger.exception("Pool child %d: could not apply %r", self.spec.index,
                             command[:1])

    def _apply(self, command: tuple) -> None:
        kind, args = command[0], command[1:]
        if kind == "go":
            self._go.set()
        elif kind == "stop":
            self._stop.set()
            self._go.set()
        elif kind == "revoke":
            self.state.add_revoked(args[0])
        elif kind == "totals":
            self._report()
        elif kind == "handback":
            self._hand_back_reserved()
        elif kind == "control":
            self._control(*args)

    def _control(self, method: str, arguments: Dict[str, Any]) -> None:
        """A control command the node applied (and checked) already."""
        from multiq.control import arguments as check

        consumer = self.consumer
        task = self.app.tasks.get(arguments.get("task_name"))
        if method == "rate_limit" and task is not None:
            rate = arguments.get("rate_limit") or None
            task.rate_limit = rate
            self.executor.set_rate_limit(task.name, rate)
        elif method == "time_limit" and task is not None:
            task.soft_time_limit = check.seconds(arguments.get("soft"), "soft")
            task.time_limit = check.seconds(arguments.get("hard"), "hard")
        elif method in ("enable_events", "disable_events"):
            enabled = method == "enable_events"
            self.committer.events_enabled = enabled
            self.app.conf.worker_send_task_events = enabled
        elif method == "add_consumer":
            consumer.add_queue(arguments["queue"])
        elif method == "cancel_consumer" and arguments["queue"] in consumer.queues:
            consumer.cancel_queue(arguments["queue"])

    def _report(self) -> None:
        """Send the node this child's totals (tasks run, by name)."""
        with self._send_lock:
            try:
                self.conn.send([("totals", dict(self.state.total))])
            except OSError:
                pass

    def _hand_back_reserved(self) -> None:
        """(Another child is idle while this one runs a long task.) What waits here
        unstarted goes back to its queue, for the idle one to take."""
        consumer = self.consumer
        with consumer._take_lock:
            pending = list(consumer.reserved)
            consumer.reserved.clear()
        if not pending:
            return
        try:
            consumer.broker.handback([r.delivery for r in pending])
        except REDIS_ERRORS as exc:
            logger.warning("Could not hand back %d messages (%s); keeping them",
                           len(pending), exc)
            with consumer._take_lock:
                consumer.reserved.extendleft(reversed(pending))
        with self._slot_lock:
            self.slot.reserved(len(consumer.reserved))

    # -- topping up beside a long task -----------------------------------------------

    def _top_up_safely(self) -> None:
        try:
            self._top_up()
        except REDIS_ERRORS:
            pass  # the consumer thread deals with outages
        except Exception:
            logger.exception("Pool child %d: top-up failed", self.spec.index)

    def _top_up(self) -> None:
        view = self.slot.read()
        if view.state != RUNNING or time.monotonic() - view.since < TOPUP_AFTER:
            return
        consumer = self.consumer
        room = consumer.prefetch - len(consumer.reserved) - 1
        if room <= 0 or not self.table.others_busy(self.spec.index,
                                                   list(range(1, self.spec.span + 1))):
            return
        with consumer._take_lock:
            if self._stop.is_set():
                return
            got = consumer.broker.fetch(self.spec.consumer, consumer.order.next(), room)
            for d in got:
                req = self.executor.prepare(d)
                if req is not None:
                    consumer.reserved.append(req)
        if got:
            with self._slot_lock:
                self.slot.reserved(len(consumer.reserved))


def _rss_kib() -> int:
    import psutil
    return int(psutil.Process().memory_info().rss // 1024)
