"""What a batch of outcomes writes to Redis, recorded as commands.

For each item a worker hands in (a task started or finished, a message to redeliver,
revoke or refuse, an event), the :class:`Recorder` records the result document writes and
the broker writes — acks, requeues, dead letters, events — on two
:class:`~multiq.broker.wire.Commands`. Whoever sends them (the committer thread, or a prefork
child for its own tasks) writes the results first, then the broker side.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from multiq import events, states
from multiq.backends.base import exception_to_dict, make_doc
from multiq.broker.wire import Commands
from multiq.describe import describe, safe_str
from multiq.exceptions import BackendNotConfigured, EncodeError, TaskRevokedError, WorkerLostError
from multiq.message import peek
from multiq.metrics import tally
from multiq.worker import flow
from multiq.worker.flow import FINAL
from multiq.worker.items import FINISHING, Done, Event, Item, Redeliver, Revoked, Started

if TYPE_CHECKING:
    from multiq.app import MultiQ
    from multiq.broker.redis import LostEntry
    from multiq.worker.items import Outcome, Request

logger = logging.getLogger("multiq.worker")



@dataclass
class Recorded:
    """A batch's commands, and the highest start-marker number its acks delete."""

    results: Optional[Commands]  # None without a result backend
    acks: Commands
    marked: int
    #: chord counts to run after the results, whose replies may add sends to ``acks``
    #: (when they cannot ride in the result write: see multiq.worker.flow)
    chords: Optional[Commands] = None
    #: the Prometheus counters' increments (multiq.metrics.tally), sent right after the
    #: acks' transaction; an error of theirs is logged, it never fails the batch
    counts: Optional[Commands] = None


class LostPlan(NamedTuple):
    """The result writes for a dead node's started tasks (each an atomic "unless final"),
    and (task id, options, error) of each, in the same order, for their chords and chains."""

    results: Commands
    lost: List[Tuple[str, Any, Dict[str, Any]]]


