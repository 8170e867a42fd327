"""The prefork pool: forked children that each consume for themselves.

Each child is a consumer of its own, as a solo node is (see
:mod:`multiq.pools.selffed_child`): it fetches, runs inline and commits its outcomes
riding on its fetches, under a consumer name that is alive while its node's liveness key
lives (:func:`multiq.keys.owner`). The node's main process supervises: it forks children
and replaces those that leave (``max_tasks_per_child``, ``max_memory_per_child``, a
crash), kills those past a hard time limit or running a task revoked with ``terminate``,
and reads what each runs from its shared-memory slot (:mod:`multiq.pools.slots`), which
is also what ``inspect active`` shows. When a child dies the node settles what it held at
once (:mod:`multiq.pools.selffed_lost`), never waiting for a heartbeat to expire.

One thread watches the children: their pipes (a closed pipe is a death, seen at once),
their exit, their deadlines; and when a child is idle while another holds messages behind
a long task, it asks that one to hand them back, for the idle one to take.
"""
from __future__ import annotations

import gc
import logging
import os
import selectors
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple

from multiq.keys import child_consumer
from multiq.message import from_envelope, peek
from multiq.pools.base import Fail, Pool
from multiq.pools.channel import Channel
from multiq.pools.selffed_child import ChildSpec, before_fork, child_main
from multiq.pools.selffed_lost import Death, describe_exit, resolve
from multiq.pools.slots import IDLE, RUNNING, SlotTable, SlotView
from multiq.redisconn import REDIS_ERRORS
from multiq.worker.items import Request

if TYPE_CHECKING:
    from multiq.worker.consumer import Consumer
    from multiq.worker.execute import Executor

logger = logging.getLogger("multiq.worker")

TICK = 0.05  # seconds between looks at the children's slots (deadlines, rebalancing)
LONG_TASK = 0.3  # a task running this long, with messages behind it, while a child idles
IDLE_FOR = 0.05  # ... for this long: those messages go back to the queue


@dataclass
class Child:
    index: int
    pid: int
    conn: Channel
    consumer: str
    born: float
    retired: bool = False  # told to stop for good (shrink, node stop): not replaced
    terminated: Optional[bytes] = None  # the entry it was killed for (revoke terminate)
    timed_out: Optional[bytes] = None
    handed_back: float = 0.0  # when it was last asked to hand back its reserve
    totals: Dict[str, int] = field(default_factory=dict)
    reported: threading.Event = field(default_factory=threading.Event)


