"""Schedules bounded in time: ``clocked`` (once, at a moment) and ``not_before`` (a schedule
that starts at a moment)."""
from __future__ import annotations

import datetime as dt
from typing import Optional

from multiq.schedules import UTC, BaseSchedule, schedule

# "Not again": far enough to never come, near enough for every time zone conversion.
NEVER = dt.datetime(9999, 1, 1, tzinfo=UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class clocked(BaseSchedule):  # noqa: N801 - django-celery-beat's name
    """Due once, at ``clocked_time`` (a naive time is UTC)."""

    def __init__(self, clocked_time: dt.datetime) -> None:
        self.clocked_time = _aware(clocked_time)

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        return self.clocked_time if self.clocked_time > _aware(moment) else NEVER

    def __repr__(self) -> str:
        return f"<clocked: {self.clocked_time.isoformat()}>"


class not_before(BaseSchedule):  # noqa: N801 - reads as a schedule, like the others
    """``inner``, with no run before ``start``. An interval's runs count from ``start``
    (its first run is at ``start``); a crontab's first run is its first time at or after
    ``start``."""

    def __init__(self, inner: BaseSchedule, start: dt.datetime) -> None:
        self.inner = inner
        self.start = _aware(start)

    @property
    def tz(self) -> Optional[str]:  # the zone is the inner schedule's
        return self.inner.tz

    @tz.setter
    def tz(self, value: Optional[str]) -> None:
        self.inner.tz = value

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        if _aware(moment) >= self.start:
            return self.inner.next_after(moment)
        if isinstance(self.inner, schedule) and not self.inner.relative:
            return self.start
        return self.inner.next_after(self.start - dt.timedelta(microseconds=1))

    def __repr__(self) -> str:
        return f"<{self.inner!r} from {self.start.isoformat()}>"
