"""Beat as the dashboard shows and edits it: entries, their last and next runs, the leader;
dynamic entries added, disabled (moved to ``beat:disabled``, which beat does not read),
enabled again and removed."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Dict, List, Optional

from multiq.beat.table import BeatTable, entry_from_json
from multiq.dashboard.values import number, text

# KEYS: from hash, to hash. ARGV: name. Moves one field; 1 if it was there.
MOVE = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], v)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""


class BeatView:
    """Reads and edits the schedule of one app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.table = BeatTable(app)
        self.client = app.broker.client
        self.keys = app.broker.keys
        self._move = self.client.register_script(MOVE)

    def entries(self) -> List[Dict[str, Any]]:
        """Every entry: ``source`` (config, dynamic, disabled), schedule, last and next
        run (epoch seconds)."""
        from multiq.schedules import _zone

        zone = _zone(self.app.conf.timezone or "UTC")
        dynamic = self.table.dynamic()
        lasts = {text(k): number(v) for k, v in self.client.hgetall(self.keys.beat_last).items()}
        out = []
        for name, entry in self.table.list().items():
            last = lasts.get(name)
            nxt: Optional[float] = None
            if last is not None:
                try:
                    nxt = entry.schedule.next_after(dt.datetime.fromtimestamp(last, zone)) \
                        .timestamp()
                except Exception:  # a schedule that cannot say: shown without
                    nxt = None
            out.append(_row(name, entry.task, entry.schedule, entry.args, entry.kwargs,
                            "dynamic" if name in dynamic else "config", last, nxt))
        for name, raw in sorted(self.client.hgetall(self.keys.beat_disabled).items()):
            try:
                entry = entry_from_json(text(name), raw)
            except ValueError:
                continue
            out.append(_row(entry.name, entry.task, entry.schedule, entry.args, entry.kwargs,
                            "disabled", None, None))
        return out

    def leader(self) -> Optional[Dict[str, Any]]:
        """The beat holding the lease (``host:pid:id``) and the lease's time left."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.beat_lock)
        pipe.pttl(self.keys.beat_lock)
        holder, ttl = pipe.execute()
        if not isinstance(holder, bytes):
            return None
        return {"ident": text(holder), "expires_in": max(0, int(ttl)) / 1000.0}

    def add(self, name: str, task: str, every: Optional[float] = None,
            crontab: Optional[str] = None, args: Any = (), kwargs: Any = None) -> None:
        """Add (or replace) a dynamic entry run every ``every`` seconds or on a
        ``crontab`` line (``m h dom mon dow``). ValueError for bad input."""
        from multiq.schedules import crontab as make_crontab

        if not name or not task:
            raise ValueError("an entry needs a name and a task")
        if (every is None) == (not crontab):
            raise ValueError("give either an interval in seconds or a crontab line")
        if not isinstance(args, (list, tuple)) or not isinstance(kwargs or {}, dict):
            raise ValueError("args must be a JSON array and kwargs a JSON object")
        schedule: Any
        if every is not None:
            if every <= 0:
                raise ValueError("the interval must be a positive number of seconds")
            schedule = float(every)
        else:
            parts = str(crontab).split()
            if len(parts) != 5:
                raise ValueError("a crontab line has five fields: minute hour "
                                 "day-of-month month day-of-week")
            try:
                schedule = make_crontab(minute=parts[0], hour=parts[1], day_of_month=parts[2],
                                        month_of_year=parts[3], day_of_week=parts[4])
            except Exception as exc:
                raise ValueError(f"bad crontab line {crontab!r}: {exc}") from None
        self.table.add(name, task, schedule, list(args), dict(kwargs or {}))
        self.client.hdel(self.keys.beat_disabled, name)

    def disable(self, name: str) -> bool:
        return bool(self._move(keys=[self.keys.beat_entries, self.keys.beat_disabled],
                               args=[name]))

    def enable(self, name: str) -> bool:
        return bool(self._move(keys=[self.keys.beat_disabled, self.keys.beat_entries],
                               args=[name]))

    def remove(self, name: str) -> bool:
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.keys.beat_entries, name)
        pipe.hdel(self.keys.beat_disabled, name)
        return any(pipe.execute())


def _row(name: str, task: str, schedule: Any, args: Any, kwargs: Any, source: str,
         last: Optional[float], nxt: Optional[float]) -> Dict[str, Any]:
    try:
        described = json.dumps(schedule.to_dict())
    except Exception:
        described = repr(schedule)
    return {"name": name, "task": task, "schedule": described, "args": json.dumps(args),
            "kwargs": json.dumps(kwargs), "source": source, "last_run": last, "next_run": nxt}
