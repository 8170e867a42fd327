"""Where beat takes its entries from: the interface, and choosing one by name.

An entry source answers two questions: which entries exist now (``list``, asked at every
tick of the leader, so it must be cheap), and it is told when an entry's run went out
(``ran``). The default is :class:`~multiq.beat.table.BeatTable` (``beat_schedule`` plus the
dynamic table in Redis); ``-S django`` takes the entries from Django models. Whatever the
source, the leader lease and the run claims stay in Redis, so a due run goes out once.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, Optional, Protocol

from multiq.beat.table import BeatTable, Entry
from multiq.exceptions import ImproperlyConfigured

DATABASE = "multiq.contrib.django.beat.schedulers:DatabaseScheduler"

# Short names, and the names a Celery project's settings carry.
ALIASES = {
    "django": DATABASE,
    "database": DATABASE,
    "django_celery_beat.schedulers:DatabaseScheduler": DATABASE,
    "django_celery_beat.schedulers.DatabaseScheduler": DATABASE,
}
# Celery's file-backed default: multiq keeps that state in Redis, so it is the Redis table.
REDIS = frozenset({
    "redis", "default", "multiq.beat.table:BeatTable",
    "celery.beat:PersistentScheduler", "celery.beat.PersistentScheduler",
})


class EntrySource(Protocol):
    """What beat needs from a source of periodic tasks."""

    def list(self) -> Dict[str, Entry]:
        """Every entry to consider now, by name."""

    def ran(self, entry: Entry, at: float) -> None:
        """``entry``'s run at ``at`` (epoch seconds) was sent."""


def load_source(app: Any, name: Optional[str]) -> EntrySource:
    """The source named by ``-S`` / ``beat_scheduler`` (``None``: the Redis table)."""
    if not name or name in REDIS:
        return BeatTable(app)
    path = ALIASES.get(name, name)
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    try:
        factory = getattr(importlib.import_module(module), attr, None) \
            if module and attr else None
    except ImportError as exc:
        raise ImproperlyConfigured(f"Unknown beat scheduler {name!r}: {exc}") from exc
    if not callable(factory):
        raise ImproperlyConfigured(
            f"Unknown beat scheduler {name!r}: expected 'django', 'redis' or "
            "'package.module:ClassName'")
    return factory(app)


def describe(source: Any) -> str:
    """One line for the banner."""
    if isinstance(source, BeatTable):
        return "Redis (leader lease and last-run times in Redis)"
    text = getattr(source, "description", None)
    return str(text or f"{type(source).__module__}.{type(source).__qualname__}")
