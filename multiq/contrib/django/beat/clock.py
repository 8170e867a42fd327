"""Database times <-> epoch seconds, whether the project uses ``USE_TZ`` or not."""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone


def aware(value: dt.datetime) -> dt.datetime:
    """A database time as an aware datetime (a naive one is in ``TIME_ZONE``)."""
    if timezone.is_aware(value):
        return value
    return timezone.make_aware(value, timezone.get_default_timezone())


def to_epoch(value: dt.datetime) -> float:
    return aware(value).timestamp()


def from_epoch(at: float) -> dt.datetime:
    """Epoch seconds as the database keeps a time: aware UTC with ``USE_TZ``, else naive
    in ``TIME_ZONE``."""
    moment = dt.datetime.fromtimestamp(at, dt.timezone.utc)
    if settings.USE_TZ:
        return moment
    return timezone.make_naive(moment, timezone.get_default_timezone())
