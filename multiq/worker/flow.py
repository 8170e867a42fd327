"""What a finished task means for its work-flow: chord counts, and the chain steps that
will not run.

A task that ends FAILURE or REVOKED fails the rest of its chain too (each remaining id gets
the same outcome, so ``get()`` on the chain raises instead of waiting for ever), and counts
as failed in every chord those steps belong to. A chord member's outcome is counted with
:data:`multiq.chordstate.CHORD_PART`: inside the committer's result write when results and
broker share a server (``inline``), else in a round trip of its own per batch, whose fired
bodies go out with the batch's acks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from multiq import chordstate as chord
from multiq import states
from multiq.backends.base import exception_to_dict, make_doc
from multiq.describe import safe_str
from multiq.exceptions import BackendNotConfigured, EncodeError

if TYPE_CHECKING:
    from multiq.app import MultiQ
    from multiq.message import Message

logger = logging.getLogger("multiq.worker")

FINAL = (states.SUCCESS, states.FAILURE, states.REVOKED)


@dataclass(frozen=True)
class Write:
    """One result a finished task settles: its own, or a chain step's that will not run."""

    task_id: str
    member: Optional[chord.Member]  # its place in a chord, if any
    failed: bool


def writes(message: Message, state: str, app: MultiQ) -> List[Write]:
    """The results ``message``'s outcome settles besides its own document: its own chord
    count, and on failure each remaining chain step (with the chords they count in)."""
    return settles(message.id, message.options, state, app)


def settles(task_id: str, options: Dict[str, Any], state: str, app: MultiQ) -> List[Write]:
    """:func:`writes` of a task known by its id and message options."""
    failed = state != states.SUCCESS
    out: List[Write] = []
    own = chord.Member.of(options)
    if own is not None:
        out.append(Write(task_id, own, failed))
    rest = options.get("chain") if failed else None
    if rest:
        from multiq.canvas import ids_of, tails_of

        for step in rest:
            try:
                members = {t.id: chord.Member.of(t.options) for t in tails_of(step, app)}
                out += [Write(i, members.get(i), True) for i in ids_of(step, app)]
            except Exception:  # a step we cannot read fails nothing more
                logger.exception("Task %s: could not read a chain step %r", task_id, step)
    return out


class Flow:
    """Writes the chord counts and chain failures of one node's finished tasks."""

    def __init__(self, app: MultiQ) -> None:
        self.app = app
        try:
            self.backend: Any = app.backend
        except BackendNotConfigured:
            self.backend = None
        self.broker = app.broker
        self.inline_db: Optional[int] = None
        if self.backend is not None:
            from multiq.broker.wire import Sender

            sender = Sender.of(self.broker)
            if sender is not None and sender.same_server(self.backend.client):
                self.inline_db = sender.db

    @property
    def inline(self) -> bool:
        """Whether chord counts ride in the committer's result write."""
        return self.inline_db is not None

    def record(self, pipe: Any, chords: Any, write: Write, data: bytes, store: bool) -> None:
        """Record ``write`` (document ``data``): on the committer's result pipeline a chord
        count (with the result key when ``store``) or a plain result write; not inline, the
        count goes on ``chords``, run on its own (see :meth:`Committer`)."""
        if write.member is not None and self.inline:
            chord.part_command(pipe, self.backend, write.member, write.task_id, data,
                               write.failed, store, self.inline_db, self.broker.keys.queues)
            return
        if store:
            self.backend.store_encoded(write.task_id, data, pipe)
        if write.member is not None:
            chord.part_command(chords, self.backend, write.member, write.task_id, data,
                               write.failed, False, None, self.broker.keys.queues)

    def lost(self, pipe: Any, chords: Any, options: Dict[str, Any], task_id: str,
             state: str, result: Any) -> None:
        """A lost node's started task failed: count it so in its chord (unless it finished
        after all) and fail the rest of its chain."""
        for write in settles(task_id, options, state, self.app):
            data = encode_doc(self.backend, write.task_id, state, result, None)
            if write.task_id != task_id:
                self.backend.store_unless_final_encoded(write.task_id, data, pipe)
            if write.member is not None:
                chord.part_command(pipe if self.inline else chords, self.backend,
                                   write.member, write.task_id, data, True, False,
                                   self.inline_db, self.broker.keys.queues, unless_done=True)


def encode_doc(backend: Any, task_id: str, state: str, result: Any,
               traceback: Optional[str], extended: Optional[Dict[str, Any]] = None) -> bytes:
    """A result document's bytes; a value JSON cannot carry makes it a FAILURE."""
    try:
        data: bytes = backend.encode(make_doc(task_id, state, result, traceback, extended))
        return data
    except Exception as exc:
        err = EncodeError(safe_str(exc))
        logger.error("Task %s result cannot be stored: %r", task_id, err)
        failed: bytes = backend.encode(make_doc(task_id, states.FAILURE,
                                                exception_to_dict(err), traceback))
        return failed
