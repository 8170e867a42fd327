"""Reading a django-celery-beat database with plain SQL (Celery need not be installed) and
copying its rows into this app's tables, by task name, so running it again changes nothing.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Type

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.dateparse import parse_datetime

PREFIX = "django_celery_beat_"
SCHEDULES = {  # table suffix -> the columns a schedule is matched by
    "interval": ("every", "period"),
    "crontab": ("minute", "hour", "day_of_week", "day_of_month", "month_of_year",
                "timezone"),
    "solar": ("event", "latitude", "longitude"),
    "clocked": ("clocked_time",),
}
TASK_FIELDS = ("task", "args", "kwargs", "queue", "exchange", "routing_key", "headers",
               "priority", "expires", "expire_seconds", "one_off", "start_time", "enabled",
               "last_run_at", "total_run_count", "description")
TIMES = {"expires", "start_time", "last_run_at", "clocked_time"}
FLAGS = {"one_off", "enabled"}


class NoLegacyTables(LookupError):
    """The database has no django-celery-beat tables."""


@dataclass
class Report:
    created: List[str] = field(default_factory=list)
    updated: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)  # name -> why


def read_table(alias: str, table: str) -> List[Dict[str, Any]]:
    """Every row of ``table`` as a dict of its columns (whatever the schema version)."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if table not in connection.introspection.table_names(cursor):
            return []
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        columns = [col[0] for col in cursor.description]
        return [dict(zip(columns, values)) for values in cursor.fetchall()]


def import_rows(source: str = "default") -> Report:
    """Copy every periodic task of the django-celery-beat tables in database ``source``."""
    from multiq.contrib.django.beat.models import PeriodicTask

    with connections[source].cursor() as cursor:
        if PREFIX + "periodictask" not in connections[source].introspection.table_names(cursor):
            raise NoLegacyTables(f"database {source!r} has no {PREFIX}periodictask table")
    schedules = {kind: {row["id"]: row for row in read_table(source, PREFIX + kind + "schedule")}
                 for kind in SCHEDULES}
    report = Report()
    with transaction.atomic(using=PeriodicTask.objects.db):
        for row in read_table(source, PREFIX + "periodictask"):
            name = str(row["name"])
            kinds = [k for k in SCHEDULES if row.get(f"{k}_id") is not None]
            if len(kinds) != 1 or row[f"{kinds[0]}_id"] not in schedules[kinds[0]]:
                report.skipped[name] = "no schedule" if not kinds else \
                    f"schedule {', '.join(kinds)} missing or not unique"
                continue
            values = {f: _value(f, row[f]) for f in TASK_FIELDS if f in row}
            values[kinds[0]] = _schedule(kinds[0], schedules[kinds[0]][row[f"{kinds[0]}_id"]])
            _task, created = PeriodicTask.objects.update_or_create(name=name, defaults=values)
            (report.created if created else report.updated).append(name)
    return report


def _schedule(kind: str, row: Dict[str, Any]) -> Any:
    from multiq.contrib.django.beat import models

    model: Type[Model] = {
        "interval": models.IntervalSchedule, "crontab": models.CrontabSchedule,
        "solar": models.SolarSchedule, "clocked": models.ClockedSchedule}[kind]
    spec = {f: _value(f, row[f]) for f in SCHEDULES[kind] if f in row}
    found = model.objects.filter(**spec).first()
    return found if found is not None else model.objects.create(**spec)


def _value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in FLAGS:
        return bool(value)
    if name in TIMES:
        return _time(value)
    return value


def _time(value: Any) -> Optional[dt.datetime]:
    """A time as this project's fields hold it (naive values in the database are UTC with
    ``USE_TZ``, local time without, as Django writes them)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, dt.datetime):
        return None
    if settings.USE_TZ and timezone.is_naive(value):
        return value.replace(tzinfo=dt.timezone.utc)
    if not settings.USE_TZ and timezone.is_aware(value):
        return timezone.make_naive(value, timezone.get_default_timezone())
    return value
