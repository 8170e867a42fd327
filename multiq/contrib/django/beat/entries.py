"""A ``PeriodicTask`` row as a beat entry: its schedule, arguments and send options."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Optional

from multiq.beat.table import Entry
from multiq.beat.timed import not_before
from multiq.contrib.django.beat.clock import aware, to_epoch


class BadRow(ValueError):
    """A row beat cannot schedule (the message says why)."""


@dataclass
class RowEntry(Entry):
    """An entry that knows its row: ``ran`` updates it, ``ends`` stops it (epoch)."""

    row_id: int = 0
    one_off: bool = False
    ends: Optional[float] = None


def row_entry(row: Any) -> RowEntry:
    """The entry of an enabled ``PeriodicTask``; BadRow when it cannot be scheduled."""
    chosen = row.schedule_fields()
    if len(chosen) != 1:
        raise BadRow("has no schedule" if not chosen else
                     f"has {len(chosen)} schedules ({', '.join(chosen)}); set one")
    try:
        schedule = getattr(row, chosen[0]).schedule
    except (ValueError, TypeError, ArithmeticError, KeyError) as exc:  # KeyError: a zone
        raise BadRow(f"bad {chosen[0]} schedule: {exc}") from None
    if row.start_time is not None:
        schedule = not_before(schedule, aware(row.start_time))
    args = _json(row, "args", list)
    kwargs = _json(row, "kwargs", dict)
    headers = _json(row, "headers", dict)
    if row.last_run_at is not None:
        seed: Optional[float] = to_epoch(row.last_run_at)
    elif row.clocked_id is not None:  # never ran: due at its time, even one already past
        seed = to_epoch(row.clocked.clocked_time) - 1e-3
    else:
        seed = None
    return RowEntry(
        name=row.name, task=row.task, schedule=schedule, args=args, kwargs=kwargs,
        options=_options(row, headers), last_run_at=seed, row_id=row.pk,
        one_off=bool(row.one_off),
        ends=to_epoch(row.expires) if row.expires is not None else None)


def _json(row: Any, field: str, kind: type) -> Any:
    text = getattr(row, field)
    if text is None or (isinstance(text, str) and not text.strip()):
        return kind()
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise BadRow(f"{field} is not valid JSON ({exc}): {str(text)[:80]!r}") from None
    if not isinstance(value, kind):
        want = "a list" if kind is list else "an object"
        raise BadRow(f"{field} must be {want} in JSON, not {str(text)[:80]!r}")
    return value


def _options(row: Any, headers: Dict[str, Any]) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    if row.queue:
        options["queue"] = row.queue
    if row.priority is not None:
        options["priority"] = min(int(row.priority), 9)
    if headers:
        options["headers"] = headers
    if row.expires is not None:
        options["expires"] = aware(row.expires)
    elif row.expire_seconds is not None:
        options["expires"] = float(row.expire_seconds)
    return options
