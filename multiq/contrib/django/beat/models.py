"""Periodic tasks and their schedules, with django-celery-beat's model and field names.

A ``PeriodicTask`` has exactly one schedule: an ``IntervalSchedule``, a ``CrontabSchedule``,
a ``SolarSchedule`` or a ``ClockedSchedule`` (then ``one_off``). ``PeriodicTasks`` holds one
row whose ``last_update`` moves whenever a task or a schedule is saved or deleted: beat
checks it at every tick and reloads the tasks when it moved. Bulk changes
(``QuerySet.update``) send no signal: call ``PeriodicTasks.update_changed()`` after them.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Optional

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import signals
from django.utils import timezone

from multiq.beat.solar import EVENTS, solar
from multiq.beat.timed import clocked
from multiq.contrib.django.beat.clock import aware
from multiq.schedules import BaseSchedule, crontab, schedule

DAYS, HOURS, MINUTES, SECONDS, MICROSECONDS = (
    "days", "hours", "minutes", "seconds", "microseconds")
PERIOD_CHOICES = [(DAYS, "Days"), (HOURS, "Hours"), (MINUTES, "Minutes"),
                  (SECONDS, "Seconds"), (MICROSECONDS, "Microseconds")]
SOLAR_SCHEDULES = [(name, name.replace("_", " ").capitalize()) for name in sorted(EVENTS)]
SCHEDULE_FIELDS = ("interval", "crontab", "solar", "clocked")


def default_timezone() -> str:
    """``MULTIQ_TIMEZONE`` when it names a zone, else UTC."""
    name = getattr(settings, "MULTIQ_TIMEZONE", None)
    try:
        validate_timezone(name)
    except ValidationError:
        return "UTC"
    return str(name)


def validate_timezone(value: Any) -> None:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(str(value))
    except (ValueError, KeyError, OSError) as exc:
        raise ValidationError(f"{value!r} is not a time zone name") from exc


def tz_aware() -> bool:
    """Whether crontabs follow their own ``timezone`` (default) or the app's."""
    for name in ("MULTIQ_BEAT_TZ_AWARE", "DJANGO_CELERY_BEAT_TZ_AWARE"):
        if hasattr(settings, name):
            return bool(getattr(settings, name))
    return True


class IntervalSchedule(models.Model):
    """Runs every ``every`` periods (``period``: days, hours, minutes, seconds...)."""

    DAYS, HOURS, MINUTES, SECONDS, MICROSECONDS = DAYS, HOURS, MINUTES, SECONDS, MICROSECONDS
    PERIOD_CHOICES = PERIOD_CHOICES

    every = models.IntegerField("number of periods", validators=[MinValueValidator(1)],
                                help_text="How many periods between two runs.")
    period = models.CharField("interval period", max_length=24, choices=PERIOD_CHOICES)

    class Meta:
        verbose_name = "interval"
        verbose_name_plural = "intervals"
        ordering = ["period", "every"]

    @property
    def schedule(self) -> BaseSchedule:
        return schedule(dt.timedelta(**{self.period: self.every}))

    def __str__(self) -> str:
        unit = self.period[:-1] if self.every == 1 else self.period
        return f"every {unit}" if self.every == 1 else f"every {self.every} {unit}"


