"""Early-ack start markers, written as each task starts, without waiting for Redis.

A task with early ack (the default) must not run twice: when its node dies mid-task,
recovery finds its marker and records WorkerLostError instead of running it again. The
marker is one ``HSET`` into the queue's ``started`` hash. In the solo and threads pools
it is written here, by the thread that starts the task, on a connection of its own,
before the task's code runs, and nobody waits for the reply: the replies are read later,
in bulk. So a task costs one small write instead of a round trip, and the committer is
not woken for it. (The prefork pool, whose tasks run in other processes, hands its
markers to the committer's next batch instead: see ``Committer.mark_started``.)

Redis applies a connection's commands in order, but the marker and the ack that later
deletes it travel on different connections: before the committer writes an ack that
deletes a marker, :meth:`Markers.confirm` reads replies up to that marker's, so the
marker is known to be in place first.

A marker that cannot be written (Redis away) leaves its request unmarked: should the node
die while that task runs, the task runs again (at least once wins).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from multiq.broker.wire import Commands, Link, Sender
from multiq.redisconn import REDIS_ERRORS

if TYPE_CHECKING:
    from multiq.broker.base import Broker
    from multiq.worker.items import Request

logger = logging.getLogger("multiq.worker")

class Markers:
    """Writes start markers on a :class:`~multiq.broker.wire.Link` of their own."""

    def __init__(self, broker: Broker, consumer: str, sender: Sender) -> None:
        self.broker = broker
        self.consumer = consumer
        self.link = Link(sender)

    @classmethod
    def of(cls, broker: Broker, consumer: str) -> Optional[Markers]:
        """Markers for a broker on one server (or Sentinel); None on a cluster, where the
        committer writes them with its batches instead."""
        if broker.cluster:
            return None
        sender = Sender.for_client(broker.client)
        return cls(broker, consumer, sender) if sender is not None else None

    def post(self, req: Request) -> None:
        """Write ``req``'s marker; sets ``req.marked`` and its number once it is sent."""
        commands = Commands()
        self.broker.mark_started(commands, req.delivery, self.consumer)
        try:
            req.marker = self.link.post(commands.stack)
        except REDIS_ERRORS as exc:
            logger.warning("Could not record the start of %s[%s] (%s); should this node "
                           "die while it runs, it runs again", req.name, req.id, exc)
            return
        req.marked = True

    def confirm(self, number: int) -> None:
        """Return once Redis has applied every marker up to ``number`` (or given up on
        them): never raises, since a commit must not wait on its markers' fate."""
        try:
            errors = self.link.confirm(number)
        except Exception:  # a marker lost is only a task that may run twice
            logger.exception("Could not confirm start markers")
            return
        for exc in errors:  # e.g. READONLY: that marker is missing
            logger.warning("A start marker was refused: %s", exc)

    def close(self) -> None:
        self.link.close()
