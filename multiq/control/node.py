"""What the control command handlers ask of a node: a small interface, not its attributes.

The worker's implementation is :class:`multiq.worker.node.NodeControl`; a test runs the
handlers against any stand-in with these methods. Values the handlers check (task names,
counts, signals) are checked before a method is called.
"""
from __future__ import annotations

from typing import Any, Collection, Dict, List, Optional, Protocol, Sequence, Tuple


class Held(Protocol):
    """A request a node holds (running, or waiting to start), as inspect shows it."""

    @property
    def id(self) -> str: ...

    def describe(self) -> Dict[str, Any]: ...


class Node(Protocol):
    """One worker node, as the remote-control commands see it."""

    @property
    def hostname(self) -> str: ...

    @property
    def started(self) -> float:
        """When the node started (``time.time()``)."""

    @property
    def app(self) -> Any:
        """The node's app: its tasks, configuration and broker."""

    @property
    def clock(self) -> int:
        """The node's logical clock (one tick per control message)."""

    # -- what it is and holds ----------------------------------------------------------

    def pool_info(self) -> Dict[str, Any]:
        """The pool's description, with its ``max-concurrency`` (0 without a pool)."""

    def prefetch(self) -> int:
        """How many messages the node fetches ahead."""

    def totals(self) -> Dict[str, int]:
        """Tasks run by name, in every process of the node."""

    def current_queues(self) -> List[str]:
        """The queues the node consumes from."""

    def consuming(self) -> bool:
        """Whether the node's consumer exists (queues can be added and cancelled)."""

    def running(self) -> Sequence[Held]:
        """The requests running now."""

    def reserved(self) -> Sequence[Held]:
        """Held and not started: queued in the pool (next to run), then prefetched."""

    def revoked(self) -> Collection[str]:
        """The task ids flagged as revoked."""

    def autoscaling(self) -> bool:
        """Whether an autoscaler sets the pool's size."""

    # -- changes ---------------------------------------------------------------------

    def set_events(self, enabled: bool) -> None:
        """Send task events, or stop sending them."""

    def set_rate_limit(self, task_name: str, rate: Optional[Any]) -> None:
        """Limit how often a known task starts here (None: no limit)."""

    def set_time_limit(self, task_name: str, soft: Optional[float],
                       hard: Optional[float]) -> None:
        """Set a known task's soft and hard time limits, in seconds."""

    def revoke(self, ids: List[str], terminate: bool, signo: int) -> List[str]:
        """Flag ``ids`` as revoked; with ``terminate``, send ``signo`` to the processes
        running them. Returns the ids whose processes were signalled."""

    def request_stop(self, mode: str) -> None:
        """Ask for a ``"warm"`` or ``"cold"`` shutdown."""

    def request_restart(self) -> None:
        """Stop warm, then start again in place (same pid and arguments), as HUP does."""

    def grow(self, n: int) -> int:
        """Grow the pool by ``n`` (and the prefetch with it); returns its new size."""

    def shrink(self, n: int) -> int:
        """Shrink the pool by ``n`` (and the prefetch with it); returns its new size."""

    def set_autoscale(self, high: int, low: int) -> Tuple[int, int]:
        """Autoscale the pool between ``low`` and ``high``; returns (max, min) now set."""

    def add_queue(self, queue: str) -> None:
        """Start consuming from ``queue``."""

    def cancel_queue(self, queue: str) -> None:
        """Stop consuming from ``queue``."""