class CrontabSchedule(models.Model):
    """Cron fields, on the clock of ``timezone``."""

    minute = models.CharField(max_length=240, default="*",
                              help_text='Minutes, e.g. "0,30" or "*/15"; "*" for all.')
    hour = models.CharField(max_length=96, default="*",
                            help_text='Hours, e.g. "8,20"; "*" for all.')
    day_of_week = models.CharField("day(s) of the week", max_length=64, default="*",
                                   help_text='Days of the week, e.g. "mon-fri" or "0,6".')
    day_of_month = models.CharField("day(s) of the month", max_length=124, default="*",
                                    help_text='Days of the month, e.g. "1,15".')
    month_of_year = models.CharField("month(s) of the year", max_length=64, default="*",
                                     help_text='Months, e.g. "1-6".')
    timezone = models.CharField("cron time zone", max_length=63, default=default_timezone,
                                validators=[validate_timezone],
                                help_text="The clock the fields are read on, e.g. "
                                          "Asia/Shanghai.")

    class Meta:
        verbose_name = "crontab"
        verbose_name_plural = "crontabs"
        ordering = ["month_of_year", "day_of_month", "day_of_week", "hour", "minute",
                    "timezone"]

    @property
    def schedule(self) -> BaseSchedule:
        """The crontab; ValueError for bad fields, KeyError for an unknown zone."""
        from zoneinfo import ZoneInfo

        zone = str(self.timezone) if tz_aware() else None
        if zone:
            ZoneInfo(zone)
        return crontab(minute=self.minute, hour=self.hour, day_of_week=self.day_of_week,
                       day_of_month=self.day_of_month, month_of_year=self.month_of_year,
                       tz=zone)

    def clean(self) -> None:
        try:
            self.schedule  # noqa: B018 - builds (so checks) the expression
        except (ValueError, KeyError) as exc:
            raise ValidationError(str(exc)) from exc

    def __str__(self) -> str:
        fields = (self.minute, self.hour, self.day_of_month, self.month_of_year,
                  self.day_of_week)
        return " ".join(str(f).replace(" ", "") or "*" for f in fields) + \
            f" (m/h/dM/MY/d) {self.timezone}"


class SolarSchedule(models.Model):
    """When the sun reaches an event (sunrise, dusk...) at a place."""

    event = models.CharField("solar event", max_length=24, choices=SOLAR_SCHEDULES)
    latitude = models.DecimalField(max_digits=9, decimal_places=6,
                                   validators=[MinValueValidator(-90), MaxValueValidator(90)])
    longitude = models.DecimalField(max_digits=9, decimal_places=6,
                                    validators=[MinValueValidator(-180),
                                                MaxValueValidator(180)],
                                    help_text="East positive.")

    class Meta:
        verbose_name = "solar event"
        verbose_name_plural = "solar events"
        ordering = ["event", "latitude", "longitude"]
        unique_together = [("event", "latitude", "longitude")]

    @property
    def schedule(self) -> BaseSchedule:
        return solar(self.event, float(self.latitude), float(self.longitude))

    def __str__(self) -> str:
        return f"{self.get_event_display()} ({self.latitude}, {self.longitude})"


class ClockedSchedule(models.Model):
    """Once, at ``clocked_time``."""

    clocked_time = models.DateTimeField("clock time", help_text="When the task runs.")

    class Meta:
        verbose_name = "clocked"
        verbose_name_plural = "clocked"
        ordering = ["clocked_time"]

    @property
    def schedule(self) -> BaseSchedule:
        return clocked(aware(self.clocked_time))

    def __str__(self) -> str:
        return str(aware(self.clocked_time))


class PeriodicTasks(models.Model):
    """The change marker: one row (``ident=1``), ``last_update`` moved by every change."""

    ident = models.SmallIntegerField(default=1, primary_key=True, unique=True)
    last_update = models.DateTimeField()

    class Meta:
        verbose_name = "change marker"
        verbose_name_plural = "change marker"

    @classmethod
    def changed(cls, instance: Any = None, **kwargs: Any) -> None:
        """A task changed (a signal receiver; beat's own bookkeeping does not count)."""
        if not getattr(instance, "no_changes", False):
            cls.update_changed(using=kwargs.get("using"))

    @classmethod
    def update_changed(cls, using: Optional[str] = None, **kwargs: Any) -> None:
        """Tell running beats to reload the tasks."""
        cls.objects.db_manager(using).update_or_create(
            ident=1, defaults={"last_update": timezone.now()})

    @classmethod
    def last_change(cls, using: Optional[str] = None) -> Optional[dt.datetime]:
        return cls.objects.db_manager(using).filter(ident=1) \
            .values_list("last_update", flat=True).first()


