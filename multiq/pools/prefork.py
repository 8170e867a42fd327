"""The prefork pool: long-lived forked children fed by the node's main process.

The main process decodes each message and sends it to a child over that child's socket
pair, keeping up to ``depth`` jobs queued per child so none waits for the next. A reader
thread collects the children's records — a job started (``S``), finished (``D``), given
back unstarted (``R``), the child leaving (``X``) — records starts and hands outcomes to
the committer, which batches result writes and acks. The reader also enforces hard time
limits (SIGKILL), notices children that die (WorkerLostError, or a requeue with
``acks_late`` + ``reject_on_worker_lost``) and replaces every child that leaves.
"""
from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Set

from multiq import states
from multiq.backends.base import RemoteError, exception_from_dict
from multiq.exceptions import Retry, TimeLimitExceeded, WorkerLostError
from multiq.pools.base import Pool
from multiq.pools.channel import Channel
from multiq.pools.child import ChildConfig, Job, child_main
from multiq.pools.gate import Gate
from multiq.pools.limits import time_limits
from multiq.pools.selffed_lost import describe_exit as _describe_exit
from multiq.trace import Outcome

if TYPE_CHECKING:
    from multiq.worker.execute import Executor, Request

logger = logging.getLogger("multiq.worker")


@dataclass
class Child:
    index: int
    pid: int
    conn: Channel
    queue: Deque[Request] = field(default_factory=deque)  # sent, in order; [0] may run
    running: Optional[Request] = None
    deadline: Optional[float] = None
    timed_out: bool = False
    terminated: bool = False
    retiring: bool = False
    leaving: bool = False  # it said it leaves (X): nothing more is sent to it
    born: float = 0.0
    ran: int = 0
    gate: Optional[Gate] = None  # which of its queued jobs it may still start
    sent: int = 0  # jobs sent to it (each one's number: see multiq.pools.gate)
    numbers: Dict[int, int] = field(default_factory=dict)  # id(request) -> its number