class SelfFedPool(Pool):
    kind = "prefork"

    def __init__(
        self, executor: Executor, consumer: str, concurrency: int, prefetch: int,
        queues: Callable[[], List[str]], *, max_tasks_per_child: Optional[int] = None,
        max_memory_per_child: Optional[int] = None, time_limit: Optional[float] = None,
        soft_time_limit: Optional[float] = None,
        child_setup: Optional[Callable[[int], None]] = None,
        announce: Callable[[List[str]], None] = lambda names: None,
        fail: Optional[Fail] = None,
    ) -> None:
        super().__init__(executor.execute, concurrency, fail=fail)
        self.executor = executor
        self.app = executor.app
        self.node_consumer = consumer
        self.prefetch = max(1, prefetch)
        self.queues = queues
        self.max_tasks = max_tasks_per_child
        self.max_memory = max_memory_per_child
        self.time_limit = time_limit
        self.soft_time_limit = soft_time_limit
        self.child_setup = child_setup or (lambda index: None)
        #: writes the liveness keys of new children's consumer names (before they fetch)
        self.announce = announce
        self._serving = False  # children consume (the node has beat once: it is alive)
        conf = self.app.conf
        self._hard_default = time_limit or conf.task_time_limit
        self._soft_default = soft_time_limit or conf.task_soft_time_limit
        self.children: Dict[int, Child] = {}
        self.table = SlotTable()
        self._lock = threading.RLock()
        self._running = False
        self._cold = False
        self._failures = 0
        self._generation = 0
        self._every_queue: List[str] = []  # every queue a child may hold entries of
        self._unresolved: List[Death] = []
        self._retry_due = 0.0
        self._dead_totals: Counter = Counter()
        self._active: Dict[Tuple[int, bytes], Request] = {}
        self._active_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: Optional[threading.Thread] = None
        self._parent_pid = os.getpid()
        self._idle = threading.Event()
        self._spares: Any = None  # (see start)

    # -- life --------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        self._note_queues(self.queues())
        # What the children would each build first is built here, once, for them to share:
        # building it in a child writes to every shared object it touches (on the first
        # of each of their pages, a private copy). The spares are never used here.
        before_fork()
        try:
            self._spares = self.app._spares()
        except Exception as exc:  # (a bad setting): each child builds its own, and says so
            logger.debug("Prefork: no clients built for the children: %r", exc)
        # What exists now is the children's to share: no collection in them touches it (a
        # collection writes to every object it visits, unsharing its page). Once, not at
        # every respawn: what is frozen is never collected in the node either.
        gc.freeze()
        for _ in range(self.concurrency):
            self._spawn()
        self._thread = threading.Thread(target=self._watch, name="pool-supervisor",
                                        daemon=True)
        self._thread.start()

    def serve(self, consumer: Consumer, should_stop: Callable[[], bool]) -> None:
        """The children consume (the node's first beat made their names alive); the
        node's main thread waits to be stopped."""
        with self._lock:
            self._serving = True
            for child in self.children.values():
                self._tell(child, "go")
        while not should_stop():
            self._idle.wait(0.1)

    def _free_index(self) -> int:
        index = 1
        while index in self.children:
            index += 1
        return index

    def _spawn(self, index: Optional[int] = None) -> None:
        with self._lock:
            index = index or self._free_index()
            self._generation += 1
            name = child_consumer(self.node_consumer, index, self._generation)
            spec = ChildSpec(
                index, name, self.executor.hostname, list(self.queues()), self.prefetch,
                self.max_tasks, self.max_memory, self._hard_default, self._soft_default,
                bool(self.executor.committer.events_enabled),
                max([index, self.concurrency, *self.children]), self.child_setup)
            if self._serving:
                try:
                    self.announce([name])
                except REDIS_ERRORS as exc:  # the next heartbeat writes it
                    logger.warning("Could not announce pool child %d (%s)", index, exc)
            parent_end, child_end = socket.socketpair()
            pid = os.fork()
            if pid == 0:  # the child: drop every descriptor that belongs to the parent
                parent_end.close()
                self._wake_r.close()
                self._wake_w.close()
                for other in self.children.values():
                    other.conn.close()
                child_main(self.app, spec, self.table, Channel(child_end), self._parent_pid,
                           self._spares)
            child_end.close()
            child = Child(index, pid, Channel(parent_end), name, time.monotonic())
            self.children[index] = child
            self._selector.register(child.conn, selectors.EVENT_READ, child)
            if self._serving:
                self._tell(child, "go")
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _tell(self, child: Child, *command: Any) -> None:
        try:
            child.conn.send([command])
        except OSError:
            pass  # it died: the watcher deals with it

    def stop(self, wait: bool = True, timeout: float = 0.0) -> None:
        """Warm: each child hands back what it has not started, finishes its task and
        leaves; cold (``wait=False``): the children are killed."""
        self._running = False
        self._cold = self._cold or not wait
        deadline = time.monotonic() + timeout if timeout else None
        for child in list(self.children.values()):
            child.retired = True
            if wait:
                self._tell(child, "stop")
            else:
                _kill(child.pid, signal.SIGKILL)
        self._wake()
        while self.children and (deadline is None or time.monotonic() < deadline):
            if self._thread is None or not self._thread.is_alive():
                self._watch_once()
            else:
                time.sleep(0.02)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def cold_stop(self, committer: Any) -> None:
        """The children are killed; what they ran is settled as their death says."""
        self.stop(wait=False, timeout=10.0)

    # -- the watcher thread ------------------------------------------------------------

    def _watch(self) -> None:
        while self._running or self.children:
            try:
                self._watch_once()
            except Exception:  # a bug must not end the thread that watches the children
                logger.exception("Prefork pool supervisor failed; going on")
                time.sleep(0.05)

    def _watch_once(self) -> None:
        try:
            events = self._selector.select(TICK)
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
        self._reap()
        self._enforce_deadlines()
        self._rebalance()
        if self._unresolved and time.monotonic() >= self._retry_due:
            self._retry_resolve()

    def _receive(self, child: Child, reap: bool = True) -> None:
        try:
            records = child.conn.receive()
        except (EOFError, OSError):
            self._unwatch(child)  # it left or died: reap it now
            if reap:
                self._reap(child, block=True)
            return
        for record in records:
            if record[0] == "totals":
                child.totals = dict(record[1])
                child.reported.set()

    def _unwatch(self, child: Child) -> None:
        if child.conn.closed:
            return
        try:
            self._selector.unregister(child.conn)
        except (KeyError, ValueError):
            pass
        child.conn.close()

    def _reap(self, only: Optional[Child] = None, block: bool = False) -> None:
        for child in [only] if only is not None else list(self.children.values()):
            status = _waitpid(child.pid, block)
            if status is not None:
                self._on_exit(child, status)

    def _on_exit(self, child: Child, status: int) -> None:
        with self._lock:
            if self.children.get(child.index) is not child:
                return
            while not child.conn.closed and child.conn.poll():  # its last words first
                try:
                    self._receive(child, reap=False)
                except Exception:
                    break
            del self.children[child.index]
        self._unwatch(child)
        self._dead_totals.update(child.totals)
        slot = self.table.slot(child.index)
        death = Death(child.index, child.pid, child.consumer, status, slot.read(),
                      child.terminated, child.timed_out, self._cold)
        self._settle(death)
        slot.clear()
        if self._running and not child.retired:
            self._replace(child, death)

    def consumers(self) -> List[str]:
        """The consumer names the node's heartbeat keeps alive: its children's, and those
        of dead children whose messages are not settled yet."""
        return [c.consumer for c in list(self.children.values())] + \
            [d.consumer for d in list(self._unresolved)]

    def _settle(self, death: Death) -> None:
        try:
            resolve(self.executor, death, list(self._every_queue))
            self.app.broker.forget_node(death.consumer)
        except REDIS_ERRORS as exc:
            logger.error("Could not settle the messages of pool child %d (%s); trying "
                         "again shortly", death.index, exc)
            self._unresolved.append(death)
            self._retry_due = time.monotonic() + 1.0
        except Exception:
            logger.exception("Could not settle the messages of pool child %d", death.index)

    def _retry_resolve(self) -> None:
        deaths, self._unresolved = self._unresolved, []
        for death in deaths:
            self._settle(death)

    def _replace(self, child: Child, death: Death) -> None:
        lived = time.monotonic() - child.born
        if death.status and lived < 1.0 and not death.view.since:
            self._failures += 1  # dies at start-up: do not respawn in a tight loop
            delay = min(0.1 * 2 ** self._failures, 5.0)
            logger.error("Pool child %d died at start-up (%s); respawning in %.1fs",
                         child.index, describe_exit(death.status), delay)
            end = time.monotonic() + delay
            while self._running and time.monotonic() < end:
                time.sleep(0.05)
        else:
            self._failures = 0
        if self._running and child.index not in self.children:
            self._spawn(child.index)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            view = self.table.read(child.index)
            if view.state == RUNNING and view.deadline and now >= view.deadline \
                    and view.pid == child.pid and child.timed_out != view.entry:
                child.timed_out = view.entry
                logger.error("Hard time limit (%ss) exceeded for %s; killing pool child %d "
                             "(pid %d)", f"{view.hard:g}", view.task_id, child.index,
                             child.pid)
                _kill(child.pid, signal.SIGKILL)

    def _rebalance(self) -> None:
        """A child idles while another holds messages behind a long task: those go back."""
        if len(self.children) < 2 or not self._running:
            return
        now = time.monotonic()
        views = {c.index: self.table.read(c.index) for c in self.children.values()}
        if not any(v.pid and v.state == IDLE and not v.reserved and now - v.since >= IDLE_FOR
                   and v.since for v in views.values()):
            return
        for child in list(self.children.values()):
            v = views[child.index]
            if v.state == RUNNING and v.reserved and now - v.since >= LONG_TASK \
                    and now - child.handed_back >= LONG_TASK:
                child.handed_back = now
                self._tell(child, "handback")

    # -- what the node is asked ----------------------------------------------------------

    def revoked(self, ids: Set[str]) -> None:
        """The children follow revokes through the node (see selffed_child)."""
        for child in list(self.children.values()):
            self._tell(child, "revoke", sorted(ids))

    def forward(self, method: str, arguments: dict) -> None:
        """A control command the children must apply too (queues, limits, events)."""
        if method == "add_consumer":
            self._note_queues([arguments["queue"]])
        for child in list(self.children.values()):
            self._tell(child, "control", method, dict(arguments))

    def _note_queues(self, queues: List[str]) -> None:
        for queue in queues:
            if queue not in self._every_queue:
                self._every_queue.append(queue)

    def _views(self) -> List[Tuple[Child, SlotView]]:
        out = []
        for child in list(self.children.values()):
            view = self.table.read(child.index)
            if view.pid == child.pid:
                out.append((child, view))
        return out

    def busy(self) -> int:
        return sum(1 for _, v in self._views() if v.state == RUNNING)

    def waiting(self) -> int:
        return sum(v.reserved for _, v in self._views())

    def active(self) -> List[Request]:
        """The tasks the children run now, read from their slots (and their messages
        from Redis, once each)."""
        with self._active_lock:
            return self._running_requests()

    def _running_requests(self) -> List[Request]:
        out, seen = [], set()
        for child, view in self._views():
            if view.state != RUNNING:
                continue
            key = (child.index, view.entry)
            seen.add(key)
            req = self._active.get(key)
            if req is None:
                req = self._read_request(view.queue, view.band, view.entry)
                if req is None:
                    continue
                req.started, req.time_start = view.early_ack, view.start
                req.worker_pid = child.pid
                self._active[key] = req
            out.append(req)
        for key in [k for k in self._active if k not in seen]:
            del self._active[key]
        return out

    def held(self) -> List[Request]:
        """What the children run and hold unstarted (read from Redis: see queued)."""
        return self.active() + self.queued()

    def queued(self) -> List[Request]:
        """What the children hold and have not started, oldest first per child."""
        running = {(v.queue, v.band, v.entry) for _, v in self._views() if v.state == RUNNING}
        broker, out = self.app.broker, []
        for child in list(self.children.values()):
            for d in broker.own_pending(child.consumer, list(self._every_queue)):
                if (d.queue, d.band, d.entry_id) not in running:
                    req = self._decode(d)
                    if req is not None:
                        out.append(req)
        return out

    def _read_request(self, queue: str, band: int, entry: bytes) -> Optional[Request]:
        from multiq.broker.redis import _delivery

        broker = self.app.broker
        try:
            rows = broker.client.xrange(broker.keys.stream(queue, band), entry, entry)
        except REDIS_ERRORS:
            return None
        if not rows:
            return None
        return self._decode(_delivery(queue, band, rows[0][0], rows[0][1]))

    def _decode(self, d: Any) -> Optional[Request]:
        try:
            msg = from_envelope(peek(d.data), self.executor.accept)
        except Exception:
            return None
        task = self.app.tasks.get(msg.task)
        if task is None:
            return None
        acks_late = task.acks_late if task.acks_late is not None else self.executor.acks_late
        return Request(d, msg, task, early_ack=not acks_late,
                       info={"hostname": self.executor.hostname})

    def totals(self) -> Dict[str, int]:
        """Tasks run by name, by every child so far (each asked, briefly)."""
        children = list(self.children.values())
        for child in children:
            child.reported.clear()
            self._tell(child, "totals")
        deadline = time.monotonic() + 1.0
        for child in children:
            child.reported.wait(max(0.0, deadline - time.monotonic()))
        total = Counter(self._dead_totals)
        for child in children:
            total.update(child.totals)
        return dict(total)

    def terminate(self, ids: Set[str], signum: int) -> List[str]:
        """Send ``signum`` to the children running these task ids (revoke --terminate)."""
        killed = []
        for child, view in self._views():
            if view.state == RUNNING and view.task_id in ids:
                child.terminated = view.entry
                _kill(child.pid, signum)
                killed.append(view.task_id)
        return killed

    def dump_stacks(self) -> None:
        for child in list(self.children.values()):
            _kill(child.pid, signal.SIGUSR1)

    # -- size ----------------------------------------------------------------------------

    def grow(self, n: int = 1) -> int:
        for _ in range(n):
            self.concurrency += 1
            self._spawn()
        return self.concurrency

    def shrink(self, n: int = 1) -> int:
        n = min(n, self.concurrency - 1)
        keep = [c for c in self.children.values() if not c.retired]
        for child in sorted(keep, key=lambda c: -c.index)[:n]:
            child.retired = True
            self._tell(child, "stop")
        self.concurrency -= n
        return self.concurrency

    def free_slots(self) -> int:
        return 0

    def info(self) -> dict:
        return {"implementation": self.kind, "max-concurrency": self.concurrency,
                "processes": sorted(c.pid for c in self.children.values() if not c.retired),
                "max-tasks-per-child": self.max_tasks, "max-memory-per-child": self.max_memory,
                "timeouts": [self.soft_time_limit, self.time_limit]}


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _waitpid(pid: int, block: bool) -> Optional[int]:
    try:
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if done else None
