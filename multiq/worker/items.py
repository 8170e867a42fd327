"""The values that travel through a node, one way: fetched, run, committed.

A :class:`Request` is a message the node holds (made by the executor from a delivery);
an :class:`Outcome` is what happened when its task ran (made by :mod:`multiq.trace`); the
commit items are what the executor, the pools and the consumer hand the committer to write,
one typed value per kind of write, which :class:`multiq.worker.record.Recorder` turns into
Redis commands. The commit items are NamedTuples: cheap to make on the hot path, immutable,
and told apart by their type. Nothing here imports the rest of multiq.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Union

if TYPE_CHECKING:
    from multiq.broker.redis import Delivery
    from multiq.exceptions import Retry
    from multiq.message import Message
    from multiq.task import Task


@dataclass
class Request:
    """A decoded message this node holds, with what it needs to run and commit it."""

    delivery: Delivery
    message: Message
    task: Task
    early_ack: bool
    started: bool = False
    marked: bool = False  # the start marker was written to Redis
    marker: int = 0  # its number (see multiq.worker.markers), when written there
    time_start: Optional[float] = None
    time_done: Optional[float] = None  # when its outcome was handed to the committer
    worker_pid: Optional[int] = None
    info: Dict[str, Any] = field(default_factory=dict)
    committed: bool = False  # its outcome went to the committer (see Executor.fail)

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def name(self) -> str:
        return self.message.task

    def describe(self) -> Dict[str, Any]:
        """The fields ``inspect active`` / ``reserved`` show."""
        m = self.message
        return {
            "id": m.id, "name": m.task, "args": m.args, "kwargs": m.kwargs,
            "type": m.task, "hostname": self.info.get("hostname"),
            "time_start": self.time_start, "acknowledged": self.started and self.early_ack,
            "delivery_info": {"routing_key": m.queue, "priority": m.priority,
                              "redelivered": self.delivery.redeliveries > 0},
            "worker_pid": self.worker_pid, "retries": m.retries, "eta": m.eta,
            "expires": m.expires,
        }


@dataclass
class Outcome:
    """What happened to one call."""

    state: str
    retval: Any = None
    exc: Optional[BaseException] = None
    traceback: Optional[str] = None
    retry: Optional[Retry] = None
    requeue: bool = False  # Reject(requeue=True)
    children: Optional[List[Any]] = None  # result tuples of what the task sent
    #: messages its callbacks and chain step sent, to write with its ack (see
    #: MultiQ.deferred_publishes): (queue, data, priority, eta, member)
    sends: Optional[List[Any]] = None


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
