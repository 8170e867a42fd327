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
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, List, Optional, Sequence, Set

from multiq import events, states
from multiq.broker.wire import Commands, Writer
from multiq.chordstate import send_commands
from multiq.redisconn import UNAVAILABLE
from multiq.worker.items import Done, Event, Item, Redeliver, Refused, Revoked, Started
from multiq.worker.markers import Markers
from multiq.worker.outbox import Outbox, uncounted
from multiq.worker.record import Recorder

if TYPE_CHECKING:
    from multiq.app import MultiQ
    from multiq.broker.redis import Delivery, LostEntry
    from multiq.worker.items import Outcome, Request

logger = logging.getLogger("multiq.worker")


# While the node has other work on hand, a finished task's result may wait this long for
# others to share its write; when the node runs out of work it goes out at once.
LINGER = 0.002
BATCH_MAX = 512  # items that are written without waiting out the linger
# While batches go by, the writer thread looks this often for what the riding consumer left
# behind it (its quiet items, see _put), instead of being woken after every batch; after
# AWAKE_FOR seconds with no batch it sleeps until told.
POLL = 0.02
AWAKE_FOR = 1.0


class Committer:
    """Writes outcomes to the result store and acknowledges their messages, in batches."""

    def __init__(self, app: MultiQ, consumer: str, hostname: str) -> None:
        self.broker = app.broker
        self.hostname = hostname
        self.recorder = Recorder(app, consumer, hostname)
        self.backend = self.recorder.backend
        self.track_started = self.recorder.track_started
        self.outbox = Outbox(self.broker, self.backend)
        self.markers = Markers.of(self.broker, consumer)
        #: Whether the node has nothing on hand but this request (see :meth:`start`).
        self.idle: Callable[[Request], bool] = lambda req: True
        #: The thread whose finished tasks ride on its own next fetch (the solo pool's
        #: consumer; see take()), or None.
        self.rider: Optional[int] = None
        self._items: Deque[Item] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._in_hand: List[Item] = []  # the batch being written
        self._riding_counts = 0  # counter commands ending the riding batch's commands
        self._riding_end = 0  # where they end among the exchange's
        self._due = False  # write without waiting out the linger
        self._since = 0.0  # when the oldest waiting item came in
        self._stopping = False
        self._flushers = 0  # threads in flush()
        self._writer_blocked = False  # the writer waits for the batch in hand, items behind it
        self._asleep = False  # the writer waits until told (no batch for AWAKE_FOR)
        self._last_batch = 0.0  # when a batch was last claimed (monotonic)
        self._thread = threading.Thread(target=self._loop, name="committer", daemon=True)

    @property
    def events_enabled(self) -> bool:
        return self.recorder.events_enabled

    @events_enabled.setter
    def events_enabled(self, enabled: bool) -> None:  # the enable/disable_events commands
        self.recorder.events_enabled = enabled

    # -- producers (any thread) --------------------------------------------------------

    def start(self, idle: Optional[Callable[[Request], bool]] = None,
              rider: Optional[int] = None) -> None:
        """Start writing, for the node whose consumer is built: ``idle`` tells whether a
        request is all it has on hand (the consumer's ``holds_only``: the consumer is made
        after this committer, from parts that need it), ``rider`` is the thread whose
        fetches carry the outcomes of the tasks it runs, if any."""
        if idle is not None:
            self.idle = idle
        if rider is not None:
            self.rider = rider
        self._thread.start()

    def mark_started(self, req: Request, batched: bool = False) -> None:
        """Record that the task starts: its early-ack marker (see :mod:`.markers`), and
        with ``track_started`` or events, the STARTED state and event in the next batch.

        The task does not wait for these writes: should the node die before the marker
        lands, the message counts as not started and runs again (at least once wins).
        ``batched`` (the prefork pool, whose tasks run in other processes) lets the marker
        wait up to ``LINGER`` for the next batch instead of being written at once: one
        write fewer per task, and none at all for a task that finishes within it.
        """
        req.started = req.early_ack
        if batched and not (self.track_started or self.events_enabled):
            if req.early_ack and not req.marked:
                self._put(Started(req), due=False)
            return
        if req.early_ack and self.markers is not None and not req.marked:
            self.markers.post(req)
        if self.track_started or self.events_enabled or (req.early_ack and not req.marked):
            self._put(Started(req))  # the rest, or the marker itself on a cluster

    def complete(self, req: Request, outcome: Outcome, here: bool = True) -> None:
        """Hand in an outcome; it may wait up to ``LINGER`` for company while the node has
        other work. When it has none, the calling thread writes it at once itself (unless
        the writer thread has work in hand, which must go first): no hand-over to wait for.
        ``here=False``: never in the calling thread (an event loop's), the writer thread
        writes it at once instead.
        """
        req.committed = True
        req.time_done = time.time()
        item = Done(req, outcome)
        idle = self.idle(req)
        if idle and threading.get_ident() == self.rider:
            self._put(item, due=False, wake=False)  # its next fetch, at once, takes it along
        elif not idle:
            self._put(item, due=False)
        elif not here or not self._write_here(item):
            self._put(item)

    # -- riding on the consumer's fetch (solo pool) -------------------------------------

    def take(self) -> Optional[List[Item]]:
        """What waits, for the consumer to write in the same exchange as its next fetch;
        None when nothing waits or the writer thread has work in hand. Every batch taken
        is given back to :meth:`taken`."""
        with self._cond:
            if not self._items or self._busy or self._stopping:
                if self._items:
                    self._due = True
                    self._cond.notify()
                return None
            return self._claim()

    def commands(self, batch: List[Item]) -> Optional[List[Any]]:
        """The one-exchange commands that write ``batch`` (see :class:`.outbox.Outbox`);
        None when it cannot be recorded (give it back: the writer thread sorts it out)."""
        try:
            recorded = self.recorder.record(batch)
        except Exception:
            return None
        if recorded.chords is not None:
            return None  # (only where counts cannot ride in the result write)
        if self.markers is not None and recorded.marked:
            self.markers.confirm(recorded.marked)
        stack = self.outbox.exchange(recorded.results, recorded.acks, recorded.counts)
        self._riding_counts = len(recorded.counts or ())  # (the stack's last commands)
        self._riding_end = len(stack)
        return stack

    def taken(self, batch: List[Item], replies: Optional[List[Any]]) -> None:
        """The end of a :meth:`take`: ``replies`` of its exchange, or None when it was not
        written (it goes back to the writer thread, first in line)."""
        failed = replies is None or any(isinstance(r, UNAVAILABLE) for r in replies)
        counted, self._riding_counts = self._riding_counts, 0
        if replies and counted and not failed:
            replies = uncounted(replies, self._riding_end, counted)
        errors = [e for r in replies or () for e in (r if isinstance(r, list) else [r])
                  if isinstance(e, Exception)]
        if errors and not failed:
            logger.error("Could not commit %d outcomes: %s", len(batch), errors[0])
        self._release(back=batch if failed else ())

    def redeliver(self, req: Request, count: bool = True) -> None:
        """Put a message back in its queue (its process died, or a cold shutdown)."""
        req.committed = True
        self._put(Redeliver(req, count))

    def revoked(self, req: Request, reason: str) -> None:
        req.committed = True
        self._put(Revoked(req, reason))

    def refuse(self, d: Delivery, reason: str, task_id: Optional[str],
               exc: BaseException) -> None:
        self._put(Refused(d, reason, task_id, exc))

    def send_event(self, type_: str, **fields: Any) -> None:
        """Queue an event (when enabled) to go out with the next batch."""
        if self.events_enabled:
            self._put(Event(events.event(type_, hostname=self.hostname, **fields)))

    def _put(self, item: Item, due: bool = True, wake: bool = True) -> None:
        """Queue ``item``; ``wake=False`` when the caller takes it along itself soon."""
        with self._cond:
            items = self._items
            items.append(item)
            if len(items) == 1:
                self._since = time.monotonic()
                if not wake:  # (an awake writer finds it within POLL, should it stay)
                    if self._asleep:
                        self._cond.notify()
                    return
            elif not due and self._due is False and len(items) < BATCH_MAX:
                return  # the writer already knows of the batch and its deadline
            self._due = self._due or due
            self._cond.notify()

    def _write_here(self, item: Item) -> bool:
        """Write ``item``, after whatever waits, in this thread unless the writer thread is
        busy; False when it must be queued instead."""
        with self._cond:
            if self._busy or self._stopping:
                return False
            batch = self._claim(item)  # what waits goes first, as the writer would
        unavailable = False
        try:
            self._commit(batch)
        except UNAVAILABLE:  # the writer thread waits the outage out
            unavailable = True
        except Exception:  # the writer thread writes them one by one
            unavailable = True
        finally:
            self._release(back=batch[:-1] if unavailable else ())
        return not unavailable

    def _claim(self, *extra: Item) -> List[Item]:
        """(Holding the lock.) Every waiting item, then ``extra``: the batch in hand."""
        batch = [*self._items, *extra]
        self._items.clear()
        self._last_batch = time.monotonic()
        self._due = False
        self._busy, self._in_hand = True, batch
        return batch

    def _release(self, back: Sequence[Item] = ()) -> None:
        """The batch in hand is done with; ``back`` returns to the queue, first in line."""
        with self._cond:
            if back:
                self._items.extendleft(reversed(back))
                self._due = True
            self._busy, self._in_hand = False, []
            # only who waits on the batch in hand: the writer thread, when it was told of
            # items that came in meanwhile, and flush(); waking the writer after every
            # batch would cost the riding consumer a thread switch each time (what it left
            # quietly, wake=False, its next fetch takes along, or the writer within POLL)
            if self._writer_blocked or self._flushers:
                self._cond.notify_all()

    def holding(self) -> Set[bytes]:
        """Stream entry ids whose outcome waits here or is being written."""
        with self._cond:
            items = [*self._items, *self._in_hand]
        ids = set()
        for item in items:
            subject = item[0]
            entry = getattr(getattr(subject, "delivery", subject), "entry_id", None)
            if entry is not None:
                ids.add(entry)
        return ids

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything handed in so far is written."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._due = True
            self._cond.notify_all()
            self._flushers += 1
            try:
                while self._items or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(min(left, 0.1))
            finally:
                self._flushers -= 1
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
                while True:  # until there is a batch to write, and nobody else writing
                    if not self._items and self._stopping:
                        return
                    if not self._items or self._busy:  # (another thread writes: see take)
                        self._writer_blocked = bool(self._items)  # (see _release)
                        if self._items or \
                                time.monotonic() - self._last_batch < AWAKE_FOR:
                            self._cond.wait(POLL)
                        else:
                            self._asleep = True
                            self._cond.wait()
                            self._asleep = False
                        self._writer_blocked = False
                        continue
                    left = self._since + LINGER - time.monotonic()
                    if self._due or self._stopping or len(self._items) >= BATCH_MAX \
                            or left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._claim()
            try:
                self._retrying(lambda b=batch: self._commit(b))
            except Exception:
                self._one_by_one(batch)
            finally:
                self._release()

    def _one_by_one(self, batch: List[Item]) -> None:
        """(Handling the exception a batch failed with, for another reason than an outage.)
        Write each item alone, so that whatever is wrong with one costs only that one. An
        item that failed on a key of its queue holding another type (garbage written into
        Redis) is written again once that key is set aside."""
        failed = sys.exc_info()[1]
        for item in batch:
            exc = failed if len(batch) == 1 else self._alone(item)
            if exc is not None and "WRONGTYPE" in str(exc) and self._heal(item):
                exc = self._alone(item)
            if exc is not None:
                self._give_up(item, exc)

    def _alone(self, item: Item) -> Optional[BaseException]:
        """Write ``item`` by itself; the exception it failed with, if any."""
        try:
            self._retrying(lambda: self._commit([item]))
        except Exception as exc:
            return exc
        return None

    def _heal(self, item: Item) -> bool:
        """Whether a key of the item's queue held another type and was set aside."""
        d = getattr(item[0], "delivery", item[0])
        queue = getattr(d, "queue", None)
        if not isinstance(queue, str):
            return False
        try:
            return bool(self.broker.heal(queue))
        except Exception:
            logger.exception("Could not look at the keys of queue %r", queue)
            return False

    def _give_up(self, item: Item, exc: Optional[BaseException]) -> None:
        """An item that cannot be written, alone, for another reason than an outage: its
        message is dead-lettered and acknowledged with the reason, and its task recorded
        as FAILURE where that can be written, so that nothing stays pending."""
        kind, subject = item.kind, item[0]
        d: Optional[Delivery] = getattr(subject, "delivery", subject)  # type: ignore[arg-type,assignment]
        if type(item) in (Started, Event) or d is None \
                or getattr(d, "entry_id", None) is None:
            logger.error("Could not write %s of %s", kind, getattr(subject, "id", subject),
                         exc_info=exc)  # (no message waits on it)
            return
        error: Optional[BaseException] = exc
        if isinstance(item, Refused):
            reason, task_id, error = item.reason, item.task_id, item.exc
        else:
            reason = f"could not write its {kind} outcome: {type(exc).__name__}: {exc}"
            task_id = item[0].id  # type: ignore[union-attr]
        logger.error("Could not write %s of message %s (task id %s); it is moved to the "
                     "dead-letter stream", kind, d.entry_id.decode(), task_id, exc_info=exc)
        for with_result in (True, False) if task_id else (False,):
            try:
                self._retrying(lambda w=with_result: self._dead_letter(
                    subject, d, reason, task_id if w else None, error))
                return
            except Exception:
                logger.exception("Could not dead-letter message %s (task id %s)%s",
                                 d.entry_id.decode(), task_id,
                                 "; trying without its result" if with_result else
                                 "; it stays pending")

    def _dead_letter(self, subject: Any, d: Delivery, reason: str, task_id: Optional[str],
                     exc: Any) -> None:
        """Write a refusal of ``d`` alone (its start marker, if any, deleted with the ack)."""
        recorded = self.recorder.record([Refused(d, reason, task_id, exc)])
        if getattr(subject, "marked", False):
            if self.markers is not None and subject.marker:
                self.markers.confirm(subject.marker)
            self.broker.ack(recorded.acks, d, started=True)
        self.outbox.write(recorded.results, recorded.acks)

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
        recorded = self.recorder.record(batch)
        if self.markers is not None and recorded.marked:
            self.markers.confirm(recorded.marked)  # markers in place before acks delete them
        # results (replicas too), then chord counts, then acks
        self.outbox.write(recorded.results, recorded.acks, recorded.chords, recorded.counts)

    # -- recovery of a dead node's started tasks ---------------------------------------------

    def lost(self, entries: Sequence[LostEntry], node: str) -> None:
        """Record WorkerLostError for started early-ack tasks of a dead node, then ack them.

        A task whose final outcome is stored already keeps it (its node finished it)."""
        if self.backend is not None:
            plan = self.recorder.lost(entries, node)
            wrote = Writer(self.backend.client).write(plan.results)
            self._fail_flows([item for item, done in zip(plan.lost, wrote) if done == 1])
        self.broker.ack_lost(entries)

    def _fail_flows(self, lost: List[Any]) -> None:
        """The chords and chains of lost tasks that had not finished: they fail too."""
        flow = self.recorder.flow
        lost = [item for item in lost if type(item[1]) is dict and item[1]]
        if flow is None or not lost:
            return
        pipe, chords = self.backend.client.pipeline(transaction=False), Commands()
        for task_id, options, error in lost:
            flow.lost(pipe, chords, options, task_id, states.FAILURE, error)
        pipe.execute()
        if chords:
            sends = Commands()
            for reply in Writer(self.backend.client).write(chords):
                send_commands(sends, self.broker, reply)
            if sends:
                Writer(self.broker.client).write(sends)
