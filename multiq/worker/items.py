"""What a node hands its committer to write: one typed value per kind of write.

The executor, the pools and the consumer make these; :class:`multiq.worker.record.Recorder`
turns a batch of them into Redis commands. NamedTuples: cheap to make on the hot path,
immutable, and told apart by their type.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, NamedTuple, Optional, Union

if TYPE_CHECKING:
    from multiq.broker.redis import Delivery
    from multiq.trace import Outcome
    from multiq.worker.execute import Request


class Started(NamedTuple):
    """A task starts: its early-ack marker, STARTED state and task-started event."""

    req: Request

    @property
    def kind(self) -> str:
        return "start"


class Done(NamedTuple):
    """A task's outcome: its result (or retry, rejection) and its ack."""

    req: Request
    outcome: Outcome

    @property
    def kind(self) -> str:
        return "done"


class Event(NamedTuple):
    """An event for the events stream."""

    fields: Dict[str, Any]

    @property
    def kind(self) -> str:
        return "event"


class Redeliver(NamedTuple):
    """A message goes back to its queue (``counted``: as one more delivery)."""

    req: Request
    counted: bool

    @property
    def kind(self) -> str:
        return "redeliver"


class Revoked(NamedTuple):
    """A message not run: revoked, expired or terminated (``reason``)."""

    req: Request
    reason: str

    @property
    def kind(self) -> str:
        return "revoked"


class Refused(NamedTuple):
    """A message that cannot be run at all: dead-lettered with ``reason`` (and a FAILURE
    result when it has a usable task id)."""

    delivery: Delivery
    reason: str
    task_id: Optional[str]
    exc: BaseException

    @property
    def kind(self) -> str:
        return "refuse"


Item = Union[Started, Done, Event, Redeliver, Revoked, Refused]
#: the kinds that end what a message's node holds of it
FINISHING = (Done, Redeliver, Revoked)