class Recorder:
    """Turns outcomes into commands, as the app's settings say."""

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
        #: count outcomes in the ``metrics:*`` hashes (multiq.metrics.tally)
        self.metrics = bool(app.conf.worker_metrics)
        options = app.conf.broker_transport_options or {}
        self.reject_backoff = float(options.get("reject_backoff", 1.0))
        self.reject_backoff_max = float(options.get("reject_backoff_max", 60.0))
        self.flow = flow.Flow(app) if self.backend is not None else None
        self._acks: List[Any] = []  # of the batch being recorded (one thread records)
        self._chords = Commands()
        self._marked = 0

    def record(self, batch: Sequence[Item]) -> Recorded:
        """The commands that write ``batch``: result writes, then acks and the rest."""
        results = Commands() if self.backend is not None else None
        acks = Commands()
        self._chords = Commands()
        self._acks = []
        self._marked = 0  # the highest marker number the acks delete
        finished = {id(item[0]) for item in batch if isinstance(item, FINISHING)}
        for item in batch:
            if isinstance(item, Done):
                self._done(results, acks, item.req, item.outcome)
            elif isinstance(item, Started):
                # a task that also finished within this batch needs no start marker
                self._start(results, acks, item.req, marker=id(item.req) not in finished)
            elif isinstance(item, Event):
                events.add(acks, self.events_stream, item.fields)
            elif isinstance(item, Redeliver):
                self._redeliver(acks, item.req, item.counted)
            elif isinstance(item, Revoked):
                self._revoked(results, acks, item.req, item.reason)
            else:
                if item.task_id:
                    self._store(results, item.task_id, states.FAILURE,
                                exception_to_dict(item.exc), None, None, force=True)
                self.broker.dead_letter(acks, item.delivery, item.reason)
                self._acks.append((item.delivery, False))
        self.broker.ack_many(acks, self._acks)
        return Recorded(results, acks, self._marked, self._chords or None, self._counts(batch))

    def _counts(self, batch: Sequence[Item]) -> Optional[Commands]:
        if not self.metrics:
            return None
        counts = tally.tally(batch)
        if not counts:
            return None
        pipe = Commands()
        tally.record(pipe, self.broker.keys, counts)
        return pipe

    def lost(self, entries: Sequence[LostEntry], node: str) -> LostPlan:
        """WorkerLostError for each started early-ack task of the dead ``node`` (the
        backend's write keeps a final outcome stored meanwhile); undecodable entries get
        no result, only their ack."""
        results, lost = Commands(), []
        for e in entries:
            try:
                env = peek(e.data)
            except Exception:
                continue
            task_id = str(env["id"])
            exc = WorkerLostError(f"Worker exited prematurely: node {node} was lost while "
                                  "running the task")
            doc = make_doc(task_id, states.FAILURE, exception_to_dict(exc))
            if self.extended:
                doc.update(name=env.get("task"), args=env.get("args"),
                           kwargs=env.get("kwargs"), worker=node.split("|")[0],
                           retries=env.get("retries", 0), queue=env.get("queue"))
            self.backend.store_unless_final(task_id, doc, results)
            lost.append((task_id, env.get("options"), exception_to_dict(exc)))
        self.backend.seal(results)
        return LostPlan(results, lost)

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
        state = outcome.state
        if self.events_enabled:
            self._outcome_event(acks, req, outcome)
        if state == states.SUCCESS:
            self._store(results, req.id, state, outcome.retval, None, req,
                        children=outcome.children)
        elif state == states.FAILURE:
            self._store(results, req.id, state, exception_to_dict(outcome.exc),  # type: ignore
                        outcome.traceback, req, children=outcome.children)
        elif state == states.RETRY:
            self._retry(results, acks, req, outcome)
            return
        elif state == states.REJECTED:
            self._rejected(results, acks, req, outcome)
        for queue, data, priority, eta, member in outcome.sends or ():
            self.broker.publish(queue, data, priority=priority, eta=eta, member=member,
                                pipe=acks)
        self._ack(req)

    def _rejected(self, results: Any, acks: Any, req: Request, outcome: Outcome) -> None:
        """``Reject(requeue=True)`` counts as a delivery: back in the queue after a back-off
        until the delivery limit, then dead-lettered. Dead-lettered, the task is FAILURE
        with the Reject as its exception, so ``get()`` does not wait for ever."""
        d = req.delivery
        number = d.redeliveries + 1  # this delivery's number
        why = _reject_reason(outcome.exc)
        if outcome.requeue and number < self.broker.max_deliveries:
            delay = self.reject_delay(number)
            logger.warning("Task %s[%s] rejected on delivery %d of at most %d, requeued in "
                           "%gs: %s", req.name, req.id, number, self.broker.max_deliveries,
                           delay, why)
            member = f"{req.id}:reject:{d.band}:{d.entry_id.decode()}"  # one per attempt
            self.broker.add_delayed(acks, d.queue, d.band, member, d.data,
                                    time.time() + delay, redeliveries=number)
            return
        reason = f"rejected {number} times: {why}" if outcome.requeue else f"rejected: {why}"
        logger.error("Task %s[%s] %s (delivery %d); moved to the dead-letter stream",
                     req.name, req.id, reason, number)
        self._store(results, req.id, states.FAILURE, exception_to_dict(outcome.exc),  # type: ignore
                    outcome.traceback, req)
        self.broker.dead_letter(acks, d, reason)

    def reject_delay(self, number: int) -> float:
        """Seconds before delivery ``number + 1`` of a rejected message: the
        ``reject_backoff`` transport option (1 s) doubled per delivery, at most
        ``reject_backoff_max`` (60 s)."""
        return float(min(self.reject_backoff * 2 ** min(number - 1, 32), self.reject_backoff_max))

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
               req: Optional[Request], force: bool = False,
               children: Optional[list] = None) -> None:
        if pipe is None:
            return
        ignored = not force and req is not None and self._ignored(req, state)
        settles = req is not None and req.message.options and state in FINAL
        if ignored and not settles:
            return
        doc = make_doc(task_id, state, result, tb, children=children)
        try:
            data = self.backend.encode(self._extend(doc, req))
        except Exception as exc:  # e.g. a return value JSON cannot carry: the task fails
            err = EncodeError(safe_str(exc))
            logger.error("Task %s[%s] result cannot be stored: %r", getattr(req, "name", "?"),
                         task_id, err)
            state, result = states.FAILURE, exception_to_dict(err)
            doc = make_doc(task_id, state, result, tb)
            try:
                data = self.backend.encode(self._extend(doc, req))
            except Exception:  # its extended fields (arguments) cannot be encoded either
                data = self.backend.encode(make_doc(task_id, state, result, tb))
        if not settles:
            self.backend.store_encoded(task_id, data, pipe)
            return
        assert req is not None and self.flow is not None
        writes = flow.writes(req.message, state, self.app)
        own = next((w for w in writes if w.task_id == task_id), None)
        if own is not None:
            self.flow.record(pipe, self._chords, own, data, store=not ignored)
        elif not ignored:
            self.backend.store_encoded(task_id, data, pipe)
        for write in writes:  # the chain's steps that will not run now
            if write is not own:
                self.flow.record(pipe, self._chords, write, flow.encode_doc(
                    self.backend, write.task_id, state, result, tb), store=True)

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


def _reject_reason(exc: Any) -> str:
    reason = getattr(exc, "reason", None)
    return safe_str(reason) if reason is not None else describe(exc)
