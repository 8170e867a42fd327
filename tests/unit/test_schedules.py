"""Schedule arithmetic of ``multiq.schedules`` with fixed moments (no clock, no Redis).

``schedule(run_every)`` and ``crontab(...)`` answer :meth:`next_after` (the first due time
strictly after a moment) and Celery's :meth:`is_due` (``(due?, seconds to the next check)``)
for an injected ``at``. Cron fields take ``*``, ``*/15``, ranges, day names, lists and sets
of ints; the time zone (``tz``, set by beat from the app's ``timezone``) decides what a wall
clock time means on daylight-saving days.
"""
from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from multiq.beat.table import Entry, entry_from_config, entry_from_json
from multiq.schedules import (
    BaseSchedule,
    crontab,
    from_dict,
    maybe_schedule,
    now,
    schedule,
)

pytestmark = pytest.mark.timeout(30)

UTC = dt.timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def runs(sched: BaseSchedule, start: dt.datetime, count: int) -> list:
    """The next ``count`` due times after ``start``, each from the previous one, in UTC.

    (Aware datetimes in a repeated or skipped wall-clock hour never compare equal to
    another zone's (PEP 495), so results are compared as UTC instants.)
    """
    out, moment = [], start
    for _ in range(count):
        moment = sched.next_after(moment)
        out.append(moment.astimezone(UTC))
    return out


def runs_until(sched: BaseSchedule, start: dt.datetime, end: dt.datetime) -> list:
    out, moment = [], start
    while True:
        moment = sched.next_after(moment)
        if moment >= end:
            return out
        out.append(moment.astimezone(UTC))
        assert len(out) < 10_000, "runaway schedule"


# -- schedule(run_every) ---------------------------------------------------------------------


def test_schedule_seconds_and_timedelta_are_the_same():
    a, b = schedule(10), schedule(dt.timedelta(seconds=10))
    assert a == b
    assert a.seconds == b.seconds == 10.0
    assert a.run_every == dt.timedelta(seconds=10)
    assert schedule(0.5).run_every == dt.timedelta(milliseconds=500)
    assert schedule(dt.timedelta(minutes=2)).seconds == 120.0
    assert schedule(10) != schedule(11)
    assert schedule(10) != schedule(10, relative=True)
    assert "10s" in repr(a)


@pytest.mark.parametrize("bad", [0, -1, -0.5, dt.timedelta(0), dt.timedelta(seconds=-3)])
def test_schedule_must_be_positive(bad):
    with pytest.raises(ValueError):
        schedule(bad)


def test_schedule_next_after_is_last_plus_interval():
    s = schedule(10)
    assert s.next_after(utc(2024, 1, 1, 0, 0, 3)) == utc(2024, 1, 1, 0, 0, 13)
    assert s.next_after(utc(2024, 1, 1, 23, 59, 55)) == utc(2024, 1, 2, 0, 0, 5)
    start = utc(2024, 1, 1, 0, 0, 0, 250000)
    assert runs(s, start, 3) == [start + dt.timedelta(seconds=10 * i) for i in (1, 2, 3)]


def test_schedule_relative_aligns_to_the_clock():
    s = schedule(10, relative=True)
    assert s.next_after(utc(2024, 1, 1, 0, 0, 3)) == utc(2024, 1, 1, 0, 0, 10)
    assert s.next_after(utc(2024, 1, 1, 0, 0, 9, 999000)) == utc(2024, 1, 1, 0, 0, 10)
    # strictly after: a moment on a slot gives the next slot
    assert s.next_after(utc(2024, 1, 1, 0, 0, 10)) == utc(2024, 1, 1, 0, 0, 20)
    assert s.next_after(utc(2024, 1, 1, 0, 0, 57)) == utc(2024, 1, 1, 0, 1, 0)
    hourly = schedule(dt.timedelta(hours=1), relative=True)
    assert hourly.next_after(utc(2024, 1, 1, 5, 17, 3)) == utc(2024, 1, 1, 6, 0, 0)
    assert runs(hourly, utc(2024, 1, 1, 5, 17, 3), 3) == [
        utc(2024, 1, 1, 6), utc(2024, 1, 1, 7), utc(2024, 1, 1, 8)]
    # the zone of the moment is kept
    moment = dt.datetime(2024, 1, 1, 9, 0, 3, tzinfo=BERLIN)
    due = s.next_after(moment)
    assert due == dt.datetime(2024, 1, 1, 9, 0, 10, tzinfo=BERLIN)
    assert due.utcoffset() == dt.timedelta(hours=1)


