"""From a fetched entry to a finished call: decode, check, run, hand the outcome on."""
from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, Dict, Optional

from multiq import chordstate as chord
from multiq import events, serialization, signals, states
from multiq import message as message_mod
from multiq.describe import describe, safe_repr
from multiq.exceptions import ChordError, ContentDisallowed, DecodeError, NotRegistered
from multiq.task import Context, Task
from multiq.trace import format_traceback, send_links, trace
from multiq.worker.items import Outcome, Request
from multiq.worker.ratelimit import TokenBucket

if TYPE_CHECKING:
    from multiq.app import MultiQ
    from multiq.broker.redis import Delivery
    from multiq.worker.committer import Committer
    from multiq.worker.state import WorkerState

logger = logging.getLogger("multiq.worker")


class Executor:
    """Turns deliveries into requests and requests into outcomes for the committer."""

    def __init__(self, app: MultiQ, hostname: str, consumer: str, state: WorkerState,
                 committer: Committer, batched_marks: bool = False) -> None:
        self.app = app
        self.hostname = hostname
        self.consumer = consumer
        self.state = state
        self.committer = committer
        conf = app.conf
        self.accept = serialization.accepted(conf.accept_content)
        self.max_bytes = conf.task_message_max_bytes
        self.acks_late = bool(conf.task_acks_late)
        self.track_started = bool(conf.task_track_started)
        self._buckets: Dict[str, Optional[TokenBucket]] = {}
        self._bucket_lock = threading.Lock()
        self.info_logging = logger.isEnabledFor(logging.INFO)
        #: Start markers wait for the committer's next batch (see Committer.mark_started):
        #: set where nothing holds the writer back for long (threads; solo, whose fetches
        #: carry its batches).
        self.batched_marks = batched_marks
        #: A pool that runs calls in this process and must see each start and end (the
        #: gevent pool's time limits and ``terminate``): ``starting(req)``, ``ended()``.
        self.watcher: Optional[Any] = None

    # -- receiving ---------------------------------------------------------------------

    def prepare(self, d: Delivery) -> Optional[Request]:
        """Decode and check a delivery; anything that cannot run is committed here. Never
        raises for a message's fault (or a receiver's): that delivery alone is refused."""
        try:
            return self._prepare(d)
        except Exception as exc:
            logger.exception("Could not receive message %s", d.entry_id.decode())
            return self._refuse(d, "not received", f"{type(exc).__name__}: {exc}",
                                _envelope_of(d.data), exc=exc)

    def _prepare(self, d: Delivery) -> Optional[Request]:
        if self.max_bytes and len(d.data) > self.max_bytes:
            return self._refuse(d, "oversized", f"message of {len(d.data)} bytes exceeds "
                                f"task_message_max_bytes ({self.max_bytes})")
        try:
            env = message_mod.peek(d.data)
        except DecodeError as exc:  # (an object with an id but no task still has its id)
            return self._refuse(d, "undecodable", str(exc), _envelope_of(d.data), exc=exc)
        try:
            msg = message_mod.from_envelope(env, self.accept)
        except ContentDisallowed as exc:
            return self._refuse(d, "disallowed content", str(exc), env, exc=exc)
        except DecodeError as exc:
            return self._refuse(d, "undecodable", str(exc), env, exc=exc)
        task = self.app.tasks.get(msg.task)
        if task is None:
            logger.error("Received unregistered task of type %r (id %s). The message has been "
                         "moved to the dead-letter stream; is the module with this task "
                         "imported by the worker (-A, include, imports)?", msg.task, msg.id)
            signals.task_unknown.send(sender=self, name=msg.task, id=msg.id, message=msg)
            return self._refuse(d, "unknown task", str(NotRegistered(msg.task)), env,
                                exc=NotRegistered(msg.task))
        acks_late = task.acks_late if task.acks_late is not None else self.acks_late
        req = Request(d, msg, task, early_ack=not acks_late, info={"hostname": self.hostname})
        if self.info_logging:
            logger.info("Task %s[%s] received", msg.task, msg.id)
        if self.committer.events_enabled:
            self.committer.send_event(
                "task-received", uuid=msg.id, name=msg.task, args=events.safe_repr(msg.args),
                kwargs=events.safe_repr(msg.kwargs), retries=msg.retries, eta=msg.eta,
                expires=msg.expires, queue=msg.queue, root_id=msg.root_id,
                parent_id=msg.parent_id, **_membership(msg.options))
        if signals.task_received.has_receivers():
            signals.task_received.send(sender=self, request=req)
        return req

    def _refuse(self, d: Delivery, kind: str, reason: str,
                env: Optional[Dict[str, Any]] = None,
                exc: Optional[BaseException] = None) -> Optional[Request]:
        """Dead-letter ``d`` with the reason (and a FAILURE result when it has a usable id)."""
        task_id = (env or {}).get("id")
        if type(task_id) is not str or not task_id:
            task_id = None
        if kind != "unknown task":
            logger.error("Refused message %s (task id %s): %s: %s", d.entry_id.decode(),
                         task_id, kind, reason)
        self.committer.refuse(d, f"{kind}: {reason}", task_id,
                              exc or DecodeError(f"{kind}: {reason}"))
        return None

    def should_skip(self, req: Request) -> Optional[str]:
        """'revoked' or 'expired' when the request must not run."""
        if self.state.is_revoked(req.id):
            return "revoked"
        expires = req.message.expires
        if expires is not None and time.time() > expires:
            return "expired"
        return None

    def discard(self, req: Request) -> bool:
        """Whether ``req`` must not run (revoked, expired); if so it is committed so."""
        reason = self.should_skip(req)
        if not reason:
            return False
        logger.info("Discarding %s task %s[%s]", reason, req.name, req.id)
        signals.task_revoked.send(sender=req.task, request=req, terminated=False,
                                  signum=None, expired=reason == "expired")
        self.committer.revoked(req, reason)
        return True

    # -- running -----------------------------------------------------------------------

    def admit(self, req: Request, mark: bool = True) -> bool:
        """Checks before a request runs: revoked or expired ones are committed here.

        Waits for the task's rate limit, then (with ``mark``) records the start."""
        if self.discard(req):
            return False
        self._rate_limit(req.task)
        if mark:  # (start(), inline: the hot path)
            req.time_start = time.time()
            req.worker_pid = os.getpid()
            self.mark(req, self.batched_marks)
        return True

    def start(self, req: Request) -> None:
        """``req`` starts now: its start time, and its start recorded (see :meth:`mark`)."""
        req.time_start = time.time()
        req.worker_pid = os.getpid()
        self.mark(req, self.batched_marks)

    def mark(self, req: Request, batched: bool = False) -> None:
        """Record that ``req`` starts (early ack marker, STARTED state, task-started)."""
        if req.early_ack or self.track_started or self.committer.events_enabled:
            self.committer.mark_started(req, batched)

    def fail(self, req: Request, exc: BaseException, here: bool = True) -> None:
        """What running ``req`` raised outside its task's own code (whose errors are
        outcomes already): log it and commit the request as FAILURE, unless its outcome
        was handed in already (``here``: see ``Committer.complete``). Never raises."""
        try:
            logger.error("Task %s[%s] could not be run: %r", req.name, req.id, exc,
                         exc_info=exc)
            if not req.committed:
                tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                outcome = Outcome(states.FAILURE, exc=exc, traceback=tb)
                if here:
                    self.committer.complete(req, outcome)
                else:
                    self.committer.complete(req, outcome, here=False)
        except Exception:
            logger.exception("Could not record the failure of %s[%s]", req.name, req.id)

    def execute(self, req: Request) -> None:
        """Run one request in this thread and pass its outcome to the committer."""
        if not self.admit(req):
            return
        opts = req.message.options
        request = self.context(req)
        started = time.monotonic()
        self._starting(req)
        try:
            outcome = self.chord_values(req, request) if opts.get("chord_of") else None
            if outcome is None:
                outcome = trace(req.task, request)
            self.finish(req, request, outcome, time.monotonic() - started)
        finally:
            self._ended()
        self.committer.complete(req, outcome)

    def finish(self, req: Request, request: Context, outcome: Outcome, runtime: float) -> None:
        """After the call: count and log it, and apply its callbacks (see ``send_links``);
        what they send goes in ``outcome.sends``, to be written with the task's ack."""
        m = req.message
        opts = m.options
        self.state.count(m.task)
        if self.info_logging or outcome.state != states.SUCCESS:
            self._log(req, outcome, runtime)
        if outcome.state in (states.SUCCESS, states.FAILURE):
            if opts and (opts.get("link") or opts.get("link_error") or opts.get("chain")):
                # what they send goes out with this task's ack, in one transaction
                with self.app.deferred_publishes() as sends:
                    send_links(req.task, request, outcome)
                outcome.sends = sends or None
            else:
                send_links(req.task, request, outcome)

    def _starting(self, req: Request) -> None:
        """Called as ``req``'s task is about to be called (a prefork child starts its time
        limits here; the ``watcher``, if any, is told)."""
        if self.watcher is not None:
            self.watcher.starting(req)

    def _ended(self) -> None:
        """Called once the call that :meth:`_starting` announced, and its callbacks, have
        returned or raised; its outcome is handed in next (unless this raises)."""
        if self.watcher is not None:
            self.watcher.ended()

    def context(self, req: Request) -> Context:
        """The task's ``request``, as Celery fills it."""
        m = req.message
        opts = m.options
        request = Context(
            id=m.id, task=m.task, args=m.args, kwargs=m.kwargs, retries=m.retries,
            is_eager=False, called_directly=False, hostname=self.hostname,
            delivery_info={"routing_key": m.queue, "priority": m.priority,
                           "redelivered": req.delivery.redeliveries > 0},
            eta=m.eta, expires=m.expires, headers=m.headers, root_id=m.root_id or m.id,
            parent_id=m.parent_id, origin=m.headers.get("origin"), priority=m.priority,
            ignore_result=bool(m.options.get("ignore_result")),
            timelimit=tuple(opts.get("timelimit") or (req.task.time_limit,
                                                        req.task.soft_time_limit)),
            callbacks=m.options.get("link"), errbacks=m.options.get("link_error"),
            shadow=m.shadow, reply_to=None, correlation_id=m.id,
        )
        if opts:
            request.__dict__.update(
                chain=opts.get("chain"), group=opts.get("group_id"),
                group_index=opts.get("group_index"), chord=opts.get("chord"),
                replaced_task_nesting=opts.get("replaced_task_nesting") or 0)
        return request

    def chord_values(self, req: Request, request: Context) -> Optional[Outcome]:
        """Prepend the header's values to a chord body's arguments; its FAILURE outcome
        (ChordError) when a header task failed."""
        try:
            values = chord.gather(self.app.backend, str(req.message.options["chord_of"]))
        except ChordError as exc:
            return Outcome(states.FAILURE, exc=exc, traceback=format_traceback(exc))
        request.args = [values, *request.args]
        return None

    def _log(self, req: Request, outcome: Outcome, runtime: float) -> None:
        if outcome.state == states.SUCCESS:
            if self.info_logging:
                logger.info("Task %s[%s] succeeded in %.6fs: %s", req.name, req.id, runtime,
                            safe_repr(outcome.retval))
        elif outcome.state == states.FAILURE:
            logger.error("Task %s[%s] raised unexpected: %s\n%s", req.name, req.id,
                         describe(outcome.exc), outcome.traceback)
        elif outcome.state == states.RETRY:
            logger.info("Task %s[%s] retry: %s", req.name, req.id, outcome.retry)

    def _rate_limit(self, task: Task) -> None:
        bucket = self._buckets.get(task.name, False)
        if bucket is False:
            bucket = self._rate_limit_of(task)
        if bucket is not None:
            bucket.take()  # type: ignore[union-attr]

    def _rate_limit_of(self, task: Task) -> Optional[TokenBucket]:
        with self._bucket_lock:
            rate = task.rate_limit or self.app.conf.task_default_rate_limit
            bucket = TokenBucket.from_rate(rate) if rate else None
            self._buckets[task.name] = bucket
        return bucket

    def rate_wait(self, task: Task) -> float:
        """Take a token of ``task``'s rate limit without waiting: 0.0 when taken (or there
        is no limit), else how long to wait before asking again."""
        bucket = self._buckets.get(task.name, False)
        if bucket is False:
            self._rate_limit_of(task)
            bucket = self._buckets[task.name]
        return bucket.try_take() if bucket is not None else 0.0  # type: ignore[union-attr]

    def rate_limited(self, task: Task) -> bool:
        """Whether running ``task`` may have to wait for its rate limit."""
        bucket = self._buckets.get(task.name, False)
        if bucket is False:
            return bool(task.rate_limit or self.app.conf.task_default_rate_limit)
        return bucket is not None

    def set_rate_limit(self, name: str, rate: Optional[str]) -> None:
        with self._bucket_lock:
            self._buckets[name] = TokenBucket.from_rate(rate) if rate else None


def _envelope_of(data: bytes) -> Optional[Dict[str, Any]]:
    """What a refused message's bytes hold as a JSON object (for its id), or None."""
    import json

    try:
        env = json.loads(data)
    except Exception:  # (RecursionError included)
        return None
    return env if type(env) is dict else None


def _membership(options: Dict[str, Any]) -> Dict[str, Any]:
    """The group and chord a task belongs to (a chord's header task, or its body's
    ``chord_of``), for its ``task-received`` event."""
    if not options:
        return {}
    chord = options.get("chord")
    return {"group_id": options.get("group_id"),
            "chord_id": chord.get("id") if type(chord) is dict else options.get("chord_of")}
