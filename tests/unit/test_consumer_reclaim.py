"""After an outage a node takes back what Redis gave it but it never got (Consumer._reclaim)."""
from __future__ import annotations

from collections import deque
from typing import Any, List

from multiq.broker.redis import Delivery
from multiq.worker.consumer import Consumer


class _Req:
    def __init__(self, d: Delivery) -> None:
        self.delivery = d


class _Pool:
    kind = "threads"
    feeder = None

    def __init__(self, held: List[Any]) -> None:
        self._held = held

    def held(self) -> List[Any]:
        return self._held


class _Committer:
    rider = None

    def __init__(self, ids: set) -> None:
        self.ids = ids

    def holding(self) -> set:
        return self.ids


class _Executor:
    def __init__(self, committer: _Committer) -> None:
        self.committer = committer

    def prepare(self, d: Delivery) -> _Req:
        return _Req(d)


class _Broker:
    wire = None
    queue_order = "round_robin"

    def __init__(self, pending: List[Delivery], waiting: List[Delivery]) -> None:
        self.pending, self._waiting = pending, waiting

    def own_pending(self, consumer: str, queues: Any) -> List[Delivery]:
        return self.pending

    def waiting(self) -> List[Delivery]:
        out, self._waiting = self._waiting, []
        return out


def _d(n: int) -> Delivery:
    return Delivery("q", 0, b"%d-0" % n, b"{}")


def test_only_what_the_node_neither_holds_nor_finished_is_taken_back() -> None:
    running, reserved, finishing, lost, waited = _d(1), _d(2), _d(3), _d(4), _d(5)
    committer = _Committer({finishing.entry_id})
    broker = _Broker([running, reserved, finishing, lost, waited], [waited])
    consumer = Consumer(broker, "c", ["q"], 4, _Pool([_Req(running)]),  # type: ignore
                        _Executor(committer))  # type: ignore
    consumer.reserved = deque([_Req(reserved)])  # type: ignore
    consumer._reclaim()
    assert [r.delivery for r in consumer.reserved] == [reserved, waited, lost]