def test_schedule_is_due_with_fixed_moments():
    s = schedule(10)
    last = utc(2024, 1, 1, 0, 0, 0)
    # not yet: the wait is what is left
    assert s.is_due(last, at=utc(2024, 1, 1, 0, 0, 4)) == (False, 6.0)
    # exactly due, and overdue: due, next check one whole interval from now
    assert s.is_due(last, at=utc(2024, 1, 1, 0, 0, 10)) == (True, 10.0)
    assert s.is_due(last, at=utc(2024, 1, 1, 0, 0, 15)) == (True, 10.0)
    # long overdue (many missed intervals): still just "due", once
    assert s.is_due(last, at=utc(2024, 1, 2)) == (True, 10.0)
    rel = schedule(10, relative=True)
    assert rel.is_due(last, at=utc(2024, 1, 1, 0, 0, 13)) == (True, 7.0)
    assert rel.is_due(utc(2024, 1, 1, 0, 0, 11), at=utc(2024, 1, 1, 0, 0, 13)) == (False, 7.0)


# -- crontab ---------------------------------------------------------------------------------


def test_crontab_default_is_every_minute():
    c = crontab()
    assert c.expression == "* * * * *"
    assert c.next_after(utc(2024, 1, 1, 0, 0, 30)) == utc(2024, 1, 1, 0, 1)
    assert c.next_after(utc(2024, 1, 1, 0, 1)) == utc(2024, 1, 1, 0, 2)  # strictly after
    assert c.next_after(utc(2024, 12, 31, 23, 59, 30)) == utc(2025, 1, 1, 0, 0)
    assert runs(c, utc(2024, 1, 1), 3) == [utc(2024, 1, 1, 0, m) for m in (1, 2, 3)]


def test_crontab_every_15_minutes():
    c = crontab(minute="*/15")
    assert runs(c, utc(2024, 1, 1, 0, 0), 5) == [
        utc(2024, 1, 1, 0, 15), utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 0, 45),
        utc(2024, 1, 1, 1, 0), utc(2024, 1, 1, 1, 15)]
    assert c.next_after(utc(2024, 1, 1, 0, 59, 59)) == utc(2024, 1, 1, 1, 0)
    assert c.next_after(utc(2024, 2, 29, 23, 50)) == utc(2024, 3, 1, 0, 0)


def test_crontab_is_due_with_fixed_moments():
    c = crontab(minute=0, hour=12)
    last = utc(2024, 1, 1, 12, 0)
    assert c.is_due(last, at=utc(2024, 1, 2, 11, 0)) == (False, 3600.0)
    # due at noon the next day; the next check is a day later
    assert c.is_due(last, at=utc(2024, 1, 2, 12, 0)) == (True, 86400.0)
    # a week of downtime: due (once), next check at the next noon
    assert c.is_due(last, at=utc(2024, 1, 8, 18, 0)) == (True, 18 * 3600.0)


def test_crontab_day_31_skips_months_without_a_31st():
    c = crontab(minute=0, hour=0, day_of_month=31)
    assert runs(c, utc(2024, 1, 31), 7) == [
        utc(2024, 3, 31), utc(2024, 5, 31), utc(2024, 7, 31), utc(2024, 8, 31),
        utc(2024, 10, 31), utc(2024, 12, 31), utc(2025, 1, 31)]


