"""Background duties of a node, each a thread with ``start()`` / ``stop()``.

Started in this order by the worker and stopped in reverse: Heartbeat (so the node is alive
before it takes anything), RevokeSync, Promoter, Recovery.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from multiq.redisconn import REDIS_ERRORS, UNAVAILABLE

if TYPE_CHECKING:
    from multiq.broker.base import Broker
    from multiq.worker.committer import Committer
    from multiq.worker.contact import Contact
    from multiq.worker.state import WorkerState

logger = logging.getLogger("multiq.worker")


class Component:
    """A daemon thread running ``tick()`` until stopped; ``tick`` returns the next wait."""

    name = "component"
    #: Seconds before the first tick. Duties that can wait a moment let a starting node's
    #: first fetch and task go first, rather than contend with them for the interpreter.
    first_wait = 0.0
    #: The longest wait before the next tick after Redis was unavailable.
    max_retry_wait = 5.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._woken = threading.Event()  # set on stop: ends the wait before the next tick
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the next tick now rather than after the current wait."""
        self._woken.set()

    def signal_stop(self) -> None:
        """Ask the thread to stop without waiting (stop() then joins)."""
        self._stop.set()
        self._woken.set()

    def stop(self, timeout: float = 5.0) -> None:
        self.signal_stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        if self.first_wait:
            self._woken.wait(self.first_wait)
            self._woken.clear()
        while not self._stop.is_set():
            try:
                wait = self.tick()
                failures = 0
            except UNAVAILABLE as exc:
                failures += 1
                wait = min(0.2 * 2 ** failures, self.max_retry_wait)
                logger.warning("%s: Redis unavailable (%s); retrying in %.1fs",
                               self.name, exc, wait)
            except Exception:
                logger.exception("%s failed; retrying", self.name)
                wait = 1.0
            self._woken.wait(wait)
            self._woken.clear()

    def tick(self) -> float:
        raise NotImplementedError


class Heartbeat(Component):
    """Renews this node's liveness key; other nodes recover its work once it expires.

    Each beat goes out on a connection that gives up within about an interval, and a
    failed beat is tried again within an interval: the node renews its key as soon as
    Redis answers again. Beats and failures are told to ``contact``.
    """

    name = "heartbeat"

    def __init__(self, broker: Broker, consumer: str, info: Callable[[], Dict[str, Any]],
                 interval: float, ttl: float, contact: Contact,
                 on_beat: Optional[Callable[[Dict[str, Any]], None]] = None,
                 others: Callable[[], List[str]] = list) -> None:
        super().__init__()
        self.broker, self.consumer, self.info = broker, consumer, info
        self.others = others  # consumer names alive while this node is (prefork children)
        self.interval, self.ttl = interval, ttl
        self.contact = contact
        self.on_beat = on_beat
        self.first_wait = interval  # the worker beats once itself before it starts this
        self.max_retry_wait = interval
        self.timeout = beat_timeout(interval, ttl)

    def first_beat(self, attempts: int = 5) -> None:
        """The beat before the node takes anything; tried again a few times."""
        for attempt in range(attempts):
            try:
                return self.beat()
            except UNAVAILABLE as exc:
                if attempt + 1 >= attempts:
                    raise
                logger.warning("heartbeat: Redis unavailable (%s); retrying", exc)
                time.sleep(self.interval)

    def beat(self) -> None:
        info = self.info()
        try:
            self.broker.heartbeat(self.consumer, info, self.ttl, timeout=self.timeout,
                                  others=self.others())
        except REDIS_ERRORS:
            self.contact.lost()
            raise
        self.contact.beat()
        if self.on_beat is not None:
            self.on_beat(info)

    def tick(self) -> float:
        self.beat()
        return self.interval

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        try:
            for name in [*self.others(), self.consumer]:
                self.broker.forget_node(name)
        except REDIS_ERRORS as exc:
            logger.warning("Could not remove node record: %s", exc)


def beat_timeout(interval: float, ttl: float) -> float:
    """How long a beat may take: short enough that one stalled by a paused server fails
    before the other nodes' keys can expire (``ttl`` after their last beat)."""
    return max(0.1, min(interval, (ttl - interval) / 2))


class Promoter(Component):
    """Moves due countdown / eta / retry messages into their streams (each exactly once)."""

    name = "promoter"
    max_wait = 1.0
    first_wait = 0.1

    def __init__(self, broker: Broker, queues: Callable[[], List[str]]) -> None:
        super().__init__()
        self.broker, self.queues = broker, queues

    def tick(self) -> float:
        now = time.time()
        wait = self.max_wait
        for queue in self.queues():
            while True:
                moved, nxt = self.broker.promote(queue, now)
                if moved < 500:
                    break
            if nxt is not None:
                wait = min(wait, max(nxt - time.time(), 0.005))
        return wait


