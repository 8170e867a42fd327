"""Autoscaling (``--autoscale MAX,MIN``): grow the pool under backlog, shrink it when idle."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from multiq.worker.components import Component

if TYPE_CHECKING:
    from multiq.worker.worker import Worker

logger = logging.getLogger("multiq.worker")


class Autoscaler(Component):
    """Every second: messages waiting and no free slot → grow; idle for ``keepalive`` → shrink
    by one. Never above ``max_concurrency`` or below ``min_concurrency``."""

    name = "autoscaler"
    interval = 1.0

    def __init__(self, worker: Worker, max_concurrency: int, min_concurrency: int,
                 keepalive: float = 10.0) -> None:
        super().__init__()
        self.worker = worker
        self.max = max(max_concurrency, min_concurrency)
        self.min = min(max_concurrency, min_concurrency)
        self.keepalive = keepalive
        self._idle_since = time.monotonic()

    def tick(self) -> float:
        pool, consumer = self.worker.pool, self.worker.consumer
        if pool is None or consumer is None or not self.worker.ready:
            return self.interval
        busy = pool.busy()
        waiting = len(consumer.reserved) + pool.waiting()
        if busy:
            self._idle_since = time.monotonic()
        if waiting and busy >= pool.concurrency and pool.concurrency < self.max:
            grow_by = min(waiting, self.max - pool.concurrency)
            self.worker.resize(pool.grow(grow_by))
            logger.info("Autoscaler: grew the pool by %d to %d", grow_by, pool.concurrency)
        elif pool.concurrency < self.min:
            self.worker.resize(pool.grow(self.min - pool.concurrency))
        elif (not busy and not waiting and pool.concurrency > self.min
              and time.monotonic() - self._idle_since >= self.keepalive):
            self.worker.resize(pool.shrink(1))
            self._idle_since = time.monotonic()
            logger.info("Autoscaler: shrank the pool to %d", pool.concurrency)
        return self.interval
