"""Schedules for database rows: ``solar`` (sun events), ``clocked`` and ``not_before``."""
from __future__ import annotations

import datetime as dt

import pytest

from multiq.beat.solar import solar
from multiq.beat.timed import NEVER, clocked, not_before
from multiq.schedules import crontab, schedule

UTC = dt.timezone.utc


def _at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("event, lat, lon, after, expected", [
    # almanac times (UTC) within a few minutes
    ("sunrise", 51.5074, -0.1278, _at(2024, 6, 21), _at(2024, 6, 21, 3, 43)),
    ("sunset", 51.5074, -0.1278, _at(2024, 6, 21), _at(2024, 6, 21, 20, 21)),
    ("solar_noon", 51.5074, -0.1278, _at(2024, 6, 21), _at(2024, 6, 21, 12, 2)),
    ("sunrise", 40.7128, -74.006, _at(2024, 1, 1), _at(2024, 1, 1, 12, 20)),
    # solar noon on the prime meridian follows the equation of time
    ("solar_noon", 0.0, 0.0, _at(2024, 3, 20), _at(2024, 3, 20, 12, 7, 30)),
    ("solar_noon", 0.0, 0.0, _at(2024, 11, 3), _at(2024, 11, 3, 11, 43, 36)),
])
def test_solar_events_match_the_almanac(event, lat, lon, after, expected):
    got = solar(event, lat, lon).next_after(after)
    assert abs((got - expected).total_seconds()) < 240, got


def test_solar_is_strictly_after_and_skips_days_without_the_event():
    london = solar("sunrise", 51.5074, -0.1278)
    first = london.next_after(_at(2024, 6, 21))
    second = london.next_after(first)
    assert dt.timedelta(hours=23, minutes=55) < second - first < dt.timedelta(hours=24, minutes=5)
    polar = solar("sunrise", 78.22, 15.65).next_after(_at(2024, 6, 1))  # midnight sun
    assert _at(2024, 8, 15) < polar < _at(2024, 9, 1)


def test_solar_refuses_unknown_events_and_coordinates():
    with pytest.raises(ValueError, match="Unknown solar event"):
        solar("moonrise", 0, 0)
    with pytest.raises(ValueError):
        solar("sunrise", 91, 0)


def test_clocked_is_due_once():
    at = _at(2030, 1, 1, 8)
    assert clocked(at).next_after(_at(2029, 12, 31)) == at
    assert clocked(at).next_after(at) == NEVER


def test_not_before_starts_an_interval_at_its_start_and_a_crontab_at_its_first_time():
    start = _at(2024, 5, 1, 10, 0, 30)
    every = not_before(schedule(60), start)
    assert every.next_after(_at(2024, 5, 1, 9)) == start
    assert every.next_after(start) == start + dt.timedelta(seconds=60)
    hourly = not_before(crontab(minute=0), start)
    hourly.tz = "UTC"
    assert hourly.next_after(_at(2024, 5, 1, 9)) == _at(2024, 5, 1, 11)
    assert hourly.inner.tz == "UTC"
