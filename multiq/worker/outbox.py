"""How one commit reaches Redis: result writes first, then the acks, in as few exchanges
as the servers allow.

The committer records a batch's commands (:class:`multiq.broker.wire.Commands`) and hands them
here. When the result backend and the broker are databases of one server, both go out in a
single exchange on one connection: ``SELECT`` the results' database, the result writes
(and ``WAIT`` with ``wait_replicas``), ``SELECT`` back, then the acks in ``MULTI``/``EXEC``.
Redis runs a connection's commands in order, so results are stored before their messages
are acknowledged, as with two exchanges, at half the round trips. Otherwise each side is
written on its own, results first.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

from multiq.broker.wire import Command, Commands, Writer

if TYPE_CHECKING:
    from multiq.broker.base import Broker


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

    def exchange(self, results: Optional[Commands], acks: Commands) -> List[Command]:
        """A commit as one exchange for the broker's server (see :attr:`single`): results
        in their database (sealed with ``WAIT`` when the backend asks), then the acks as
        one transaction."""
        stack: List[Command] = []
        if results is not None and results.stack:
            self.backend.seal(results)
            stack += [("SELECT", self.backend_db), *results.stack, ("SELECT", self.broker_db)]
        if acks.stack:
            stack += [("MULTI",), *acks.stack, ("EXEC",)]
        return stack

    def write(self, results: Optional[Commands], acks: Commands,
              chords: Optional[Commands] = None) -> None:
        """Results, then acks as one transaction; nothing is acknowledged unless its
        results were written. ``chords`` (chord counts that cannot ride in the result
        write) run after the results; the chord bodies they hand back are sent in the acks'
        transaction."""
        if self.single and chords is None:
            stack = self.exchange(results, acks)
            if stack:
                self.acks.sender.execute(stack)  # type: ignore[union-attr]
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
        self.acks.write(acks, transaction=True)

    def close(self) -> None:
        self.acks.close()
        if self.results is not None:
            self.results.close()
