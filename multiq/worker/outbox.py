"""How one commit reaches Redis: result writes first, then the acks, in as few exchanges
as the servers allow.

The committer records a batch's commands (:class:`multiq.broker.wire.Commands`) and hands them
here. When the result backend and the broker are databases of one server, both go out in a
single exchange on one connection: ``SELECT`` the results' database, the result writes
(and ``WAIT`` with ``wait_replicas``), ``SELECT`` back, then the acks in ``MULTI``/``EXEC``.
Redis runs a connection's commands in order, so results are stored before their messages
are acknowledged, as with two exchanges, at half the round trips. Otherwise each side is
written on its own, results first.

The batch's Prometheus counters (``counts``, see :mod:`multiq.metrics.tally`) follow the
acks' transaction in the same exchange: Redis runs a connection's commands in order, so they
land with the acks, and outside the transaction an error of theirs (a user without the
right to HINCRBY, a key someone replaced) can never abort it. Such an error is logged, never
raised: the batch's own writes are done.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, List, Optional

from multiq.broker.wire import Command, Commands, Writer

if TYPE_CHECKING:
    from multiq.broker.base import Broker

logger = logging.getLogger("multiq.worker")
WARN_EVERY = 60.0  # seconds between two warnings that counters could not be written


class Outbox:
    """Writes a commit's recorded result commands and acks."""

    def __init__(self, broker: Broker, backend: Any) -> None:
        """``backend`` is None when no result backend is configured."""
        self.broker, self.backend = broker, backend
        self.acks = Writer(broker.client)
        self.results = Writer(backend.client) if backend is not None else None
        sender = self.acks.sender
        self.shared = sender is not None and backend is not None \
            and sender.same_server(backend.client)
        if self.shared:
            self.broker_db = sender.db  # type: ignore[union-attr]
            self.backend_db = self.results.sender.db  # type: ignore[union-attr]

    @property
    def single(self) -> bool:
        """Whether every write of a commit can go out as one exchange on one connection."""
        return self.shared or (self.backend is None and self.acks.sender is not None)

    def exchange(self, results: Optional[Commands], acks: Commands,
                 counts: Optional[Commands] = None) -> List[Command]:
        """A commit as one exchange for the broker's server (see :attr:`single`): results
        in their database (sealed with ``WAIT`` when the backend asks), then the acks and
        then the counters."""
        stack: List[Command] = []
        if results is not None and results.stack:
            self.backend.seal(results)
            stack += [("SELECT", self.backend_db), *results.stack, ("SELECT", self.broker_db)]
        if acks.stack:
            stack += [("MULTI",), *acks.stack, ("EXEC",)]
        if counts:
            stack += counts.stack
        return stack

    def write(self, results: Optional[Commands], acks: Commands,
              chords: Optional[Commands] = None, counts: Optional[Commands] = None) -> None:
        """Results, then acks as one transaction; nothing is acknowledged unless its
        results were written. ``chords`` (chord counts that cannot ride in the result
        write) run after the results; the chord bodies they hand back are sent in the acks'
        transaction. The ``counts`` follow it."""
        if self.single and chords is None:
            stack = self.exchange(results, acks, counts)
            if stack:
                replies = self.acks.sender.execute(  # type: ignore[union-attr]
                    stack, raise_errors=not counts)
                if counts:
                    check(replies, len(counts))
            return
        if results is not None and results.stack:
            self.backend.seal(results)
            self.results.write(results)  # type: ignore[union-attr]
        if chords is not None and self.results is not None:
            from multiq.chordstate import send_commands

            sends = Commands()
            for reply in self.results.write(chords):
                send_commands(sends, self.broker, reply)
            acks.stack[:0] = sends.stack
        if not counts:
            self.acks.write(acks, transaction=True)
        elif self.acks.sender is not None:
            check(self.acks.sender.execute([("MULTI",), *acks.stack, ("EXEC",), *counts.stack],
                                           raise_errors=False), len(counts))
        else:  # (a cluster: one plain pipeline, each command on its own shard)
            both = Commands()
            both.stack, both.options = [*acks.stack, *counts.stack], acks.options
            check(self.acks.write(both, transaction=True, raise_errors=False), len(counts))

    def close(self) -> None:
        self.acks.close()
        if self.results is not None:
            self.results.close()


_warned = [0.0]  # when counters last could not be written (monotonic)


def check(replies: List[Any], counted: int) -> None:
    """Raise the first error among a commit's ``replies`` (inside a transaction's too)
    except those of the counters, its last ``counted`` commands: logged."""
    for reply in uncounted(replies, len(replies), counted):
        for r in reply if isinstance(reply, list) else (reply,):
            if isinstance(r, Exception):
                raise r


def uncounted(replies: List[Any], end: int, counted: int) -> List[Any]:
    """``replies`` without the counters' own (the ``counted`` before position ``end``),
    their first error logged (once a minute at most)."""
    start = max(0, end - counted)
    bad = next((r for r in replies[start:end] if isinstance(r, Exception)), None)
    if bad is not None and time.monotonic() - _warned[0] >= WARN_EVERY:
        _warned[0] = time.monotonic()
        logger.warning("Could not count outcomes for Prometheus (the outcomes are written; "
                       "worker_metrics = False stops counting): %s", bad)
    return [*replies[:start], *replies[end:]]
