"""Unit tests for rate limits: ``parse_rate`` and the token bucket, on a fake clock."""
from __future__ import annotations

from typing import List

import pytest

from multiq.worker import ratelimit
from multiq.worker.ratelimit import TokenBucket, parse_rate


class FakeClock:
    """Stands in for the ``time`` module of multiq.worker.ratelimit: sleeping moves time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: List[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ratelimit, "time", fake)
    return fake


# -- parse_rate --------------------------------------------------------------------------------


@pytest.mark.parametrize("rate, per_second", [
    ("10/s", 10.0),
    ("100/m", 100 / 60),
    ("1000/h", 1000 / 3600),
    ("1/s", 1.0),
    ("0.5/s", 0.5),
    ("30/M", 0.5),
    ("7", 7.0),  # no unit: per second
    (5, 5.0),
    (2.5, 2.5),
])
def test_parse_rate(rate: object, per_second: float) -> None:
    assert parse_rate(rate) == pytest.approx(per_second)


@pytest.mark.parametrize("rate", [None, "", 0, "0/s", "0/m"])
def test_parse_rate_no_limit(rate: object) -> None:
    assert parse_rate(rate) == 0.0
    assert TokenBucket.from_rate(rate) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", ["fast", "ten/s", "10/x", "10/d", "/s", "10//s", "s/10"])
def test_parse_rate_rejects_bad_strings(rate: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(rate)


# -- the bucket ------------------------------------------------------------------------------


def test_bucket_lets_one_through_then_spaces_them(clock: FakeClock) -> None:
    bucket = TokenBucket.from_rate("10/s")
    assert bucket is not None
    start = clock.now
    bucket.take()
    assert clock.now == start and clock.sleeps == []  # the first is free
    for _ in range(20):
        bucket.take()
    assert clock.now - start == pytest.approx(2.0)  # 20 more at 10 a second
    assert all(s == pytest.approx(0.1) for s in clock.sleeps)


def test_bucket_counts_per_time_window(clock: FakeClock) -> None:
    bucket = TokenBucket.from_rate("60/m")  # one a second
    assert bucket is not None
    taken_by = {}
    for n in range(1, 11):
        bucket.take()
        taken_by[n] = clock.now - 1000.0
    # n takes need n-1 seconds: never more than one per second after the first
    assert taken_by == {n: pytest.approx(n - 1) for n in range(1, 11)}


def test_bucket_refills_while_idle_but_not_beyond_capacity(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=2.0, capacity=3.0)
    for _ in range(3):
        bucket.take()  # a burst of the capacity
    assert clock.sleeps == []
    bucket.take()
    assert clock.sleeps == [pytest.approx(0.5)]

    clock.advance(100.0)  # a long pause refills up to the capacity only
    clock.sleeps.clear()
    for _ in range(3):
        bucket.take()
    assert clock.sleeps == []
    bucket.take()
    assert clock.sleeps == [pytest.approx(0.5)]


def test_bucket_time_passing_counts(clock: FakeClock) -> None:
    bucket = TokenBucket.from_rate("1000/h")  # one every 3.6 s
    assert bucket is not None
    bucket.take()
    clock.advance(3.6)
    bucket.take()
    assert clock.sleeps == []  # the token had come back meanwhile
    clock.advance(1.0)
    bucket.take()
    assert sum(clock.sleeps) == pytest.approx(2.6)


def test_try_take_never_waits_and_says_how_long_to(clock: FakeClock) -> None:
    bucket = TokenBucket(2.0)  # 2/s, one token at most
    assert bucket.try_take() == 0.0
    assert bucket.try_take() == pytest.approx(0.5)
    clock.advance(0.25)
    assert bucket.try_take() == pytest.approx(0.25)
    clock.advance(0.25)
    assert bucket.try_take() == 0.0
    assert clock.sleeps == []
