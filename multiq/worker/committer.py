"""Group commit: results first, then acks, for every outcome gathered since the last write.

Tasks finish into a queue; one thread writes whatever has gathered as result writes and
one broker transaction (see :mod:`multiq.worker.outbox`), so under load many tasks share
one or two round trips, and when idle a single result goes out at once. Results are
written before their messages are acknowledged: a crash in between runs the task again, it
never loses it. Nothing is dropped on a broker error: the batch is written again once Redis
answers.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from multiq import events, states
from multiq.backends.base import exception_to_dict, make_doc
from multiq.exceptions import BackendNotConfigured, TaskRevokedError, WorkerLostError
from multiq.message import peek
from multiq.redisconn import UNAVAILABLE
from multiq.sender import Commands
from multiq.worker.markers import Markers
from multiq.worker.outbox import Outbox

if TYPE_CHECKING:
    from multiq.app import MultiQ
    from multiq.broker.redis import Delivery, LostEntry
    from multiq.trace import Outcome
    from multiq.worker.execute import Request

logger = logging.getLogger("multiq.worker")

Item = Tuple[str, Any, Any]

# While the node has other work on hand, a finished task's result may wait this long for
# others to share its write; when the node runs out of work it goes out at once.
LINGER = 0.002
BATCH_MAX = 512  # items that are written without waiting out the linger


class Committer:
    """Writes outcomes to the result store and acknowledges their messages, in batches."""

    def __init__(self, app: MultiQ, consumer: str, hostname: str) -> None:
        self.app = app
        self.broker = app.broker
        self.consumer = consumer
        self.hostname = hostname
        try:
            self.backend: Any = app.backend
        except BackendNotConfigured:
            self.backend = None
        self.extended = bool(app.conf.result_extended)
        self.track_started = bool(app.conf.task_track_started)
        self.ignore_result = bool(app.conf.task_ignore_result)
        self.events_enabled = bool(app.conf.worker_send_task_events)
        self.events_stream = self.broker.keys.events
        self.outbox = Outbox(self.broker, self.backend)
        self.markers = Markers.of(self.broker, consumer)
        #: Set by the worker: whether the node has nothing on hand but this request.
        self.idle: Callable[[Request], bool] = lambda req: True
        self._items: Deque[Item] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._due = False  # write without waiting out the linger
        self._since = 0.0  # when the oldest waiting item came in
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="committer", daemon=True)

    # -- producers (any thread) --------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def mark_started(self, req: Request) -> None:
        """Record that the task starts: its early-ack marker (see :mod:`.markers`), and
        with ``track_started`` or events, the STARTED state and event in the next batch.

        The task does not wait for these writes: should the node die before the marker
        lands, the message counts as not started and runs again (at least once wins).
        """
        req.started = req.early_ack
        if req.early_ack and self.markers is not None:
            self.markers.post(req)
            if not (self.track_started or self.events_enabled):
                return
        self._put(("start", req, None))

    def complete(self, req: Request, outcome: Outcome) -> None:
        """Hand in an outcome; it may wait up to ``LINGER`` for company while the node has
        other work, and goes out at once when it has none."""
        self._put(("done", req, outcome), due=self.idle(req))

    def redeliver(self, req: Request, count: bool = True) -> None:
        """Put a message back in its queue (its process died, or a cold shutdown)."""
        self._put(("redeliver", req, count))

    def revoked(self, req: Request, reason: str) -> None:
        self._put(("revoked", req, reason))

    def refuse(self, d: Delivery, reason: str, task_id: Optional[str],
               exc: BaseException) -> None:
        self._put(("refuse", d, (reason, task_id, exc)))

    def send_event(self, type_: str, **fields: Any) -> None:
        """Queue an event (when enabled) to go out with the next batch."""
        if self.events_enabled:
            self._put(("event", events.event(type_, hostname=self.hostname, **fields), None))

    def _put(self, item: Item, due: bool = True) -> None:
        with self._cond:
            items = self._items
            items.append(item)
            if len(items) == 1:
                self._since = time.monotonic()
            elif not due and self._due is False and len(items) < BATCH_MAX:
                return  # the writer already knows of the batch and its deadline
            self._due = self._due or due
            self._cond.notify()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything handed in so far is written."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._due = True
            self._cond.notify_all()
            while self._items or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def stop(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.outbox.close()
            if self.markers is not None:
                self.markers.close()

    # -- the writer thread ---------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    self._cond.wait()
                if not self._items and self._stopping:
                    return
                while not (self._due or self._stopping or len(self._items) >= BATCH_MAX):
                    left = self._since + LINGER - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = list(self._items)
                self._items.clear()
                self._due = False
                self._busy = True
            try:
                self._retrying(lambda b=batch: self._commit(b))
            except Exception:
                logger.exception("Could not commit %d outcomes", len(batch))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _retrying(self, fun: Any) -> Any:
        delay = 0.1
        while True:
            try:
                return fun()
            except UNAVAILABLE as exc:
                logger.warning("Redis unavailable while committing (%s); retrying in %.1fs",
                               exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _commit(self, batch: List[Item]) -> None:
        results = Commands() if self.backend is not None else None
        acks = Commands()
        self._acks: List[Any] = []
        self._marked = 0  # the highest marker number the acks delete
        finished = {id(subject) for kind, subject, _ in batch
                    if kind in ("done", "revoked", "redeliver")}
        for kind, subject, detail in batch:
            if kind == "start":
                # a task that also finished within this batch needs no start marker
                self._start(results, acks, subject, marker=id(subject) not in finished)
            elif kind == "done":
                self._done(results, acks, subject, detail)
            elif kind == "event":
                events.add(acks, self.events_stream, subject)
            elif kind == "redeliver":
                self._redeliver(acks, subject, detail)
            elif kind == "revoked":
                self._revoked(results, acks, subject, detail)
            else:
                reason, task_id, exc = detail
                if task_id:
                    self._store(results, task_id, states.FAILURE, exception_to_dict(exc),
                                None, None, force=True)
                self.broker.dead_letter(acks, subject, reason)
                self._acks.append((subject, False))
        self.broker.ack_many(acks, self._acks)
        if self.markers is not None and self._marked:
            self.markers.confirm(self._marked)  # markers in place before acks delete them
        self.outbox.write(results, acks)  # results (on the replicas too), then acks

    def _ack(self, req: Request) -> None:
        self._acks.append((req.delivery, req.marked))
        if req.marker > self._marked:
            self._marked = req.marker

    def _revoked(self, results: Any, acks: Any, req: Request, reason: str) -> None:
        if self.events_enabled:
            events.add(acks, self.events_stream, events.event(
                "task-revoked", uuid=req.id, name=req.name, hostname=self.hostname,
                expired=reason == "expired", terminated=reason == "terminated"))
        exc = TaskRevokedError(reason)
        self._store(results, req.id, states.REVOKED, exception_to_dict(exc), None, req,
                    force=True)
        self._ack(req)

    def _redeliver(self, acks: Any, req: Request, count: bool) -> None:
        d = req.delivery
        n = d.redeliveries + (1 if count else 0)
        if n >= self.broker.max_deliveries:
            self.broker.dead_letter(acks, d, f"delivered {n} times; its process died each "
                                    "time")
            self._ack(req)
            logger.error("Task %s[%s] moved to the dead-letter stream after %d deliveries",
                         req.name, req.id, n)
            return
        acks.xadd(self.broker.keys.stream(d.queue, d.band), {"m": d.data, "n": n})
        self._ack(req)

    def _start(self, results: Any, acks: Any, req: Request, marker: bool = True) -> None:
        if req.early_ack and marker and not req.marked:
            self.broker.mark_started(acks, req.delivery, self.consumer)
            req.marked = True
        if self.events_enabled:
            events.add(acks, self.events_stream, events.event(
                "task-started", uuid=req.id, name=req.name, hostname=self.hostname,
                pid=req.worker_pid))
        if self.track_started and results is not None:
            doc = make_doc(req.id, states.STARTED, {"pid": req.worker_pid,
                                                    "hostname": self.hostname})
            self.backend.store(req.id, self._extend(doc, req), results)

    def _done(self, results: Any, acks: Any, req: Request, outcome: Outcome) -> None:
        d, state = req.delivery, outcome.state
        if self.events_enabled:
            self._outcome_event(acks, req, outcome)
        if state == states.SUCCESS:
            self._store(results, req.id, state, outcome.retval, None, req)
        elif state == states.FAILURE:
            self._store(results, req.id, state, exception_to_dict(outcome.exc),  # type: ignore
                        outcome.traceback, req)
        elif state == states.RETRY:
            self._retry(results, acks, req, outcome)
            return
        elif state == states.REJECTED:
            if outcome.requeue:
                acks.xadd(self.broker.keys.stream(d.queue, d.band), {"m": d.data, "n": 0})
            else:
                self.broker.dead_letter(acks, d, f"rejected: {outcome.exc}")
        self._ack(req)

    def _outcome_event(self, acks: Any, req: Request, outcome: Outcome) -> None:
        kind = {states.SUCCESS: "task-succeeded", states.FAILURE: "task-failed",
                states.RETRY: "task-retried", states.REJECTED: "task-rejected"}.get(
                    outcome.state)
        if kind is None:
            return
        runtime = time.time() - req.time_start if req.time_start else None
        fields: Dict[str, Any] = {"uuid": req.id, "name": req.name, "hostname": self.hostname,
                                  "runtime": runtime}
        if outcome.state == states.SUCCESS:
            fields["result"] = events.safe_repr(outcome.retval)
        elif outcome.exc is not None:
            fields["exception"] = events.safe_repr(outcome.exc)
            fields["traceback"] = outcome.traceback
        events.add(acks, self.events_stream, events.event(kind, **fields))

    def _retry(self, results: Any, acks: Any, req: Request, outcome: Outcome) -> None:
        plan = outcome.retry.plan  # type: ignore[union-attr]
        msg = req.message
        eta = self.app._eta(plan["eta"], plan["countdown"], time.time()) or time.time()
        retried = type(msg)(**{**msg.__dict__, "args": plan["args"], "kwargs": plan["kwargs"],
                               "retries": msg.retries + 1, "eta": eta})
        options = plan.get("options") or {}
        data = retried.encode(options.get("serializer") or msg.ctype,
                              options.get("compression") or msg.cenc)
        self._store(results, req.id, states.RETRY, exception_to_dict(outcome.exc),  # type: ignore
                    outcome.traceback, req, force=True)
        self.broker.requeue_delayed(acks, req.delivery, data, eta,
                                    f"{msg.id}:{retried.retries}")
        self._ack(req)

    def _store(self, pipe: Any, task_id: str, state: str, result: Any, tb: Optional[str],
               req: Optional[Request], force: bool = False) -> None:
        if pipe is None:
            return
        if not force and req is not None and self._ignored(req, state):
            return
        doc = make_doc(task_id, state, result, tb)
        self.backend.store(task_id, self._extend(doc, req), pipe)

    def _ignored(self, req: Request, state: str) -> bool:
        task = req.task
        ignore = req.message.options.get("ignore_result")
        if ignore is None:
            ignore = task.ignore_result if task.ignore_result is not None else self.ignore_result
        return bool(ignore) and not (state == states.FAILURE and task.store_errors_even_if_ignored)

    def _extend(self, doc: Dict[str, Any], req: Optional[Request]) -> Dict[str, Any]:
        if self.extended and req is not None:
            m = req.message
            doc.update(name=m.task, args=m.args, kwargs=m.kwargs, worker=self.hostname,
                       retries=m.retries, queue=m.queue)
        return doc

    # -- recovery of a dead node's started tasks ---------------------------------------------

    def lost(self, entries: Sequence[LostEntry], node: str) -> None:
        """Record WorkerLostError for started early-ack tasks of a dead node, then ack them."""
        if self.backend is not None:
            pipe = self.backend.client.pipeline(transaction=False)
            for e in entries:
                try:
                    env = peek(e.data)
                except Exception:
                    continue
                exc = WorkerLostError(f"Worker exited prematurely: node {node} was lost "
                                      "while running the task")
                doc = make_doc(str(env["id"]), states.FAILURE, exception_to_dict(exc))
                if self.extended:
                    doc.update(name=env.get("task"), args=env.get("args"),
                               kwargs=env.get("kwargs"), worker=node.split("|")[0],
                               retries=env.get("retries", 0), queue=env.get("queue"))
                self.backend.store(str(env["id"]), doc, pipe)
            pipe.execute()
        self.broker.ack_lost(entries)