def test_crontab_days_28_to_31_at_month_ends():
    c = crontab(minute=0, hour=0, day_of_month="28-31")
    # February of a common year has only the 28th; April stops at the 30th
    assert runs(c, utc(2023, 2, 27), 8) == [
        utc(2023, 2, 28),
        utc(2023, 3, 28), utc(2023, 3, 29), utc(2023, 3, 30), utc(2023, 3, 31),
        utc(2023, 4, 28), utc(2023, 4, 29), utc(2023, 4, 30)]
    # a leap year's February has the 29th, and no 30th or 31st
    assert runs(c, utc(2024, 2, 27), 3) == [utc(2024, 2, 28), utc(2024, 2, 29), utc(2024, 3, 28)]
    # the next 29 February is four years away
    leap = crontab(minute=0, hour=0, day_of_month=29, month_of_year=2)
    assert leap.next_after(utc(2024, 3, 1)) == utc(2028, 2, 29)


def test_crontab_mon_fri():
    c = crontab(minute=0, hour=9, day_of_week="mon-fri")
    # from Friday 2024-06-07 10:00: the weekend is skipped
    got = runs(c, utc(2024, 6, 7, 10), 6)
    assert [d.strftime("%a %d") for d in got] == [
        "Mon 10", "Tue 11", "Wed 12", "Thu 13", "Fri 14", "Mon 17"]
    assert all(d.hour == 9 and d.minute == 0 for d in got)


@pytest.mark.parametrize(("dow", "days"), [
    ("sun", ["Sun 09", "Sun 16"]),
    ("sat", ["Sat 08", "Sat 15"]),
    ("SUN", ["Sun 09", "Sun 16"]),
    (0, ["Sun 09", "Sun 16"]),       # 0 is Sunday (cron and Celery)
    ("sat,sun", ["Sat 08", "Sun 09"]),
    ({0, 6}, ["Sat 08", "Sun 09"]),  # a set of ints
    ("mon,wed-thu", ["Thu 06", "Mon 10"]),
])
def test_crontab_day_of_week_names_and_numbers(dow, days):
    c = crontab(minute=0, hour=0, day_of_week=dow)
    got = runs(c, utc(2024, 6, 5, 12), 2)  # Wednesday noon
    assert [d.strftime("%a %d") for d in got] == days


@pytest.mark.parametrize(("dow", "day"), [("sunday", "Sun 09"), ("Monday", "Mon 10"),
                                          ("thursday", "Thu 06")])
def test_crontab_full_day_names_like_celery(dow, day):
    c = crontab(minute=0, hour=0, day_of_week=dow)
    assert c.next_after(utc(2024, 6, 5, 12)).strftime("%a %d") == day


# Examples of Celery's "Periodic Tasks" guide: (fields, first three runs after Wed
# 2024-06-05 12:05 UTC).
CELERY_GUIDE = [
    ({"minute": 0, "hour": 0}, ["06-06 00:00", "06-07 00:00", "06-08 00:00"]),
    ({"minute": 0, "hour": "*/3"}, ["06-05 15:00", "06-05 18:00", "06-05 21:00"]),
    ({"minute": 0, "hour": [0, 3, 6, 9, 12, 15, 18, 21]},
     ["06-05 15:00", "06-05 18:00", "06-05 21:00"]),
    ({"minute": "*", "hour": "*", "day_of_week": "sun"},
     ["06-09 00:00", "06-09 00:01", "06-09 00:02"]),
    ({"minute": "*/10", "hour": "3,17,22", "day_of_week": "thu,fri"},
     ["06-06 03:00", "06-06 03:10", "06-06 03:20"]),
    ({"minute": 0, "hour": "*/2,*/3"}, ["06-05 14:00", "06-05 15:00", "06-05 16:00"]),
    ({"minute": 0, "hour": "*/5"}, ["06-05 15:00", "06-05 20:00", "06-06 00:00"]),
    ({"minute": 0, "hour": "*/3,8-17"}, ["06-05 13:00", "06-05 14:00", "06-05 15:00"]),
    ({"minute": 0, "hour": 0, "day_of_month": "2"},
     ["07-02 00:00", "08-02 00:00", "09-02 00:00"]),
    ({"minute": 0, "hour": 0, "day_of_month": "2-30/2"},
     ["06-06 00:00", "06-08 00:00", "06-10 00:00"]),
    ({"minute": 0, "hour": 0, "day_of_month": "1-7,15-21"},
     ["06-06 00:00", "06-07 00:00", "06-15 00:00"]),
    ({"minute": 0, "hour": 0, "day_of_month": "11", "month_of_year": "5"},
     ["05-11 00:00", "05-11 00:00", "05-11 00:00"]),  # 2025, 2026, 2027
    ({"minute": 0, "hour": 0, "month_of_year": "*/3"},
     ["07-01 00:00", "07-02 00:00", "07-03 00:00"]),
]