class PreforkPool(Pool):
    kind = "prefork"

    def __init__(
        self, executor: Executor, concurrency: int, *,
        max_tasks_per_child: Optional[int] = None, max_memory_per_child: Optional[int] = None,
        time_limit: Optional[float] = None, soft_time_limit: Optional[float] = None,
        child_setup: Optional[Callable[[int], None]] = None, depth: int = 2,
    ) -> None:
        super().__init__(executor.execute, concurrency)
        self.executor = executor
        self.max_tasks = max_tasks_per_child
        self.max_memory = max_memory_per_child
        self.time_limit = time_limit
        self.soft_time_limit = soft_time_limit
        self.child_setup = child_setup or (lambda index: None)
        self.depth = max(1, depth)
        self.children: Dict[int, Child] = {}
        self._cond = threading.Condition()
        self._running = False
        self._cold = False
        self._failures = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._starved = threading.Event()
        self._reap_due = 0.0
        self._reader: Optional[threading.Thread] = None
        self._parent_pid = os.getpid()
        conf = executor.app.conf  # the node's limits, unless a message or task sets its own
        self._hard_default = time_limit or conf.task_time_limit
        self._soft_default = soft_time_limit or conf.task_soft_time_limit

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        for index in range(1, self.concurrency + 1):
            self._spawn(index)
        self._reader = threading.Thread(target=self._read_loop, name="pool-reader",
                                        daemon=True)
        self._reader.start()

    def _spawn(self, index: int) -> None:
        parent_end, child_end = socket.socketpair()
        gate = Gate() if self.depth > 1 else None
        pid = os.fork()
        if pid == 0:  # the child: drop every descriptor that belongs to the parent
            parent_end.close()
            self._wake_r.close()
            self._wake_w.close()
            for other in self.children.values():
                other.conn.close()
            config = ChildConfig(index, self.max_tasks, self.max_memory, self.child_setup,
                                 gate)
            child_main(Channel(child_end), self.executor, config,
                       self._parent_pid)
        child_end.close()
        child = Child(index, pid, Channel(parent_end), born=time.monotonic(), gate=gate)
        with self._cond:
            self.children[index] = child
            self._selector.register(child.conn, selectors.EVENT_READ, child)
            self._cond.notify_all()
        self._wake()
        self._starved.set()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def stop(self, wait: bool = True, timeout: float = 0.0) -> None:
        """Warm: unstarted jobs go back, running tasks finish; cold: kill the children."""
        deadline = time.monotonic() + timeout if timeout else None
        self._running = False
        self._cold = not wait
        for child in list(self.children.values()):
            self._give_back_queued(child)
        if wait:
            with self._cond:
                while any(c.queue for c in self.children.values()):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._cond.wait(0.1 if left is None else min(left, 0.1))
        for child in list(self.children.values()):
            if child.queue:
                child.retiring = True
                _kill(child.pid, signal.SIGKILL)
            else:
                self._close(child)
        self._wake()
        if self._reader is not None:
            self._reader.join(5.0)
        for child in list(self.children.values()):
            _reap(child.pid, block=True)

    def _give_back_queued(self, child: Child) -> None:
        """Jobs sent to a child that it has not started return to their queue at once."""
        for req in self._withdraw(child, everything=True):
            self.executor.committer.redeliver(req, count=False)

    def _withdraw(self, child: Child, everything: bool = False) -> List[Request]:
        """Take back the jobs queued in ``child`` that it has not started (see
        :mod:`multiq.pools.gate`); ``everything`` for good (stop, shrink): without a gate,
        or should it not answer, all but the one it runs, which it may start meanwhile
        (then it runs twice at worst: at least once, never lost)."""
        with self._cond:
            started = child.gate.withdraw(child.sent + 1) if child.gate is not None else None
            if started is None and not everything:
                return []
            if started is None:
                back = [r for r in child.queue if r is not child.running]
            else:
                back = [r for r in child.queue if child.numbers.get(id(r), 0) > started]
            for req in back:
                child.queue.remove(req)
                child.numbers.pop(id(req), None)
            self._cond.notify_all()
        return back

    # -- dispatch ------------------------------------------------------------------------

    def _room(self, child: Child) -> int:
        if child.retiring or child.leaving or child.conn.closed:
            return 0
        room = self.depth - len(child.queue)
        if self.max_tasks:
            room = min(room, self.max_tasks - child.ran - len(child.queue))
        return max(room, 0)

    def free_slots(self) -> int:
        return sum(self._room(c) for c in list(self.children.values()))

    def wait_for_slot(self, timeout: float) -> None:
        """Wait until the reader could not keep every child busy by itself."""
        if self._starved.wait(timeout):
            self._starved.clear()

    def apply(self, req: Request) -> None:
        if self.executor.admit(req, mark=False):
            self._send(req)

    def _send(self, req: Request) -> None:
        """Send an admitted request to the idle child, else the least busy one."""
        with self._cond:
            children = [c for c in self.children.values() if self._room(c) > 0] or [
                c for c in self.children.values()
                if not (c.retiring or c.leaving or c.conn.closed)]
            if not children:  # every child is leaving: the message goes back to its queue
                self.executor.committer.redeliver(req, count=False)
                return
            child = min(children, key=lambda c: len(c.queue))  # idle first, then least busy
            idle = not child.queue
            child.queue.append(req)
            child.sent += 1
            child.numbers[id(req)] = child.sent
            if idle:  # an idle child starts it at once: no need for it to say so
                _, soft = self._start(child, req, mark=False)
            else:
                _, soft = self._limits(req)
            try:
                child.conn.send([Job(req.delivery.data, req.delivery.redeliveries, soft,
                                     not idle, child.sent if child.gate is not None else 0)])
            except OSError:  # the child died: the reader records the loss
                self._wake()
            if idle:  # marked while the child starts, and before the reader can finish it
                self.executor.mark(req, batched=True)

    def _limits(self, req: Request) -> tuple:
        """(hard, soft) seconds: see :func:`multiq.pools.limits.time_limits`."""
        return time_limits(req, self._hard_default, self._soft_default)

    def active(self) -> List[Request]:
        return [c.running for c in list(self.children.values()) if c.running is not None]

    def held(self) -> List[Request]:
        return [r for c in list(self.children.values()) for r in list(c.queue)]

    def waiting(self) -> int:
        return sum(len(c.queue) - (c.running is not None) for c in list(self.children.values()))

    # -- the reader thread ---------------------------------------------------------------

    def _read_loop(self) -> None:
        while self._running or self.children:
            try:
                self._read_once()
            except Exception:  # a bug must not end the thread that watches the children
                logger.exception("Prefork pool reader failed; going on")
                time.sleep(0.05)

    def _read_once(self) -> None:
        try:
            events = self._selector.select(self._next_deadline())
        except (OSError, ValueError):
            events = []
        for key, _ in events:
            if key.data is None:
                try:
                    self._wake_r.recv(4096)
                except OSError:
                    pass
            else:
                self._receive(key.data)
        self._enforce_deadlines()
        now = time.monotonic()
        if now >= self._reap_due or not self._running:
            self._reap_due = now + 0.5
            self._reap_dead()

    def _close(self, child: Child) -> None:
        if child.conn.closed:
            return
        try:
            self._selector.unregister(child.conn)
        except (KeyError, ValueError):
            pass
        child.conn.close()

    def _next_deadline(self) -> Optional[float]:
        if not self._running:
            return 0.02
        deadlines = [c.deadline for c in self.children.values() if c.deadline]
        if not deadlines:
            return 1.0
        return max(0.0, min(min(deadlines) - time.monotonic(), 1.0))

    def _receive(self, child: Child) -> None:
        try:
            records = child.conn.receive()
        except (EOFError, OSError):
            self._close(child)
            self._reap_due = 0.0  # it died: reap it now
            return
        if any(record[0] == "X" for record in records):
            child.leaving = True  # first: no job may go to a child on its way out
        for record in records:
            try:
                self._record(child, record)
            except Exception:  # the others of the batch are still handled
                logger.exception("Prefork pool: could not handle record %r of child %d",
                                 record[:2], child.index)
        if not self._feed():
            self._starved.set()  # a child is idle and the reserve is empty: wake the fetcher

    def _record(self, child: Child, record: tuple) -> None:
        kind = record[0]
        if kind == "S":
            self._started(child, record[1])
        elif kind == "D":
            self._finished(child, record)
        elif kind == "R":
            self._returned(child, record[1])
        elif kind == "X":
            child.retiring = True

    def _feed(self) -> bool:
        """Top children up straight from the consumer's reserved messages; False when a
        child stays idle."""
        if self.feeder is None or not self._running:
            return False
        while self.free_slots() > 0:
            req = self.feeder()
            if req is None:
                self._rebalance()
                return False
            try:
                self.apply(req)
            except Exception as exc:  # that request fails; the other children are fed on
                if self.fail is None:
                    raise
                self.fail(req, exc)
        return True

    def revoked(self, ids: Set[str]) -> None:
        """Revoked jobs queued in a child come back before it starts them; they are
        committed as revoked, the rest of what came back is sent again."""
        for child in list(self.children.values()):
            if any(r.id in ids and r is not child.running for r in list(child.queue)):
                for req in self._withdraw(child):
                    if not self.executor.discard(req):
                        self._send(req)

    def _rebalance(self) -> None:
        """Nothing is reserved and a child is idle: jobs queued behind another child's task
        move to it, so none waits behind a long task while a child could run it."""
        children = list(self.children.values())
        if not any(not c.queue and self._room(c) > 0 for c in children):
            return
        for donor in children:
            if len(donor.queue) > 1 and donor.gate is not None:
                for req in self._withdraw(donor):
                    self._send(req)

    def _find(self, child: Child, task_id: str) -> Optional[Request]:
        # a copy: the dispatching thread may append to the queue meanwhile (list() of a
        # deque is one step under the GIL; iterating it is not)
        return next((r for r in list(child.queue) if r.id == task_id), None)

    def _started(self, child: Child, task_id: str) -> None:
        req = self._find(child, task_id)
        if req is not None:  # (None: handed back at shutdown, then started anyway)
            self._start(child, req)

    def _start(self, child: Child, req: Request, mark: bool = True) -> tuple:
        """Record that ``child`` runs ``req``; returns its (hard, soft) time limits."""
        hard, soft = self._limits(req)
        req.time_start, req.worker_pid = time.time(), child.pid
        child.running = req
        child.deadline = time.monotonic() + hard if hard else None
        if mark:
            self.executor.mark(req, batched=True)
        return hard, soft

    def _finished(self, child: Child, record: tuple) -> None:
        _, task_id, state, retval, exc_info, tb, plan, requeue, children, sends = record
        req = self._find(child, task_id)
        with self._cond:
            if req is not None:
                child.queue.remove(req)
                child.numbers.pop(id(req), None)
            child.running, child.deadline, child.terminated = None, None, False
            child.ran += 1
            if child.retiring and not child.queue:
                self._close(child)  # shrunk away: it leaves once idle
            self._cond.notify_all()
        if req is None:
            return
        self.executor.state.count(req.name)
        exc: Optional[BaseException] = RemoteError(exc_info) if exc_info is not None else None
        if state == states.REJECTED and exc_info is not None:
            exc = exception_from_dict(exc_info)  # the Reject itself: its reason, its requeue
        retry = None
        if plan is not None:
            retry = Retry(exc=exc, when=plan.get("countdown") or plan.get("eta"))
            retry.plan = plan  # type: ignore[attr-defined]
        self.executor.committer.complete(req, Outcome(state, retval, exc, tb, retry, requeue,
                                                      children, sends))

    def _returned(self, child: Child, task_id: str) -> None:
        req = self._find(child, task_id)
        if req is not None:
            with self._cond:
                child.queue.remove(req)
                child.numbers.pop(id(req), None)
            self.executor.committer.redeliver(req, count=False)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.deadline is not None and now >= child.deadline and not child.timed_out:
                child.timed_out = True
                req = child.running
                logger.error("Hard time limit exceeded for %s[%s]; killing pool child %d "
                             "(pid %d)", req.name if req else "?", req.id if req else "?",
                             child.index, child.pid)
                _kill(child.pid, signal.SIGKILL)

    def _reap_dead(self) -> None:
        for child in list(self.children.values()):
            status = _reap(child.pid, block=False)
            if status is not None:
                self._on_exit(child, status)

    def _on_exit(self, child: Child, status: int) -> None:
        child.retiring = True  # nothing more is sent to it
        while not child.conn.closed and child.conn.poll():  # its last words first
            self._receive(child)
        with self._cond:
            self.children.pop(child.index, None)
            queue, child.queue = list(child.queue), deque()
            self._cond.notify_all()
        self._close(child)
        self._starved.set()
        started = child.gate.started if child.gate is not None else None
        for req in queue:
            number = child.numbers.get(id(req), 0)
            if started is not None and number == started:
                self._lost(req, child, status)  # it entered the gate: it started
            elif req is child.running and started is None:
                self._lost(req, child, status)  # (said so, or was about to)
            elif started is not None:  # (sent to a child already dead: it never started)
                self.executor.committer.redeliver(req, count=number < started)
            elif req is queue[0]:  # it may have started without saying so: count it
                self.executor.committer.redeliver(req, count=True)
            else:
                self.executor.committer.redeliver(req, count=False)
        if child.gate is not None:
            child.gate.close()
        if self._running and child.index <= self.concurrency:
            if not child.ran and time.monotonic() - child.born < 1.0 and status:
                self._failures += 1  # dies at start-up: do not respawn in a tight loop
                delay = min(0.1 * 2 ** self._failures, 5.0)
                logger.error("Pool child %d died at start-up (%s); respawning in %.1fs",
                             child.index, _describe_exit(status), delay)
                self._pause(delay)
            else:
                self._failures = 0
            if self._running:
                self._spawn(child.index)

    def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self._running and time.monotonic() < end:
            time.sleep(0.05)

    def cold_stop(self, committer: Any) -> None:
        """The children are killed; what they ran is recorded as their death says."""
        self.stop(wait=False)

    def dump_stacks(self) -> None:
        for pid in self.info().get("processes", []):
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def terminate(self, ids: set, signum: int) -> List[str]:
        """Send ``signum`` to the children running these task ids (revoke --terminate)."""
        killed = []
        for child in list(self.children.values()):
            if child.running is not None and child.running.id in ids:
                child.terminated = True
                _kill(child.pid, signum)
                killed.append(child.running.id)
        return killed

    def _lost(self, req: Request, child: Child, status: int) -> None:
        committer = self.executor.committer
        if child.terminated:
            logger.warning("Task %s[%s] terminated (revoked)", req.name, req.id)
            committer.revoked(req, "terminated")
            return
        if child.timed_out:
            hard, _ = self._limits(req)
            logger.error("Task %s[%s] killed by its hard time limit (%ss)", req.name, req.id,
                         hard)
            committer.complete(req, Outcome(states.FAILURE, exc=TimeLimitExceeded(hard)))
            return
        how = _describe_exit(status)
        exc = WorkerLostError(f"Worker exited prematurely: {how} Job: {req.id}.")
        acks_late = not req.early_ack
        if self._cold and acks_late:  # cold shutdown: unfinished late-ack work goes back
            committer.redeliver(req, count=False)
            return
        task = req.task
        requeue = acks_late and (
            task.reject_on_worker_lost if task.reject_on_worker_lost is not None
            else bool(self.executor.app.conf.task_reject_on_worker_lost))
        if requeue:
            logger.error("Pool child %d died running %s[%s] (%s); the message goes back "
                         "to the queue", child.index, req.name, req.id, how)
            committer.redeliver(req)
        else:
            logger.error("Task %s[%s] raised unexpected: %r", req.name, req.id, exc)
            committer.complete(req, Outcome(states.FAILURE, exc=exc))

    # -- size ----------------------------------------------------------------------------

    def grow(self, n: int = 1) -> int:
        for _ in range(n):
            self.concurrency += 1
            self._spawn(self.concurrency)
        return self.concurrency

    def shrink(self, n: int = 1) -> int:
        n = min(n, self.concurrency - 1)
        for _ in range(n):
            index = self.concurrency
            self.concurrency -= 1
            child = self.children.get(index)
            if child is not None:
                child.retiring = True
                self._give_back_queued(child)
                if not child.queue:
                    self._close(child)
        self._wake()
        return self.concurrency

    def info(self) -> dict:
        return {"implementation": self.kind, "max-concurrency": self.concurrency,
                "processes": sorted(c.pid for c in self.children.values()),
                "max-tasks-per-child": self.max_tasks, "max-memory-per-child": self.max_memory,
                "timeouts": [self.soft_time_limit, self.time_limit]}


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int, block: bool) -> Optional[int]:
    try:
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if done else None
