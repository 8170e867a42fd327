"""Blocking reads over queues that live on different Redis Cluster slots.

One ``XREADGROUP`` can only name keys of one slot, so a node consuming queues on several
shards cannot wait on them with one call. :class:`SlotWaiters` runs one thread per slot,
each in a blocking read of its own queues while the node waits, and hands what they take
to the node through one buffer: the node wakes on the first message of any queue, and no
thread reads while the node is busy (the buffer never grows beyond one read per slot).
A thread is known by the set of its queues; each wait tells it the order to name them
in (the node's rotation), without starting a new thread.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Dict, FrozenSet, List, Sequence, Tuple

logger = logging.getLogger("multiq.worker")

Read = Callable[[Sequence[str], int, int], list]  # (queues, count, block_ms) -> deliveries
Group = FrozenSet[str]


class SlotWaiters:
    """Threads blocking on groups of queues; :meth:`wait` returns what any of them read."""

    def __init__(self, read: Read) -> None:
        self._read = read
        self._cond = threading.Condition()
        self._buffer: list = []
        self._armed: Tuple[Dict[Group, Tuple[str, ...]], int, int] = ({}, 0, 0)
        self._generation = 0
        self._threads: Dict[Group, threading.Thread] = {}
        self._closed = False

    def take(self) -> list:
        """Deliveries read since the last call (never blocks)."""
        with self._cond:
            out, self._buffer = self._buffer, []
            return out

    def wait(self, groups: Sequence[Sequence[str]], count: int, block_ms: int) -> list:
        """Block up to ``block_ms`` until a read on any group returns entries; each group
        is read in the order given."""
        armed = {frozenset(g): tuple(g) for g in groups}
        with self._cond:
            if self._closed:
                return []
            for group, ordered in armed.items():
                if group not in self._threads or not self._threads[group].is_alive():
                    t = threading.Thread(target=self._loop, args=(group,), daemon=True,
                                         name=f"wait-{min(ordered)}")
                    self._threads[group] = t
                    t.start()
            self._armed = (armed, count, block_ms)
            self._generation += 1
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._buffer, timeout=block_ms / 1000)
            self._armed = ({}, 0, 0)  # disarm: reads in flight finish, none start
            out, self._buffer = self._buffer, []
            return out

    def close(self, timeout: float = 2.0) -> list:
        """Stop the threads (their reads end within ``block_ms``); returns what they read."""
        with self._cond:
            self._closed = True
            self._armed = ({}, 0, 0)
            self._cond.notify_all()
            threads = list(self._threads.values())
        for t in threads:
            t.join(timeout)
        return self.take()

    def _loop(self, group: Group) -> None:
        seen = -1
        while True:
            with self._cond:
                while not self._closed and (group not in self._armed[0]
                                            or self._generation == seen):
                    self._cond.wait()
                if self._closed:
                    return
                seen = self._generation
                armed, count, block_ms = self._armed
                ordered = armed[group]
            try:
                got: List = self._read(ordered, count, block_ms)
            except Exception as exc:  # Redis away: the node's own fetch reports it
                logger.debug("blocking read on %s failed: %s", ", ".join(ordered), exc)
                got = []
                with self._cond:
                    self._cond.wait(min(block_ms / 1000, 0.5))
            if got:
                with self._cond:
                    self._buffer.extend(got)
                    self._cond.notify_all()