class PeriodicTask(models.Model):
    """A task sent on a schedule, with its arguments and send options."""

    name = models.CharField(max_length=200, unique=True,
                            help_text="A unique name for this periodic task.")
    task = models.CharField("task name", max_length=200,
                            help_text='The registered task, e.g. "proj.tasks.import_contacts".')
    interval = models.ForeignKey(IntervalSchedule, on_delete=models.CASCADE, null=True,
                                 blank=True, help_text="Set exactly one schedule.")
    crontab = models.ForeignKey(CrontabSchedule, on_delete=models.CASCADE, null=True,
                                blank=True, help_text="Set exactly one schedule.")
    solar = models.ForeignKey(SolarSchedule, on_delete=models.CASCADE, null=True,
                              blank=True, help_text="Set exactly one schedule.")
    clocked = models.ForeignKey(ClockedSchedule, on_delete=models.CASCADE, null=True,
                                blank=True, help_text="Set exactly one schedule.")
    args = models.TextField("positional arguments", blank=True, default="[]",
                            help_text='A JSON list, e.g. ["arg1", 2].')
    kwargs = models.TextField("keyword arguments", blank=True, default="{}",
                              help_text='A JSON object, e.g. {"argument": "value"}.')
    queue = models.CharField(max_length=200, blank=True, null=True, default=None,
                             help_text="Send to this queue (empty: the task's route).")
    exchange = models.CharField(max_length=200, blank=True, null=True, default=None,
                                help_text="Kept for django-celery-beat rows; not used.")
    routing_key = models.CharField(max_length=200, blank=True, null=True, default=None,
                                   help_text="Kept for django-celery-beat rows; not used.")
    headers = models.TextField("message headers", blank=True, default="{}",
                               help_text="A JSON object sent as the message's headers.")
    priority = models.PositiveIntegerField(default=None, blank=True, null=True,
                                           validators=[MaxValueValidator(255)],
                                           help_text="0 to 9, 9 runs first (above 9: 9).")
    expires = models.DateTimeField("expires at", blank=True, null=True,
                                   help_text="Not sent after this time; a run not started "
                                             "by then is not started.")
    expire_seconds = models.PositiveIntegerField(blank=True, null=True,
                                                 help_text="A run not started within "
                                                           "this many seconds is dropped.")
    one_off = models.BooleanField("one-off task", default=False,
                                  help_text="Run once, then disable.")
    start_time = models.DateTimeField(blank=True, null=True,
                                      help_text="No run before this time.")
    enabled = models.BooleanField(default=True)
    last_run_at = models.DateTimeField(editable=False, blank=True, null=True,
                                       help_text="When beat last sent it; cleared when "
                                                 "disabled.")
    total_run_count = models.PositiveIntegerField(default=0, editable=False)
    date_changed = models.DateTimeField("last modified", auto_now=True)
    description = models.TextField(blank=True)

    no_changes = False  # set by code that saves without telling beat

    class Meta:
        verbose_name = "periodic task"
        verbose_name_plural = "periodic tasks"

    def schedule_fields(self) -> list:
        return [name for name in SCHEDULE_FIELDS if getattr(self, f"{name}_id") is not None]

    @property
    def schedule(self) -> Optional[BaseSchedule]:
        for name in self.schedule_fields():
            return getattr(self, name).schedule
        return None

    def validate_schedule(self) -> None:
        chosen = self.schedule_fields()
        if not chosen:
            raise ValidationError("Set one of interval, crontab, solar or clocked.")
        if len(chosen) > 1:
            raise ValidationError({name: "Set only one schedule." for name in chosen})
        if self.expires is not None and self.expire_seconds is not None:
            raise ValidationError("Set expires or expire_seconds, not both.")

    def clean(self) -> None:
        self.validate_schedule()
        for field, kind in (("args", list), ("kwargs", dict), ("headers", dict)):
            text = getattr(self, field) or ("[]" if kind is list else "{}")
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ValidationError({field: f"Not valid JSON: {exc}"}) from exc
            if not isinstance(value, kind):
                raise ValidationError({field: f"Must be a JSON {kind.__name__}."})

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.queue = self.queue or None
        self.exchange = self.exchange or None
        self.routing_key = self.routing_key or None
        self.headers = self.headers or "{}"
        if not self.enabled:
            self.last_run_at = None
        self.validate_schedule()
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return str(self.name)


# After the write, not before: a beat that reloads on the new marker must see the new rows.
signals.post_save.connect(PeriodicTasks.changed, sender=PeriodicTask)
signals.post_delete.connect(PeriodicTasks.changed, sender=PeriodicTask)
for _model in (IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    signals.post_save.connect(PeriodicTasks.update_changed, sender=_model)
    signals.post_delete.connect(PeriodicTasks.update_changed, sender=_model)