@pytest.mark.parametrize(("fields", "expected"), CELERY_GUIDE,
                         ids=[repr(f) for f, _ in CELERY_GUIDE])
def test_crontab_examples_of_the_celery_guide(fields, expected):
    got = runs(crontab(**fields), utc(2024, 6, 5, 12, 5), 3)
    assert [d.strftime("%m-%d %H:%M") for d in got] == expected
    if "month_of_year" in fields and fields.get("day_of_month") == "11":
        assert [d.year for d in got] == [2025, 2026, 2027]


def test_crontab_sets_and_lists_of_ints():
    c = crontab(minute={0, 30})
    assert c.expression.split()[0] == "0,30"
    assert runs(c, utc(2024, 1, 1, 0, 0), 3) == [
        utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 1, 0), utc(2024, 1, 1, 1, 30)]
    assert crontab(minute={30, 5, 15}) == crontab(minute="5,15,30")
    assert crontab(minute=[45, 5]) == crontab(minute="5,45")
    assert crontab(hour=(8, 17), minute=0).next_after(utc(2024, 1, 1, 9)) == utc(2024, 1, 1, 17)
    assert crontab(minute="0, 30") == crontab(minute={0, 30})  # spaces are ignored


@pytest.mark.parametrize("fields", [
    {"minute": 60},
    {"minute": -1},
    {"hour": 24},
    {"day_of_month": 0},
    {"day_of_month": 32},
    {"month_of_year": 13},
    {"day_of_week": "funday"},
    {"minute": "*/0"},
    {"minute": "a"},
    {"minute": ""},
    {"hour": "5-"},
])
def test_crontab_invalid_field_raises_value_error(fields):
    with pytest.raises(ValueError):
        crontab(**fields)


def test_crontab_day_of_month_and_day_of_week_both_restrict_like_celery():
    """Celery ANDs day_of_month with day_of_week: days 1-7 that are Mondays, i.e. the first
    Monday of the month (classic cron would run on days 1-7 and on every Monday)."""
    c = crontab(minute=0, hour=0, day_of_month="1-7", day_of_week="mon")
    got = runs(c, utc(2024, 6, 1), 4)
    assert got == [utc(2024, 6, 3), utc(2024, 7, 1), utc(2024, 8, 5), utc(2024, 9, 2)]


# -- time zones ------------------------------------------------------------------------------


def test_crontab_in_a_zone_means_its_wall_clock():
    c = crontab(hour=9, minute=0, tz="Europe/Berlin")
    # 09:00 in Berlin is 08:00 UTC in winter (CET) and 07:00 UTC in summer (CEST)
    assert c.next_after(utc(2024, 1, 15)) == utc(2024, 1, 15, 8)
    assert c.next_after(utc(2024, 7, 15)) == utc(2024, 7, 15, 7)
    due = c.next_after(utc(2024, 7, 15))
    assert due.astimezone(BERLIN).hour == 9
    # the same fields without a zone are UTC
    assert crontab(hour=9, minute=0).next_after(utc(2024, 7, 15)) == utc(2024, 7, 15, 9)
    # a moment given in another zone is the same instant
    ny = dt.datetime(2024, 7, 14, 20, 0, tzinfo=ZoneInfo("America/New_York"))  # 00:00 UTC
    assert c.next_after(ny) == utc(2024, 7, 15, 7)
    assert now("Europe/Berlin").utcoffset() in (dt.timedelta(hours=1), dt.timedelta(hours=2))
    assert now().utcoffset() == dt.timedelta(0)


