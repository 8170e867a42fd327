"""What the rest of multiq asks of a broker (``app.broker``): the interface
:class:`~multiq.broker.redis.RedisBroker` implements.

A ``Pipeline`` argument is a redis-py pipeline or a :class:`~multiq.broker.wire.Commands`
that records the writes; methods that take one only record on it (the caller executes).
Only type checkers import this module's dependencies.
"""
from __future__ import annotations

from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    List,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
)

if TYPE_CHECKING:
    from multiq.broker.redis import Delivery, LostEntry, PostedFetch
    from multiq.broker.wire import Command, Sender
    from multiq.keys import Keys

Pipeline = Any


class Broker(Protocol):
    """Publishes, fetches, acknowledges and recovers messages."""

    url: str
    keys: Keys
    client: Any  # the redis-py client (plain, Sentinel's master or a cluster)
    cluster: bool
    max_deliveries: int
    queue_order: str  # see multiq.broker.order

    @property
    def wire(self) -> Optional[Sender]:
        """The sender of the hot path (None where the client cannot use one)."""

    # -- producing
    def publish(self, queue: str, data: bytes, *, priority: Optional[int] = None,
                eta: Optional[float] = None, member: str = "",
                pipe: Optional[Pipeline] = None) -> None: ...

    def note_queue(self, p: Pipeline, queue: str) -> None: ...

    def seal(self, p: Pipeline) -> None: ...

    def add_delayed(self, p: Pipeline, queue: str, band: int, member: str, data: bytes,
                    eta: float, redeliveries: int = 0) -> None: ...

    # -- consuming
    def declare(self, queues: Iterable[str]) -> None: ...

    def fetch(self, consumer: str, queues: Sequence[str], count: int) -> List[Delivery]: ...

    def fetch_after(self, commands: Sequence[Command], consumer: str, queues: Sequence[str],
                    count: int) -> Tuple[List[Any], List[Delivery]]: ...

    def post_fetch(self, commands: Sequence[Command], consumer: str, queues: Sequence[str],
                   count: int) -> PostedFetch: ...

    def wait(self, consumer: str, queues: Sequence[str], count: int,
             block_ms: int) -> List[Delivery]: ...

    def waiting(self) -> List[Delivery]: ...

    def stop_waiting(self) -> List[Delivery]: ...

    def own_pending(self, consumer: str, queues: Sequence[str],
                    page: int = 500) -> List[Delivery]: ...

    def mark_started(self, p: Pipeline, d: Delivery, consumer: str) -> None: ...

    def started_owners(self, deliveries: Sequence[Delivery]) -> Dict[bytes, str]: ...

    def ack(self, p: Pipeline, d: Delivery, started: bool = False) -> None: ...

    def ack_many(self, p: Pipeline, items: Sequence[Tuple[Delivery, bool]]) -> None: ...

    def requeue_delayed(self, p: Pipeline, d: Delivery, data: bytes, eta: float,
                        member: str) -> None: ...

    def dead_letter(self, p: Pipeline, d: Delivery, reason: str) -> None: ...

    def handback(self, deliveries: Sequence[Delivery]) -> int: ...

    def heal(self, queue: str) -> List[str]: ...

    # -- delays, liveness and recovery
    def promote(self, queue: str, now: float,
                limit: int = 500) -> Tuple[int, Optional[float]]: ...

    def heartbeat(self, consumer: str, info: Dict[str, Any], ttl: float,
                  timeout: Optional[float] = None, others: Sequence[str] = ()) -> None: ...

    def retire(self, consumer: str, queues: Sequence[str]) -> None: ...

    def forget_node(self, consumer: str) -> None: ...

    def live_nodes(self) -> Dict[str, Dict[str, Any]]: ...

    def holders(self, queue: str) -> Set[str]: ...

    def is_alive(self, consumers: Sequence[str]) -> List[bool]: ...

    def server_info(self) -> Tuple[str, float]: ...

    def recover(self, queue: str, consumer: str) -> Tuple[int, int, List[LostEntry]]: ...

    def ack_lost(self, entries: Sequence[LostEntry]) -> None: ...

    # -- revokes and administration
    def revoke(self, task_ids: Sequence[str], expires: float,
               payload: Dict[str, Any]) -> None: ...

    def revoked_ids(self) -> Set[str]: ...

    def queue_names(self) -> List[str]: ...

    def close(self) -> None: ...