class Recovery(Component):
    """Hands back the messages held by nodes whose heartbeat has expired.

    Only while ``contact`` trusts this node's own view: in steady contact with Redis for a
    full liveness period since its last outage and since the server started (see
    :mod:`multiq.worker.contact`). Right after an outage every key may have expired,
    healthy nodes' too.
    """

    name = "recovery"
    first_wait = 0.1

    def __init__(self, broker: Broker, consumer: str, queues: Callable[[], List[str]],
                 committer: Committer, interval: float, contact: Contact) -> None:
        super().__init__()
        self.broker, self.consumer, self.queues = broker, consumer, queues
        self.committer, self.interval = committer, interval
        self.contact = contact
        self._blind = False  # the server does not say its run id and uptime

    def tick(self) -> float:
        try:
            self._server()
            if self.contact.trusted():
                for queue in self.queues():
                    if not self._round(queue):
                        break
        except UNAVAILABLE:
            self.contact.lost()
            raise
        return self.interval

    def _server(self) -> None:
        """Tell ``contact`` what the server says of itself: a restart, or a failover?"""
        try:
            self.contact.server(*self.broker.server_info())
        except UNAVAILABLE:
            raise
        except REDIS_ERRORS as exc:  # e.g. INFO renamed away by a hosting service
            if not self._blind:
                logger.warning("Cannot read the server's run id and uptime (%s): only lost "
                               "connections tell this node of a restart", exc)
            self._blind = True

    def _round(self, queue: str) -> bool:
        """Recover the gone holders of ``queue``; False when contact is not trusted."""
        holders = [c for c in self.broker.holders(queue) if c != self.consumer]
        if not holders:
            return True
        asked = self.contact.clock()
        alive = self.broker.is_alive(holders)
        if not self.contact.answered(asked):
            return False
        for holder, live in zip(holders, alive):
            if not live:
                self.recover(queue, holder)
        return True

    def recover(self, queue: str, holder: str) -> None:
        requeued, dead, lost = self.broker.recover(queue, holder)
        if lost:
            self.committer.lost(lost, holder)
        if requeued or dead or lost:
            logger.warning(
                "Node %s is gone: %d of its messages in queue %r handed back, %d dead-lettered, "
                "%d started tasks marked lost (WorkerLostError)",
                holder.split("|")[0], requeued, queue, dead, len(lost),
            )


class RevokeSync(Component):
    """Keeps the node's set of revoked ids current: a full read, then live notifications."""

    name = "revokes"
    resync = 10.0

    def __init__(self, broker: Broker, state: WorkerState,
                 on_revoke: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        super().__init__()
        self.broker, self.state, self.on_revoke = broker, state, on_revoke
        self._pubsub: Any = None

    def load(self) -> None:
        self.state.replace_revoked(self.broker.revoked_ids() | set())

    def tick(self) -> float:
        pubsub = self.broker.client.pubsub(ignore_subscribe_messages=True)
        self._pubsub = pubsub
        try:
            pubsub.subscribe(self.broker.keys.revoked_channel)
            self.load()  # after subscribing: nothing published in between is missed
            deadline = time.monotonic() + self.resync
            while not self._stop.is_set() and time.monotonic() < deadline:
                msg = pubsub.get_message(timeout=0.1)
                if msg and msg.get("type") == "message":
                    self._handle(msg["data"])
        finally:
            pubsub.close()
        return 0.0

    def _handle(self, data: bytes) -> None:
        """Learn the ids of one notification; a malformed one is logged and dropped."""
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        ids = payload.get("ids") if isinstance(payload, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            logger.warning("Ignoring a malformed revoke notification on %s: %r",
                           self.broker.keys.revoked_channel, data[:200])
            return
        self.state.add_revoked(ids)
        if self.on_revoke is not None:
            try:
                self.on_revoke(payload)
            except Exception:  # the ids are known; stay subscribed
                logger.exception("Could not act on revoked ids %s", ids)


def node_info(hostname: str, consumer: str, pool: str, concurrency: Callable[[], int],
              queues: Callable[[], List[str]], started: float,
              ready: Callable[[], bool],
              active: Callable[[], int] = lambda: 0) -> Callable[[], Dict[str, Any]]:
    """The heartbeat payload, computed at each beat (``active``: how many tasks run)."""
    pid = os.getpid()

    def info() -> Dict[str, Any]:
        return {"hostname": hostname, "consumer": consumer, "pid": pid, "pool": pool,
                "concurrency": concurrency(), "queues": queues(), "started": started,
                "ready": ready(), "active": active(), "time": time.time()}
    return info
