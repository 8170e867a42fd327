"""The schedule: ``beat_schedule`` from the app, plus a dynamic table kept in Redis."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from multiq.schedules import BaseSchedule, from_dict, maybe_schedule

logger = logging.getLogger("multiq.beat")


@dataclass
class Entry:
    """A periodic task. ``last_run_at`` (epoch seconds) is when its source last saw it run,
    used only while Redis holds no last run for it (a missed run is then sent once)."""

    name: str
    task: str
    schedule: BaseSchedule
    args: List[Any] = field(default_factory=list)
    kwargs: Dict[str, Any] = field(default_factory=dict)
    options: Dict[str, Any] = field(default_factory=dict)
    last_run_at: Optional[float] = None

    def to_json(self) -> str:
        return json.dumps({"task": self.task, "schedule": self.schedule.to_dict(),
                           "args": self.args, "kwargs": self.kwargs, "options": self.options})


def entry_from_config(name: str, spec: Dict[str, Any]) -> Entry:
    """An entry of ``beat_schedule`` (``task``, ``schedule``, ``args``, ``kwargs``,
    ``options``, ``relative``)."""
    if "task" not in spec or "schedule" not in spec:
        raise ValueError(f"beat_schedule entry {name!r} needs 'task' and 'schedule'")
    return Entry(name, spec["task"], maybe_schedule(spec["schedule"], spec.get("relative", False)),
                 list(spec.get("args") or ()), dict(spec.get("kwargs") or {}),
                 dict(spec.get("options") or {}))


def entry_from_json(name: str, raw: Any) -> Entry:
    """An entry of the dynamic table; ValueError when ``raw`` is not a valid one."""
    data = json.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("task"), str) \
            or not isinstance(data.get("schedule"), dict):
        raise ValueError("not an object with a task name and a schedule")
    args, kwargs, options = (data.get(k) for k in ("args", "kwargs", "options"))
    if not isinstance(args or [], list) or not isinstance(kwargs or {}, dict) \
            or not isinstance(options or {}, dict):
        raise ValueError("args must be a list, kwargs and options objects")
    try:
        schedule = from_dict(data["schedule"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"bad schedule {data['schedule']!r}: {exc}") from None
    return Entry(name, data["task"], schedule, list(args or ()), dict(kwargs or {}),
                 dict(options or {}))


class BeatTable:
    """``app.beat``: add, change and remove periodic tasks while beat runs."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._warned: Set[Tuple[bytes, bytes]] = set()

    @property
    def key(self) -> str:
        return str(self.app.broker.keys.beat_entries)

    def add(self, name: str, task: Any, schedule: Any, args: Sequence[Any] = (),
            kwargs: Optional[Dict[str, Any]] = None, options: Optional[Dict[str, Any]] = None,
            relative: bool = False) -> Entry:
        """Add or replace a periodic task; beat picks it up on its next tick."""
        entry = Entry(name, getattr(task, "name", task), maybe_schedule(schedule, relative),
                      list(args), dict(kwargs or {}), dict(options or {}))
        self.app.broker.client.hset(self.key, name, entry.to_json())
        return entry

    def remove(self, name: str) -> bool:
        return bool(self.app.broker.client.hdel(self.key, name))

    def dynamic(self) -> Dict[str, Entry]:
        """The table's valid entries; the others are skipped with a warning."""
        raw = self.app.broker.client.hgetall(self.key)
        out = {}
        for name, data in raw.items():
            try:
                key = name.decode() if isinstance(name, bytes) else name
                out[key] = entry_from_json(key, data)
            except ValueError as exc:  # UnicodeDecodeError and croniter's errors too
                if (name, data) not in self._warned:  # once, not at every tick
                    self._warned.add((name, data))
                    logger.warning("beat: skipping entry %r of %s: %s", name, self.key, exc)
        return out

    def list(self) -> Dict[str, Entry]:
        """Every entry beat would run now: the app's ``beat_schedule`` then the table's."""
        entries = {name: entry_from_config(name, spec)
                   for name, spec in (self.app.conf.beat_schedule or {}).items()}
        entries.update(self.dynamic())
        return entries

    def ran(self, entry: Entry, at: float) -> None:
        """Nothing to note: the last run is already in Redis."""
