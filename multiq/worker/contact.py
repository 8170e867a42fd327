"""Whether this node may judge other nodes' liveness: its own contact with Redis.

A node's liveness key expires when the node has not renewed it for a liveness period
(see :mod:`multiq.keys`). After an outage of Redis — a restart, a failover, a pause, a
network blip — longer than that period, every node's key has expired at once, healthy
nodes' too. So a node declares another gone only after it has itself been in steady
contact with Redis for a full period, since its own last outage and since the server
started: by then every healthy node has renewed its key.

Shared by the heartbeat (which records its beats and failures), the consumer (its
connection failures, and its reconnects, which ask for an immediate beat) and recovery
(which asks :meth:`Contact.trusted` before, and :meth:`Contact.answered` after, reading
the other nodes' keys).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional


class Contact:
    """The current spell of unbroken contact with Redis, and the server's identity."""

    def __init__(self, period: float, max_gap: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        #: How long contact must last before other nodes' expired keys mean anything
        #: (the liveness key's time to live).
        self.period = period
        #: The longest normal wait between two successful beats, or for an answer: a
        #: longer one means this process or the server was stalled, and counts as an outage.
        self.max_gap = max_gap
        #: Called (from the consumer's thread) when its connection is back: wakes the
        #: heartbeat, so the node renews its liveness at once.
        self.on_reconnect: Optional[Callable[[], None]] = None
        self._clock = clock
        self._lock = threading.Lock()
        self._since: Optional[float] = None  # start of the current spell; None: out
        self._last_beat: Optional[float] = None
        self._run_id: Optional[str] = None

    def beat(self) -> None:
        """A beat succeeded: contact goes on, or starts again after an outage or a stall."""
        with self._lock:
            now = self._clock()
            late = self._last_beat is not None and now - self._last_beat > self.max_gap
            if self._since is None or late:
                self._since = now
            self._last_beat = now

    def lost(self) -> None:
        """A call to Redis failed: out of contact until the next successful beat."""
        with self._lock:
            self._since = None

    def reconnected(self) -> None:
        """Another part reached Redis again after failing: ask for a beat now."""
        wake = self.on_reconnect
        if wake is not None:
            wake()

    def server(self, run_id: str, uptime: float) -> None:
        """What the server says of itself: a new ``run_id`` (a restart, or another master
        after a failover) is an outage, and contact is no older than the server."""
        with self._lock:
            now = self._clock()
            changed = self._run_id is not None and run_id != self._run_id
            self._run_id = run_id
            if self._since is not None:
                self._since = now if changed else max(self._since, now - uptime)

    def trusted(self) -> bool:
        """Whether contact has lasted a full period: expired keys of others mean they
        are gone."""
        with self._lock:
            return self._since is not None and self._clock() - self._since >= self.period

    def answered(self, asked: float) -> bool:
        """After reading other nodes' keys with a question sent at ``asked`` (this clock):
        whether contact was trusted then and unbroken since, and the answer came in
        time. A late answer counts as a stall (an outage that ends now)."""
        with self._lock:
            now = self._clock()
            if self._since is None:
                return False
            if now - asked > self.max_gap:
                self._since = now
                return False
            return asked - self._since >= self.period

    def clock(self) -> float:
        return self._clock()
