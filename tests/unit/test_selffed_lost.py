"""What a prefork node does with the messages of a child that died
(``multiq.pools.selffed_lost.resolve``), with a broker and committer that record calls."""
from __future__ import annotations

import signal
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest

from multiq.broker.redis import Delivery
from multiq.exceptions import TimeLimitExceeded, WorkerLostError
from multiq.message import Message
from multiq.pools.selffed_lost import Death, resolve
from multiq.pools.slots import IDLE, PREPARING, RUNNING, SlotView

CHILD = "n@h|abc/1.1"
KILLED = signal.SIGKILL  # a raw wait status: killed by SIGKILL


def _d(n: int, task: str = "t.run", redeliveries: int = 0) -> Delivery:
    data = Message(id=f"id{n}", task=task).encode()
    return Delivery("q", 0, f"{n}-0".encode(), data, redeliveries)


class _Pipe:
    def __init__(self, log: List[Any]) -> None:
        self.log = log

    def xadd(self, key: str, fields: Dict[str, Any]) -> None:
        self.log.append(("xadd", key, fields["n"]))

    def execute(self) -> None:
        self.log.append(("exec",))


class _Broker:
    max_deliveries = 5

    def __init__(self, pending: List[Delivery], started: Dict[bytes, str]) -> None:
        self.pending, self.started, self.log = pending, started, []  # type: ignore[var-annotated]
        self.keys = SimpleNamespace(stream=lambda q, b: f"{q}:{b}")
        self.client = SimpleNamespace(pipeline=lambda transaction: _Pipe(self.log))

    def own_pending(self, consumer: str, queues: Any) -> List[Delivery]:
        assert consumer == CHILD
        return self.pending

    def started_owners(self, deliveries: Any) -> Dict[bytes, str]:
        return {d.entry_id: self.started[d.entry_id] for d in deliveries
                if d.entry_id in self.started}

    def handback(self, deliveries: List[Delivery]) -> int:
        self.log.append(("handback", [d.entry_id for d in deliveries]))
        return len(deliveries)

    def dead_letter(self, p: Any, d: Delivery, reason: str) -> None:
        self.log.append(("dead", d.entry_id, reason))

    def ack(self, p: Any, d: Delivery, started: bool = False) -> None:
        self.log.append(("ack", d.entry_id))

    def retire(self, consumer: str, queues: Any) -> None:
        self.log.append(("retire", consumer))


class _Committer:
    def __init__(self) -> None:
        self.log: List[Any] = []

    def complete(self, req: Any, outcome: Any) -> None:
        self.log.append(("complete", req.id, outcome.state, outcome.exc))

    def redeliver(self, req: Any, count: bool = True) -> None:
        self.log.append(("redeliver", req.id, count))

    def revoked(self, req: Any, reason: str) -> None:
        self.log.append(("revoked", req.id, reason))

    def lost(self, entries: Any, node: str) -> None:
        self.log.append(("lost", [e.entry_id for e in entries]))

    def flush(self, timeout: float = 30.0) -> bool:
        return True


def _executor(broker: _Broker, acks_late: bool = False, reject: bool = False) -> Any:
    task = SimpleNamespace(name="t.run", acks_late=acks_late, reject_on_worker_lost=reject)
    app = SimpleNamespace(broker=broker, tasks={"t.run": task},
                          conf=SimpleNamespace(task_reject_on_worker_lost=False))
    return SimpleNamespace(app=app, accept={"application/json"}, hostname="n@h",
                           committer=_Committer())


def _view(state: int, d: Delivery, early_ack: bool = True) -> SlotView:
    return SlotView(99, state, 0, early_ack, d.band, 1.0, 2.0, 0.0, 3.0, d.entry_id, d.queue,
                    "?")


def _death(view: SlotView, **kw: Any) -> Death:
    return Death(**{"index": 1, "pid": 99, "consumer": CHILD, "status": KILLED, "view": view,
                    "terminated": None, "timed_out": None, "cold": False, **kw})


@pytest.mark.timeout(10)
def test_the_running_task_fails_lost_the_rest_go_back_unchanged() -> None:
    running, behind, finished = _d(1), _d(2), _d(3)
    broker = _Broker([running, behind, finished], {b"1-0": CHILD, b"3-0": CHILD})
    ex = _executor(broker)
    resolve(ex, _death(_view(RUNNING, running)), ["q"])
    assert ("handback", [b"2-0"]) in broker.log
    assert ex.committer.log[0] == ("lost", [b"3-0"])  # finished, outcome never written
    (_, task_id, state, exc) = ex.committer.log[1]
    assert (task_id, state) == ("id1", "FAILURE") and isinstance(exc, WorkerLostError)
    assert "signal 9 (SIGKILL)" in str(exc)
    assert broker.log[-1] == ("retire", CHILD)


@pytest.mark.timeout(10)
def test_what_the_node_killed_it_for_decides_the_outcome() -> None:
    d = _d(1)
    ex = _executor(_Broker([d], {}))
    resolve(ex, _death(_view(RUNNING, d), terminated=d.entry_id), ["q"])
    assert ex.committer.log == [("revoked", "id1", "terminated")]
    ex = _executor(_Broker([d], {}))
    resolve(ex, _death(_view(RUNNING, d), timed_out=d.entry_id), ["q"])
    (_, _, state, exc) = ex.committer.log[0]
    assert state == "FAILURE" and isinstance(exc, TimeLimitExceeded)


@pytest.mark.timeout(10)
def test_late_ack_goes_back_counted_only_with_reject_on_worker_lost() -> None:
    d = _d(1)
    ex = _executor(_Broker([d], {}), acks_late=True, reject=True)
    resolve(ex, _death(_view(RUNNING, d, early_ack=False)), ["q"])
    assert ex.committer.log == [("redeliver", "id1", True)]
    ex = _executor(_Broker([d], {}), acks_late=True, reject=True)
    resolve(ex, _death(_view(RUNNING, d, early_ack=False), cold=True), ["q"])
    assert ex.committer.log == [("redeliver", "id1", False)]  # cold: back, not counted
    ex = _executor(_Broker([d], {}), acks_late=True)
    resolve(ex, _death(_view(RUNNING, d, early_ack=False)), ["q"])
    assert ex.committer.log[0][2] == "FAILURE"


@pytest.mark.timeout(10)
def test_an_entry_that_killed_its_decoder_goes_back_counted_then_dead() -> None:
    d = _d(1, redeliveries=1)
    broker = _Broker([d], {})
    resolve(_executor(broker), _death(_view(PREPARING, d)), ["q"])
    assert ("xadd", "q:0", 2) in broker.log and ("ack", b"1-0") in broker.log
    d = _d(1, redeliveries=4)
    broker = _Broker([d], {})
    resolve(_executor(broker), _death(_view(PREPARING, d)), ["q"])
    assert [e[0] for e in broker.log[:3]] == ["dead", "ack", "exec"]


@pytest.mark.timeout(10)
def test_an_idle_child_only_hands_back() -> None:
    a, b = _d(1), _d(2)
    broker = _Broker([a, b], {})
    ex = _executor(broker)
    resolve(ex, _death(_view(IDLE, a)), ["q"])
    assert broker.log == [("handback", [b"1-0", b"2-0"]), ("retire", CHILD)]
    assert ex.committer.log == []
