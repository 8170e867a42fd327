"""The fetch loop: keep up to ``prefetch`` messages on hand and feed the pool."""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Deque, List, NamedTuple, Optional, Tuple

from multiq.broker.order import QueueOrder
from multiq.redisconn import REDIS_ERRORS, UNAVAILABLE
from multiq.worker.items import Started

if TYPE_CHECKING:
    from multiq.broker.base import Broker
    from multiq.broker.redis import Delivery, PostedFetch
    from multiq.pools.base import Pool
    from multiq.worker.contact import Contact
    from multiq.worker.execute import Executor
    from multiq.worker.items import Request

logger = logging.getLogger("multiq.worker")

# How long one blocking read waits: short enough that a stop request is seen at once.
BLOCK_MS = 250
TOPUP_EVERY = 0.25  # seconds: the longest a partly empty prefetch waits to be topped up


def rides(pool: Any, broker: Any, committer: Any) -> bool:
    """Whether the outcomes of the tasks a consumer runs in its own thread (a pool, or
    pool class, that ``runs_inline``) ride on its next fetch: where one exchange can carry
    both (see :attr:`multiq.worker.outbox.Outbox.single`)."""
    return bool(getattr(pool, "runs_inline", False) and broker.wire is not None
                and committer.outbox.single)


class _Ahead(NamedTuple):
    posted: PostedFetch
    batch: Optional[List[Any]]  # the outcomes riding on it


