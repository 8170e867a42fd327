"""``DatabaseScheduler``: beat's entries from the ``PeriodicTask`` rows (``-S django``).

Only the beat that holds the lease asks; at each of its ticks one cheap query reads the
change marker (``PeriodicTasks.last_update``), and the enabled rows are read again when it
moved (or every ``RELOAD_EVERY`` seconds, for changes made without a signal). Rows are
read in that order, marker first, so a change is never missed. A row that cannot be
scheduled (bad JSON arguments, no schedule) is logged at ERROR with its name and id and
left out; the others go on. The app's ``beat_schedule`` entries are kept beside the rows.

Importing this module does not need Django to be set up: the scheduler calls
``django.setup()`` itself when the apps are not ready (``DJANGO_SETTINGS_MODULE`` set).
The model names are importable from here too, as in django-celery-beat.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Optional, Set, Tuple

from multiq.beat.table import Entry, entry_from_config
from multiq.exceptions import ImproperlyConfigured

logger = logging.getLogger("multiq.beat")

APP = "multiq.contrib.django.beat"
RELOAD_EVERY = 300.0
_MODELS = ("PeriodicTask", "PeriodicTasks", "IntervalSchedule", "CrontabSchedule",
           "SolarSchedule", "ClockedSchedule")


def setup_django() -> None:
    """``django.setup()`` unless done; a clear error when Django cannot be set up here."""
    try:
        import django
        from django.apps import apps
        from django.conf import settings
    except ImportError as exc:
        raise ImproperlyConfigured(f"The database scheduler needs Django: {exc}") from exc
    if not apps.ready:
        if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
            raise ImproperlyConfigured(
                "The database scheduler needs Django settings: set DJANGO_SETTINGS_MODULE "
                "(e.g. in the module that creates the app, as Django projects do)")
        django.setup()
    if not apps.is_installed(APP):
        raise ImproperlyConfigured(f"Add {APP!r} to INSTALLED_APPS (and run migrate) to "
                                   "keep periodic tasks in the database")


class DatabaseScheduler:
    """The entry source of ``multiq beat -S django``."""

    description = "Database (PeriodicTask rows; leader lease and run claims in Redis)"

    def __init__(self, app: Any) -> None:
        setup_django()
        self.app = app
        self._rows: Dict[str, Entry] = {}
        self._marker: Any = None
        self._loaded_at: Optional[float] = None
        self._done: Set[str] = set()  # one-off rows sent since the last load
        self._bad: Set[Tuple[int, str]] = set()  # (row id, reason) already logged
        self._failing: Optional[str] = None  # the database error last logged

    # -- the source interface ------------------------------------------------------------

    def list(self) -> Dict[str, Entry]:
        entries: Dict[str, Entry] = {
            name: entry_from_config(name, spec)
            for name, spec in (self.app.conf.beat_schedule or {}).items()}
        self._refresh()
        now = time.time()
        for name, entry in self._rows.items():
            ends = getattr(entry, "ends", None)
            if name not in self._done and (ends is None or ends > now):
                entries[name] = entry
        return entries

    def ran(self, entry: Entry, at: float) -> None:
        """Count the run on its row; a one-off row disables itself."""
        row_id = getattr(entry, "row_id", None)
        if row_id is None:  # an entry of beat_schedule
            return
        from django.db.models import F

        from multiq.contrib.django.beat.clock import from_epoch
        from multiq.contrib.django.beat.models import PeriodicTask, PeriodicTasks

        change: Dict[str, Any] = {"last_run_at": from_epoch(at),
                                  "total_run_count": F("total_run_count") + 1}
        if getattr(entry, "one_off", False):
            change["enabled"] = False
            self._done.add(entry.name)
        PeriodicTask.objects.filter(pk=row_id).update(**change)  # no signal: not a change
        if getattr(entry, "one_off", False):
            PeriodicTasks.update_changed()  # other beats: drop it now

    # -- loading -------------------------------------------------------------------------

    def _refresh(self) -> None:
        from django.db import close_old_connections

        from multiq.contrib.django.beat.models import PeriodicTasks

        try:
            marker = PeriodicTasks.last_change()
            stale = self._loaded_at is None or marker != self._marker \
                or time.monotonic() - self._loaded_at > RELOAD_EVERY
            if stale:
                self._rows = self._load()
                self._marker, self._loaded_at = marker, time.monotonic()
                self._done.clear()
        except Exception as exc:  # database away: keep the rows we have, say so once
            close_old_connections()  # a broken connection is opened again next tick
            text = f"{type(exc).__name__}: {exc}"
            if text != self._failing:
                logger.error("beat: cannot read the periodic tasks from the database "
                             "(%s); going on with the %d loaded", text, len(self._rows))
                self._failing = text
            return
        if self._failing is not None:
            logger.info("beat: reading the periodic tasks from the database again")
            self._failing = None

    def _load(self) -> Dict[str, Entry]:
        from multiq.contrib.django.beat.entries import BadRow, row_entry
        from multiq.contrib.django.beat.models import PeriodicTask

        rows = PeriodicTask.objects.filter(enabled=True) \
            .select_related("interval", "crontab", "solar", "clocked")
        out: Dict[str, Entry] = {}
        bad: Set[Tuple[int, str]] = set()
        for row in rows:
            try:
                out[row.name] = row_entry(row)
            except BadRow as exc:
                bad.add((row.pk, str(exc)))
                if (row.pk, str(exc)) not in self._bad:
                    logger.error("beat: periodic task %r (id %s) is not scheduled: %s",
                                 row.name, row.pk, exc)
        self._bad = bad
        logger.debug("beat: %d periodic tasks loaded from the database", len(out))
        return out


def __getattr__(name: str) -> Any:
    """``from ...schedulers import PeriodicTask`` works, as in django-celery-beat."""
    if name in _MODELS:
        from multiq.contrib.django.beat import models
        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