def _per_local_day(times):
    return Counter(t.astimezone(BERLIN).date() for t in times)


def test_crontab_daily_0230_berlin_on_the_spring_forward_day():
    """On 2024-03-31 Berlin's clocks jump from 02:00 CET to 03:00 CEST: 02:30 does not exist.

    What is right for a daily job: it still runs once that day (it is not skipped, and not
    run twice), as cron does with jobs in the skipped hour — right after the jump, at 03:00
    CEST (01:00 UTC); the next day it is at 02:30 CEST (00:30 UTC) again. We accept any
    moment of the first half hour after the jump (03:00-03:30 CEST), no other.
    """
    c = crontab(hour=2, minute=30, tz="Europe/Berlin")
    got = runs_until(c, utc(2024, 3, 28, 12), utc(2024, 4, 2, 12))
    per_day = _per_local_day(got)
    assert per_day == {dt.date(2024, 3, d): 1 for d in (29, 30, 31)} | {
        dt.date(2024, 4, 1): 1, dt.date(2024, 4, 2): 1}, got
    assert got[0] == utc(2024, 3, 29, 1, 30)          # 02:30 CET
    assert got[1] == utc(2024, 3, 30, 1, 30)          # 02:30 CET
    assert utc(2024, 3, 31, 1, 0) <= got[2] <= utc(2024, 3, 31, 1, 30)  # just after the jump
    assert got[3] == utc(2024, 4, 1, 0, 30)           # 02:30 CEST
    assert got[4] == utc(2024, 4, 2, 0, 30)
    assert all(b > a for a, b in zip(got, got[1:]))


def test_crontab_daily_0230_berlin_on_the_fall_back_day_runs_once():
    """On 2024-10-27 Berlin's clocks go back from 03:00 CEST to 02:00 CET: 02:30 happens twice.

    What is right for a daily job: it runs once that day (cron does not re-run a job in
    the repeated hour; Celery's crontab steps to the next day). Either 02:30 is acceptable
    (cron takes the first, 00:30 UTC); the next run is 2024-10-28 02:30 CET (01:30 UTC).
    """
    c = crontab(hour=2, minute=30, tz="Europe/Berlin")
    got = runs_until(c, utc(2024, 10, 25, 12), utc(2024, 10, 29, 12))
    assert _per_local_day(got) == {dt.date(2024, 10, d): 1 for d in (26, 27, 28, 29)}, got
    assert got[0] == utc(2024, 10, 26, 0, 30)  # 02:30 CEST
    assert got[1] in (utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 1, 30))
    assert got[2] == utc(2024, 10, 28, 1, 30)  # 02:30 CET
    assert got[3] == utc(2024, 10, 29, 1, 30)
    # and from the moment right after the first 02:30 the next run is the next day
    assert c.next_after(utc(2024, 10, 27, 0, 30)).astimezone(UTC) == utc(2024, 10, 28, 1, 30)


def test_crontab_hourly_in_berlin_keeps_one_real_hour_across_both_changes():
    """An hourly job (minute=30) follows real hours: across spring-forward there are only 23
    of them in the day, across fall-back 25 (the repeated 02:30 runs in both hours, as cron
    does for jobs with a wildcard hour)."""
    c = crontab(minute=30, tz="Europe/Berlin")
    spring = runs(c, utc(2024, 3, 30, 23, 0), 4)
    assert spring == [utc(2024, 3, 30, 23, 30), utc(2024, 3, 31, 0, 30),
                      utc(2024, 3, 31, 1, 30), utc(2024, 3, 31, 2, 30)]
    assert [t.astimezone(BERLIN).strftime("%H:%M") for t in spring] == [
        "00:30", "01:30", "03:30", "04:30"]
    fall = runs(c, utc(2024, 10, 26, 23, 0), 4)
    assert fall == [utc(2024, 10, 26, 23, 30), utc(2024, 10, 27, 0, 30),
                    utc(2024, 10, 27, 1, 30), utc(2024, 10, 27, 2, 30)]
    assert [t.astimezone(BERLIN).strftime("%H:%M") for t in fall] == [
        "01:30", "02:30", "02:30", "03:30"]
    assert len(runs_until(c, dt.datetime(2024, 3, 31, tzinfo=BERLIN),
                          dt.datetime(2024, 4, 1, tzinfo=BERLIN))) == 23
    assert len(runs_until(c, dt.datetime(2024, 10, 27, tzinfo=BERLIN),
                          dt.datetime(2024, 10, 28, tzinfo=BERLIN))) == 25


