"""Schedules for periodic tasks: ``schedule(run_every)`` and ``crontab(...)``.

Each answers one question, :meth:`next_after`: the first due time strictly after a moment.
Cron arithmetic is croniter's, in the app's time zone, so month ends, day-of-week names and
daylight-saving changes follow its rules.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Dict, Optional, Tuple, Union

Number = Union[int, float]
UTC = dt.timezone.utc


def _zone(name: Optional[str]) -> dt.tzinfo:
    if not name or name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo
    return ZoneInfo(name)


def now(tz: Optional[str] = None) -> dt.datetime:
    return dt.datetime.now(_zone(tz))


class BaseSchedule:
    """A schedule: due times in a time zone (set by beat from the app's ``timezone``)."""

    tz: Optional[str] = None

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        raise NotImplementedError

    def is_due(self, last_run_at: dt.datetime,
               at: Optional[dt.datetime] = None) -> Tuple[bool, float]:
        """Celery's question: (due now?, seconds until the next check)."""
        at = at or now(self.tz)
        due = self.next_after(last_run_at)
        if due <= at:
            return True, max((self.next_after(at) - at).total_seconds(), 0.0)
        return False, (due - at).total_seconds()

    def remaining_estimate(self, last_run_at: dt.datetime) -> dt.timedelta:
        return self.next_after(last_run_at) - now(self.tz)

    def to_dict(self) -> Dict[str, Any]:
        raise NotImplementedError


class schedule(BaseSchedule):  # noqa: N801 - Celery's name
    """Every ``run_every`` (seconds, or a timedelta)."""

    def __init__(self, run_every: Union[Number, dt.timedelta], relative: bool = False) -> None:
        if isinstance(run_every, dt.timedelta):
            run_every = run_every.total_seconds()
        if float(run_every) <= 0:
            raise ValueError("run_every must be positive")
        self.seconds = float(run_every)
        self.relative = relative

    @property
    def run_every(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.seconds)

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        if self.relative:  # aligned to the clock: every 10 s at :00, :10, :20 ...
            epoch = moment.timestamp()
            slot = (epoch // self.seconds + 1) * self.seconds
            return dt.datetime.fromtimestamp(slot, moment.tzinfo or UTC)
        return moment + self.run_every

    def to_dict(self) -> Dict[str, Any]:
        return {"type": "interval", "every": self.seconds, "relative": self.relative}

    def __repr__(self) -> str:
        return f"<freq: {self.seconds:g}s>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, schedule) and other.to_dict() == self.to_dict()


_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


class crontab(BaseSchedule):  # noqa: N801 - Celery's name
    """Cron fields: ``*``, ``*/15``, ``1-5``, ``mon-fri``, lists, or sets of ints.

    As in Celery, every field must match: ``day_of_month="1-7", day_of_week="mon"`` is the
    first Monday of the month (classic cron would take either)."""

    def __init__(self, minute: Any = "*", hour: Any = "*", day_of_week: Any = "*",
                 day_of_month: Any = "*", month_of_year: Any = "*",
                 tz: Optional[str] = None) -> None:
        self.minute = _field(minute)
        self.hour = _field(hour)
        self.day_of_week = _field(day_of_week)
        self.day_of_month = _field(day_of_month)
        self.month_of_year = _field(month_of_year)
        self.tz = tz
        from croniter import croniter
        if not croniter.is_valid(self.expression):
            raise ValueError(f"Invalid crontab: {self.expression!r}")

    @property
    def expression(self) -> str:
        return " ".join(getattr(self, name) for name in _FIELDS)

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """Cron on the zone's wall clock. When clocks go back, a time in the repeated hour
        runs once — unless the hour field is a wildcard (``*``, ``*/2``): such jobs run in
        both hours, as cron daemons do. A time skipped when clocks go forward runs at the
        instant zoneinfo gives it (an hour later by the wall clock)."""
        from croniter import croniter

        zone = _zone(self.tz)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        instant = moment.astimezone(UTC)  # compare instants: same-zone compares wall clocks
        wall = instant.astimezone(zone).replace(tzinfo=None, fold=0)
        both_folds = self.hour.startswith("*")
        start = wall
        if both_folds and _offsets_differ(wall, zone):
            start = wall - _fold_length(wall, zone)
        steps = croniter(self.expression, start - dt.timedelta(seconds=1), day_or=False)
        best: Optional[dt.datetime] = None
        for _ in range(1000):
            step = steps.get_next(dt.datetime)
            for fold in (0, 1) if both_folds else (0,):
                at = step.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                if at > instant and (best is None or at < best):
                    best = at
            if best is not None and step.replace(tzinfo=zone).astimezone(UTC) > instant:
                break
        assert best is not None
        return best.astimezone(zone)

    def to_dict(self) -> Dict[str, Any]:
        return {"type": "crontab", **{name: getattr(self, name) for name in _FIELDS}}

    def __repr__(self) -> str:
        return f"<crontab: {self.expression} (m/h/dM/MY/d)>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, crontab) and other.expression == self.expression


def _offsets_differ(wall: dt.datetime, zone: dt.tzinfo) -> bool:
    """Whether a wall time is ambiguous or skipped (a clock change)."""
    return wall.replace(tzinfo=zone, fold=0).utcoffset() != \
        wall.replace(tzinfo=zone, fold=1).utcoffset()


def _fold_length(wall: dt.datetime, zone: dt.tzinfo) -> dt.timedelta:
    first = wall.replace(tzinfo=zone, fold=0).utcoffset() or dt.timedelta(0)
    second = wall.replace(tzinfo=zone, fold=1).utcoffset() or dt.timedelta(0)
    return abs(first - second)


_NAMES = re.compile(r"[a-zA-Z]+")


def _field(value: Any) -> str:
    """A cron field; names may be written in full, any case (``Sunday``, ``january``)."""
    if isinstance(value, (set, frozenset, list, tuple)):
        return ",".join(str(v) for v in sorted(value))
    text = str(value).replace(" ", "")
    return _NAMES.sub(lambda m: m.group(0)[:3].lower(), text)


def maybe_schedule(value: Any, relative: bool = False) -> BaseSchedule:
    """A schedule from what ``beat_schedule`` accepts: number, timedelta, or a schedule."""
    if isinstance(value, BaseSchedule):
        return value
    if isinstance(value, (int, float, dt.timedelta)):
        return schedule(value, relative=relative)
    if isinstance(value, dict):
        return from_dict(value)
    raise TypeError(f"Cannot use {value!r} as a schedule")


def from_dict(data: Dict[str, Any]) -> BaseSchedule:
    kind = data.get("type")
    if kind == "interval":
        return schedule(float(data["every"]), relative=bool(data.get("relative")))
    if kind == "crontab":
        return crontab(**{name: data.get(name, "*") for name in _FIELDS})
    raise ValueError(f"Unknown schedule type {kind!r}")
