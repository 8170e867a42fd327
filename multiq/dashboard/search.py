"""Reading the task history: search (by id prefix, name, state, node, time, paged) and one
task's record. Every query is a few sorted-set reads and one pipeline of hash reads, so
its cost depends on the page size, not on how many tasks the history holds."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from multiq.dashboard.values import text as _text
from multiq.keys import DashboardKeys

ROW_FIELDS = ("name", "state", "hostname", "first", "runtime", "args", "kwargs", "result",
              "exception", "retries", "queue")
SEARCH_TTL = 10


@dataclass
class Query:
    """A search: every given filter must hold; times are epoch seconds."""

    id: str = ""
    name: str = ""
    state: str = ""
    node: str = ""
    since: Optional[float] = None
    until: Optional[float] = None
    offset: int = 0
    limit: int = 50

    def filters(self) -> List[Tuple[str, str]]:
        return [(kind, value) for kind, value in
                (("name", self.name), ("state", self.state), ("node", self.node)) if value]


class Search:
    """Queries over the index a :class:`multiq.dashboard.history.History` writes."""

    def __init__(self, client: Any, keys: DashboardKeys) -> None:
        self.client = client
        self.keys = keys

    def tasks(self, q: Query) -> Tuple[int, List[Dict[str, Any]]]:
        """(how many match, the page of them, newest first)."""
        if q.id:
            return self._by_id(q)
        key = self._source(q.filters())
        low = "-inf" if q.since is None else repr(q.since)
        high = "+inf" if q.until is None else repr(q.until)
        pipe = self.client.pipeline(transaction=False)
        pipe.zcount(key, low, high)
        pipe.zrevrangebyscore(key, high, low, start=q.offset, num=q.limit)
        total, ids = pipe.execute()
        return int(total), self.rows([_text(i) for i in ids])

    def _source(self, filters: List[Tuple[str, str]]) -> str:
        """The sorted set holding the tasks that pass every filter."""
        keys = [self.keys.by(kind, value) for kind, value in filters]
        if not keys:
            return self.keys.tasks
        if len(keys) == 1:
            return keys[0]
        digest = hashlib.sha1("\0".join(sorted(keys)).encode()).hexdigest()[:16]
        target = self.keys.search(digest)
        if not self.client.exists(target):
            pipe = self.client.pipeline(transaction=True)
            pipe.zinterstore(target, keys, aggregate="MIN")
            pipe.expire(target, SEARCH_TTL)
            pipe.execute()
        return target

    def _by_id(self, q: Query) -> Tuple[int, List[Dict[str, Any]]]:
        """Tasks whose id starts with ``q.id`` (at most 1,000 looked at), other filters
        applied to them."""
        found = self.client.zrangebylex(self.keys.ids, f"[{q.id}", f"[{q.id}\xff",
                                        start=0, num=1000)
        rows = [r for r in self.rows([_text(i) for i in found]) if _passes(r, q)]
        rows.sort(key=lambda r: r.get("first") or 0, reverse=True)
        return len(rows), rows[q.offset:q.offset + q.limit]

    def rows(self, ids: List[str]) -> List[Dict[str, Any]]:
        """The list view of these tasks (ids the index does not hold are left out)."""
        pipe = self.client.pipeline(transaction=False)
        for task_id in ids:
            pipe.hmget(self.keys.task(task_id), ROW_FIELDS)
        out = []
        for task_id, values in zip(ids, pipe.execute() if ids else []):
            row = dict(zip(ROW_FIELDS, (_text(v) for v in values)))
            if row["first"] is None:
                continue
            row["id"] = task_id
            row["first"] = float(row["first"])
            out.append(row)
        return out

    def task(self, task_id: str) -> Optional[Dict[str, Any]]:
        """Everything the index holds of one task, or None: its fields, ``timeline`` and
        ``children``."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.task(task_id))
        pipe.lrange(self.keys.timeline(task_id), 0, -1)
        pipe.smembers(self.keys.children(task_id))
        fields, log, kids = pipe.execute()
        if not fields:
            return None
        out: Dict[str, Any] = {_text(k): _text(v) for k, v in fields.items()}
        out["id"] = task_id
        out["timeline"] = sorted((_load(x) for x in log),
                                 key=lambda e: e.get("timestamp") or 0)
        out["children"] = sorted(_text(x) for x in kids)
        return out

    def names(self, limit: int = 500) -> List[str]:
        """Task names seen, most recent first."""
        return [_text(n) for n in self.client.zrevrange(self.keys.names, 0, limit - 1)]

    def count(self) -> int:
        return int(self.client.zcard(self.keys.tasks))


def _passes(row: Dict[str, Any], q: Query) -> bool:
    checks = ((q.name, row.get("name")), (q.state, row.get("state")),
              (q.node, row.get("hostname")))
    if any(want and want != have for want, have in checks):
        return False
    first = row.get("first") or 0
    return (q.since is None or first >= q.since) and (q.until is None or first <= q.until)


def _load(raw: Any) -> Dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
