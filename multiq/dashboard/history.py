"""The task history: events folded into an index in Redis (keys ``<prefix>:dash:*``).

One hash per task holds what its events said; sorted sets scored by the time a task was
first seen order the history and serve the search filters (name, state, node). Each batch
of events is written in one transaction together with the stream position it reaches, so
a dashboard that restarts resumes exactly after the last batch it folded.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from multiq.dashboard.values import number as _num
from multiq.dashboard.values import text as _text
from multiq.keys import DashboardKeys

#: event type -> the state it moves a task to (Celery's mapping)
STATES = {"task-sent": "PENDING", "task-received": "RECEIVED", "task-started": "STARTED",
          "task-succeeded": "SUCCESS", "task-failed": "FAILURE", "task-retried": "RETRY",
          "task-revoked": "REVOKED", "task-rejected": "REJECTED"}
READY = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED"})
#: event fields copied into the task's hash (all as text)
COPIED = ("name", "hostname", "pid", "args", "kwargs", "result", "exception", "traceback",
          "runtime", "retries", "queue", "parent_id", "root_id", "eta", "expires", "group_id",
          "chord_id")
TIMELINE_MAX = 100
SAMPLES_MAX = 1000
RATE_TTL = 20 * 60
KNOWN = ("state", "first", "name", "hostname", "t_task-sent", "t_task-received", "t_state",
         "t_task-started", "waited")


@dataclass
class Seen:
    """What the index holds of one task, read before a batch is written."""

    state: Optional[str] = None
    first: Optional[float] = None
    name: Optional[str] = None
    hostname: Optional[str] = None
    sent: Optional[float] = None
    received: Optional[float] = None
    state_at: Optional[float] = None
    started: Optional[float] = None
    waited: bool = False
    new: bool = True
    changes: Dict[str, str] = field(default_factory=dict)


class History:
    """Fold events into the index, trim it to its bounds."""

    def __init__(self, client: Any, keys: DashboardKeys, max_tasks: int = 100_000,
                 max_age: float = 7 * 86400) -> None:
        self.client = client
        self.keys = keys
        self.max_tasks = int(max_tasks)
        self.max_age = float(max_age)

    # -- folding -------------------------------------------------------------------------

    def fold(self, entries: Sequence[Tuple[str, Dict[str, Any]]], position: str,
             now: Optional[float] = None) -> int:
        """Write the task events of ``entries`` ((stream id, event) pairs) and the new
        read ``position`` in one transaction; returns how many task events were folded."""
        now = time.time() if now is None else now
        tasks = [(i, e) for i, e in entries
                 if isinstance(e.get("uuid"), str) and e["uuid"]
                 and str(e.get("type", "")).startswith("task-")]
        seen = self._read({e["uuid"] for _, e in tasks})
        pipe = self.client.pipeline(transaction=True)
        for _, body in tasks:
            self._fold_one(pipe, body, seen[body["uuid"]], now)
        for task_id, s in seen.items():
            if s.changes:
                pipe.hset(self.keys.task(task_id), mapping=s.changes)
        pipe.set(self.keys.pos, position)
        pipe.execute()
        return len(tasks)

    def _read(self, ids: Iterable[str]) -> Dict[str, Seen]:
        order = sorted(ids)
        pipe = self.client.pipeline(transaction=False)
        for task_id in order:
            pipe.hmget(self.keys.task(task_id), KNOWN)
        out: Dict[str, Seen] = {}
        for task_id, row in zip(order, pipe.execute() if order else []):
            state, first, name, host, sent, received, at, started, waited = \
                (_text(v) for v in row)
            out[task_id] = Seen(state, _num(first), name, host, _num(sent), _num(received),
                                _num(at), _num(started), bool(waited), new=first is None)
        return out

    def _fold_one(self, pipe: Any, body: Dict[str, Any], s: Seen, now: float) -> None:
        k, task_id, kind = self.keys, body["uuid"], str(body["type"])
        ts = _num(body.get("timestamp")) or now
        if s.first is None:
            s.first = ts
            s.changes["first"] = repr(ts)
            pipe.zadd(k.tasks, {task_id: ts}, nx=True)
            pipe.zadd(k.ids, {task_id: 0})
        for field_name in COPIED:
            value = body.get(field_name)
            if field_name == "hostname" and kind == "task-sent":
                continue  # the sender's name, not a node's
            if value is not None and value != "":
                s.changes[field_name] = value if isinstance(value, str) else json.dumps(value)
        s.changes[f"t_{kind}"] = repr(ts)
        name, host = body.get("name"), body.get("hostname")
        if isinstance(name, str) and name and name != s.name:
            s.name = name
            pipe.zadd(k.by("name", name), {task_id: s.first}, nx=True)
            pipe.zadd(k.names, {name: ts})
        if isinstance(host, str) and host and kind != "task-sent" and host != s.hostname:
            if s.hostname:
                pipe.zrem(k.by("node", s.hostname), task_id)
            s.hostname = host
            pipe.zadd(k.by("node", host), {task_id: s.first})
        elif kind == "task-sent":
            s.changes["origin"] = str(host or "")
        self._move_state(pipe, task_id, s, _state_of(body), kind, ts)
        parent = body.get("parent_id")
        if kind == "task-received" and isinstance(parent, str) and parent and parent != task_id:
            pipe.sadd(k.children(parent), task_id)
        pipe.rpush(k.timeline(task_id), json.dumps(
            {"type": kind, "timestamp": ts, "hostname": host, "pid": body.get("pid")}))
        pipe.ltrim(k.timeline(task_id), -TIMELINE_MAX, -1)
        self._measure(pipe, kind, body, s, ts, now)

    def _move_state(self, pipe: Any, task_id: str, s: Seen, state: Optional[str], kind: str,
                    ts: float) -> None:
        """Events may arrive out of order (the sender stamps ``task-sent`` after the
        message is out): an outcome stands, ``task-sent`` never replaces a state, and an
        earlier event never replaces a later one's."""
        if state is None or state == s.state:
            return
        if s.state is not None and (kind == "task-sent" or s.state in READY
                                    or (state not in READY and ts < (s.state_at or 0))):
            return
        if s.state:
            pipe.zrem(self.keys.by("state", s.state), task_id)
        s.state = s.changes["state"] = state
        s.state_at = ts
        s.changes["t_state"] = repr(ts)
        pipe.zadd(self.keys.by("state", state), {task_id: s.first})

    def _measure(self, pipe: Any, kind: str, body: Dict[str, Any], s: Seen, ts: float,
                 now: float) -> None:
        if kind == "task-sent":
            s.sent = ts
        elif kind == "task-received":
            s.received = ts
        elif kind == "task-started":
            s.started = ts
        done = kind in ("task-succeeded", "task-failed")
        self._wait(pipe, s, done)
        if done:
            runtime = _num(body.get("runtime"))
            if runtime is not None:
                self._sample(pipe, "runtime", runtime)
            if now - ts < RATE_TTL:
                second = int(ts)
                key = self.keys.rate(second // 60)
                pipe.hincrby(key, f"{second}:{'s' if kind == 'task-succeeded' else 'f'}", 1)
                pipe.expire(key, RATE_TTL)

    def _wait(self, pipe: Any, s: Seen, done: bool) -> None:
        """Queue wait, once per task: started minus sent; when the task is done and no
        ``task-sent`` came (the sender's events are off), started minus received. (The
        sender stamps ``task-sent`` once the message is out, so it may come late.)"""
        if s.waited or s.started is None:
            return
        since = s.sent if s.sent is not None else s.received if done else None
        if since is None:
            return
        s.waited = True
        s.changes["waited"] = "1"
        self._sample(pipe, "wait", max(0.0, s.started - since))

    def _sample(self, pipe: Any, kind: str, seconds: float) -> None:
        pipe.lpush(self.keys.samples(kind), repr(round(seconds, 6)))
        pipe.ltrim(self.keys.samples(kind), 0, SAMPLES_MAX - 1)

    # -- links -----------------------------------------------------------------------------

    def link_resend(self, old_id: str, new_id: str) -> None:
        """Note that ``new_id`` re-sends ``old_id``'s arguments (both pages link)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.keys.task(old_id), "resent_as", new_id)
        pipe.hset(self.keys.task(new_id), "resent_from", old_id)
        pipe.execute()

    # -- bounds ------------------------------------------------------------------------

    def trim(self, now: Optional[float] = None, batch: int = 2000) -> int:
        """Delete the oldest tasks past ``max_tasks`` or older than ``max_age``."""
        now = time.time() if now is None else now
        removed = 0
        while True:
            excess = int(self.client.zcard(self.keys.tasks)) - self.max_tasks
            old = self.client.zrangebyscore(self.keys.tasks, "-inf",
                                            f"({now - self.max_age}", start=0, num=batch)
            doomed = [_text(x) for x in old]
            if excess > len(doomed):
                doomed = [_text(x) for x in
                          self.client.zrange(self.keys.tasks, 0, min(excess, batch) - 1)]
            if not doomed:
                return removed
            self._delete(doomed)
            removed += len(doomed)

    def _delete(self, ids: List[str]) -> None:
        k = self.keys
        pipe = self.client.pipeline(transaction=False)
        for task_id in ids:
            pipe.hmget(k.task(task_id), ("name", "state", "hostname"))
        rows = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for task_id, (name, state, host) in zip(ids, rows):
            for kind, value in (("name", name), ("state", state), ("node", host)):
                if value:
                    pipe.zrem(k.by(kind, _text(value)), task_id)
            pipe.delete(k.task(task_id), k.timeline(task_id), k.children(task_id))
        pipe.zrem(k.tasks, *ids)
        pipe.zrem(k.ids, *ids)
        pipe.execute()


def _state_of(body: Dict[str, Any]) -> Optional[str]:
    kind = str(body.get("type", ""))
    if kind in STATES:
        return STATES[kind]
    custom = body.get("state")  # task-progress and the like (update_state)
    return custom if isinstance(custom, str) and custom else None
