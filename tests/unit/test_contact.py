"""A node judges other nodes' liveness only after a full liveness period of steady contact
with Redis (multiq.worker.contact), and recovery follows that rule (components.Recovery)."""
from __future__ import annotations

from typing import Any, List, Tuple

import pytest

from multiq.worker.components import Recovery
from multiq.worker.contact import Contact

PERIOD, GAP = 2.0, 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _contact() -> Tuple[Contact, Clock]:
    clock = Clock()
    return Contact(PERIOD, GAP, clock=clock), clock


def _beats(contact: Contact, clock: Clock, seconds: float, every: float = 0.5) -> None:
    end = clock.now + seconds
    while clock.now < end:
        clock.now += every
        contact.beat()


@pytest.mark.timeout(5)
def test_trusted_only_after_a_full_period_of_beats() -> None:
    contact, clock = _contact()
    assert not contact.trusted()  # never in contact yet
    contact.beat()
    _beats(contact, clock, PERIOD - 0.5)
    assert not contact.trusted()
    _beats(contact, clock, 0.5)
    assert contact.trusted()


@pytest.mark.timeout(5)
def test_a_failed_call_or_a_late_beat_starts_the_period_again() -> None:
    contact, clock = _contact()
    contact.beat()
    _beats(contact, clock, PERIOD)
    contact.lost()
    assert not contact.trusted()
    _beats(contact, clock, 0.5)  # back: contact starts again with this beat
    _beats(contact, clock, PERIOD - 0.5)
    assert not contact.trusted()
    _beats(contact, clock, 0.5)
    assert contact.trusted()

    clock.now += GAP + 0.1  # the process or the server was stalled
    contact.beat()
    assert not contact.trusted()
    _beats(contact, clock, PERIOD)
    assert contact.trusted()


@pytest.mark.timeout(5)
def test_a_restarted_or_new_server_starts_the_period_again() -> None:
    contact, clock = _contact()
    contact.beat()
    contact.server("run-1", uptime=1000)
    _beats(contact, clock, PERIOD)
    contact.server("run-1", uptime=1000 + PERIOD)
    assert contact.trusted()
    contact.server("run-2", uptime=5000)  # a failover: the new master may be old
    assert not contact.trusted()
    _beats(contact, clock, PERIOD)
    contact.server("run-2", uptime=5000 + PERIOD)
    assert contact.trusted()
    contact.server("run-2", uptime=0.5)  # (the same id is not expected, the uptime decides)
    assert not contact.trusted()


@pytest.mark.timeout(5)
def test_an_answer_counts_only_when_asked_in_trusted_contact_and_answered_in_time() -> None:
    contact, clock = _contact()
    contact.beat()
    _beats(contact, clock, PERIOD)
    asked = clock.now
    clock.now += 0.1
    assert contact.answered(asked)

    asked = clock.now
    contact.lost()  # the heartbeat failed meanwhile
    assert not contact.answered(asked)

    contact.beat()
    _beats(contact, clock, PERIOD)
    asked = clock.now
    clock.now += GAP + 0.1  # a slow answer: the server was stalled
    assert not contact.answered(asked)
    assert not contact.trusted()


@pytest.mark.timeout(5)
def test_a_reconnect_asks_for_a_beat() -> None:
    contact, _ = _contact()
    woken: List[bool] = []
    contact.reconnected()  # nobody to wake yet
    contact.on_reconnect = lambda: woken.append(True)
    contact.reconnected()
    assert woken == [True]


class _Broker:
    def __init__(self, contact: Contact, clock: Clock, answer_takes: float = 0.0) -> None:
        self.contact, self.clock, self.answer_takes = contact, clock, answer_takes
        self.recovered: List[Tuple[str, str]] = []

    def server_info(self) -> Tuple[str, float]:
        return "run-1", 10_000.0

    def holders(self, queue: str) -> set:
        return {"me", "gone", "alive"}

    def is_alive(self, consumers: List[str]) -> List[bool]:
        self.clock.now += self.answer_takes
        return [c == "alive" for c in consumers]

    def recover(self, queue: str, consumer: str) -> Tuple[int, int, list]:
        self.recovered.append((queue, consumer))
        return 1, 0, []


def _recovery(answer_takes: float = 0.0) -> Tuple[Recovery, _Broker, Contact, Clock]:
    contact, clock = _contact()
    broker = _Broker(contact, clock, answer_takes)
    committer: Any = None
    recovery = Recovery(broker, "me", lambda: ["q"], committer, 1.0,  # type: ignore[arg-type]
                        contact)
    return recovery, broker, contact, clock


@pytest.mark.timeout(5)
def test_recovery_waits_for_trusted_contact_then_recovers_only_the_gone() -> None:
    recovery, broker, contact, clock = _recovery()
    contact.beat()
    recovery.tick()
    assert broker.recovered == []  # just (re)connected: every key may have expired
    _beats(contact, clock, PERIOD)
    recovery.tick()
    assert broker.recovered == [("q", "gone")]


@pytest.mark.timeout(5)
def test_recovery_ignores_a_late_answer() -> None:
    recovery, broker, contact, clock = _recovery(answer_takes=GAP + 0.5)
    contact.beat()
    _beats(contact, clock, PERIOD)
    recovery.tick()
    assert broker.recovered == []


@pytest.mark.timeout(5)
def test_recovery_goes_on_where_the_server_hides_its_info(caplog: Any) -> None:
    import redis

    recovery, broker, contact, clock = _recovery()

    def refused() -> Tuple[str, float]:
        raise redis.ResponseError("unknown command 'INFO'")

    broker.server_info = refused  # type: ignore[method-assign]
    contact.beat()
    _beats(contact, clock, PERIOD)
    recovery.tick()
    recovery.tick()
    assert broker.recovered == [("q", "gone"), ("q", "gone")]
    assert caplog.text.count("Cannot read the server's run id") == 1