class Consumer:
    """Fetches from the node's queues, highest priority first within each, the queues in
    rotation (``queue_order_strategy``), and dispatches to the pool."""

    def __init__(self, broker: Broker, consumer: str, queues: List[str], prefetch: int,
                 pool: Pool, executor: Executor, contact: Optional[Contact] = None) -> None:
        self.broker = broker
        self.contact = contact  # told of outages; a reconnect asks it for a beat
        self.consumer = consumer
        self.queues = list(queues)
        #: the queue order of each fetch: in turn, unless strict order is configured
        self.order = QueueOrder(self.queues, broker.queue_order)
        self.prefetch = max(1, prefetch)
        self.pool = pool
        self.executor = executor
        self.reserved: Deque[Request] = deque()
        self.consuming = False
        self._take_lock = threading.Lock()
        self._last_fetch = 0.0
        self._busy_queue = False  # the last fetch got all it asked for: more may wait
        #: Outcomes of tasks run in this thread ride on its next fetch (see _fetch); its
        #: committer is started with this thread as its rider.
        self.rides = rides(pool, broker, executor.committer)

    def run(self, should_stop: Callable[[], bool]) -> None:
        """Loop until ``should_stop()``; Redis outages are waited out with backoff."""
        failures = errors = 0
        while not should_stop():
            try:
                if failures or errors:
                    self._reclaim()
                    if self.contact is not None:  # back: renew this node's liveness now
                        self.contact.reconnected()
                self._step(should_stop)
                if failures:
                    logger.warning("Connection to the broker restored; consuming again")
                failures = errors = 0
            except UNAVAILABLE as exc:
                failures += 1
                self.consuming = False
                if self.contact is not None:
                    self.contact.lost()
                delay = min(0.1 * 2 ** failures, 5.0)
                logger.error("Cannot reach the broker (%s); trying again in %.1fs", exc, delay)
                _pause(delay, should_stop)
            except Exception:  # a bug must not end the loop: what was fetched is taken back
                errors += 1
                delay = min(0.1 * 2 ** errors, 5.0)
                logger.exception("Unexpected error in the consumer; going on in %.1fs", delay)
                _pause(delay, should_stop)

    def _reclaim(self) -> None:
        """After an outage, take back what Redis gave this node but never reached it: a
        fetch whose reply was lost leaves its entries pending for this node (after a
        failover, the new master may hold them so), and nobody else would take them while
        the node lives. Entries it holds, or whose outcome waits to be written, are left."""
        self._receive(self.broker.waiting())  # read by a cluster's slot waiters: on hand
        held = {r.delivery.entry_id for r in [*self.reserved, *self.pool.held()]}
        held |= self.executor.committer.holding()
        lost = [d for d in self.broker.own_pending(self.consumer, self.queues)
                if d.entry_id not in held]
        if lost:
            logger.warning("Taking back %d messages this node was given during the outage",
                           len(lost))
        self._receive(lost)

    def _step(self, should_stop: Callable[[], bool]) -> None:
        self._dispatch(should_stop)
        if should_stop():
            return
        room = self.prefetch - len(self.reserved) - len(self.pool.held())
        # Fetch in batches: with work on hand, wait until half the prefetch is free, or
        # a quarter second has passed, rather than fetch one message at a time.
        batching = self.reserved and room < self.prefetch // 2 \
            and time.monotonic() - self._last_fetch < TOPUP_EVERY
        if room <= 0 or batching:
            if self.pool.free_slots() <= 0:
                self.pool.wait_for_slot(TOPUP_EVERY)
            return
        self._last_fetch = time.monotonic()
        got = self._fetch(room)
        if not got and not self.reserved:
            self.consuming = True
            got = self.broker.wait(self.consumer, self.order.next(), room, BLOCK_MS)
        elif not got:  # nothing new, and what is on hand waits for a slot
            self.pool.wait_for_slot(TOPUP_EVERY)
        self.consuming = True
        self._receive(got)

    def _fetch(self, room: int) -> List[Delivery]:
        """Fetch; when tasks run in this thread (solo), the outcomes they left go out in
        the same exchange, ahead of the fetch: one round trip where there would be two."""
        batch, commands = self._riding() if self.rides else (None, [])
        queues = self.order.next()
        if batch is None:
            got = self.broker.fetch(self.consumer, queues, room)
        else:
            replies = None
            try:
                replies, got = self.broker.fetch_after(commands, self.consumer, queues, room)
            finally:
                self.executor.committer.taken(batch, replies)
        self._busy_queue = len(got) >= room
        return got

    def _riding(self, starting: Optional[Request] = None) -> Tuple[Optional[List[Any]],
                                                                   List[Any]]:
        """The batch that rides on the next fetch, claimed from the committer, and the
        commands that write it; (None, []) when none does. With ``starting``, the task
        about to run while that batch is in hand (the writer thread cannot write then),
        its start marker, when it would wait for the writer, goes in the batch."""
        committer = self.executor.committer
        batch = committer.take()
        if batch is None:
            return None, []
        if starting is not None and starting.early_ack and self.executor.batched_marks \
                and not (committer.track_started or committer.events_enabled):
            batch.append(Started(starting))
        commands = committer.commands(batch)
        if commands is None:  # (given back: see Committer.commands)
            committer.taken(batch, None)
            return None, []
        return batch, commands

    def _dispatch(self, should_stop: Callable[[], bool]) -> None:
        while self.pool.free_slots() > 0 and not should_stop():
            with self._take_lock:
                if not self.reserved:
                    return
                req = self.reserved.popleft()
            ahead = self._fetch_ahead(req) if self.rides and not self.reserved else None
            try:
                try:
                    self.pool.apply(req)  # (solo: the task runs here)
                except Exception as exc:  # ``req`` alone fails
                    self._not_applied(req, exc)
            except BaseException:
                if ahead is not None:
                    ahead.posted.abandon()
                    if ahead.batch:
                        self.executor.committer.taken(ahead.batch, None)
                raise
            if ahead is not None:
                self._collect(ahead)

    def _not_applied(self, req: Request, exc: Exception) -> None:
        """Handing ``req`` to the pool raised: it fails alone (unless the pool holds it:
        then its outcome comes from there)."""
        if any(r is req for r in self.pool.held()):
            logger.exception("Error while dispatching %s[%s]", req.name, req.id)
        else:
            self._failed(req, exc)

    def _failed(self, req: Request, exc: BaseException) -> None:
        """(The pool's) ``req`` raised outside its task's code: it fails alone."""
        self.executor.fail(req, exc)

    def _fetch_ahead(self, req: Request) -> Optional[_Ahead]:
        """(Solo.) Before ``req``, the last task on hand, runs, send the next fetch, with
        the outcomes waiting to ride on it: Redis answers while the task runs. Only while
        the queue seems busy (the last fetch filled the room it had).

        ``req``'s start marker may go in this exchange (see :meth:`_riding`)."""
        room = self.prefetch - 1
        if not self._busy_queue or room <= 0:
            return None
        batch, commands = self._riding(starting=req)
        try:
            posted = self.broker.post_fetch(commands, self.consumer, self.order.next(), room)
        except Exception:  # it is done the usual way after the task, outage handling and all
            if batch:
                self.executor.committer.taken(batch, None)
            return None
        self._last_fetch = time.monotonic()
        return _Ahead(posted, batch)

    def _collect(self, ahead: _Ahead) -> None:
        """Read what :meth:`_fetch_ahead` sent; the messages join the reserve."""
        replies = None
        try:
            replies, got = ahead.posted.result()
        finally:
            if ahead.batch:
                self.executor.committer.taken(ahead.batch, replies)
        self._busy_queue = len(got) >= ahead.posted.count
        self._receive(got)

    def _receive(self, deliveries: List[Delivery]) -> None:
        """Turn deliveries into reserved requests, each on its own: whatever one raises
        costs only that one (it is dead-lettered where it can be)."""
        for d in deliveries:
            try:
                req = self.executor.prepare(d)
            except Exception as exc:  # (prepare refuses what it can itself)
                logger.exception("Could not receive message %s", d.entry_id.decode())
                self._refuse(d, exc)
                continue
            if req is not None:
                self.reserved.append(req)

    def _refuse(self, d: Delivery, exc: Exception) -> None:
        try:
            self.executor.committer.refuse(d, f"not received: {exc!r}", None, exc)
        except Exception:
            logger.exception("Could not refuse message %s; it stays pending",
                             d.entry_id.decode())

    def holds_only(self, req: Request) -> bool:
        """Whether ``req`` is all this node has on hand: nothing reserved, nothing else in
        the pool (the committer then writes its outcome without waiting for company)."""
        return not self.reserved and all(r is req for r in self.pool.held())

    def handback(self) -> int:
        """Give every reserved, never started message back to its stream at once."""
        pending, self.reserved = list(self.reserved), deque()
        deliveries = [r.delivery for r in pending] + self.broker.stop_waiting()
        if not deliveries:
            return 0
        try:
            return self.broker.handback(deliveries)
        except REDIS_ERRORS as exc:
            logger.error("Could not hand back %d messages (%s); they return to the queue "
                         "when this node's heartbeat expires", len(deliveries), exc)
            return 0

    def add_queue(self, queue: str) -> None:
        if queue not in self.queues:
            self.broker.declare([queue])
            self.queues.append(queue)
            self.order.reset(self.queues)

    def cancel_queue(self, queue: str) -> None:
        if queue in self.queues:
            self.queues.remove(queue)
            self.order.reset(self.queues)


def _pause(seconds: float, should_stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and not should_stop():
        time.sleep(0.05)