# -- maybe_schedule, to_dict / from_dict, beat_schedule entries ------------------------------


def test_maybe_schedule_numbers_timedelta_and_schedules():
    assert maybe_schedule(10) == schedule(10)
    assert maybe_schedule(2.5) == schedule(2.5)
    assert maybe_schedule(dt.timedelta(minutes=1)) == schedule(60)
    assert maybe_schedule(10, relative=True) == schedule(10, relative=True)
    assert maybe_schedule(10, relative=True).relative is True
    c = crontab(minute="*/5")
    assert maybe_schedule(c) is c
    s = schedule(3)
    assert maybe_schedule(s) is s
    assert maybe_schedule({"type": "interval", "every": 5}) == schedule(5)
    with pytest.raises(TypeError):
        maybe_schedule("10")
    with pytest.raises(TypeError):
        maybe_schedule(None)
    with pytest.raises(ValueError):
        maybe_schedule(0)


@pytest.mark.parametrize("original", [
    schedule(10),
    schedule(0.25),
    schedule(dt.timedelta(hours=1), relative=True),
    crontab(),
    crontab(minute="*/15"),
    crontab(minute={0, 30}, hour="8-17", day_of_week="mon-fri"),
    crontab(minute=0, hour=0, day_of_month="28-31", month_of_year="1,3"),
])
def test_to_dict_from_dict_round_trip(original):
    data = original.to_dict()
    back = from_dict(data)
    assert type(back) is type(original)
    assert back == original
    assert back.to_dict() == data
    assert maybe_schedule(data) == original
    moment = utc(2024, 2, 27, 13, 7, 11)
    assert back.next_after(moment) == original.next_after(moment)


def test_from_dict_unknown_type():
    with pytest.raises(ValueError):
        from_dict({"type": "solar", "event": "sunset"})


def test_beat_schedule_entries_from_config():
    e = entry_from_config("every-10", {"task": "tasks.add", "schedule": 10.0, "args": (1, 2)})
    assert e == Entry("every-10", "tasks.add", schedule(10), [1, 2], {}, {})
    e = entry_from_config("td", {"task": "t", "schedule": dt.timedelta(seconds=30),
                                 "kwargs": {"x": 1}, "options": {"queue": "q2", "priority": 7},
                                 "relative": True})
    assert e.schedule == schedule(30, relative=True)
    assert (e.kwargs, e.options) == ({"x": 1}, {"queue": "q2", "priority": 7})
    e = entry_from_config("cron", {"task": "t", "schedule": crontab(hour=7, minute=30,
                                                                    day_of_week=1)})
    assert e.schedule == crontab(hour=7, minute=30, day_of_week=1)
    assert (e.args, e.kwargs, e.options) == ([], {}, {})
    for bad in ({"schedule": 10}, {"task": "t"}):
        with pytest.raises(ValueError):
            entry_from_config("bad", bad)


def test_entry_json_round_trip():
    for sched in (schedule(10, relative=True), crontab(minute="*/15", day_of_week="sat,sun")):
        e = Entry("e", "tasks.add", sched, [1, "a"], {"k": [1]}, {"queue": "q2", "expires": 30})
        back = entry_from_json("e", e.to_json())
        assert back == e
