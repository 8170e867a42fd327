"""Administration of a queue's keys: dead letters (list, requeue, purge) and purging.

Both kinds of change are made by Lua scripts that touch one queue's keys (one hash slot), so
each batch is atomic: a message requeued from the dead-letter stream is added to its band
stream and deleted from the dead-letter stream together (never lost, never doubled), and
purge deletes only entries that no consumer holds at the moment it deletes them.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from multiq.exceptions import DecodeError
from multiq.keys import GROUP
from multiq.message import peek

logger = logging.getLogger("multiq.broker")
BATCH = 500
_ENTRY_ID = re.compile(r"^\d+(-\d+)?$")

# KEYS: one band stream. ARGV: group, start ('-' or an exclusive id), count.
# Deletes the entries after ``start`` (up to ``count`` scanned) that are not in the group's
# pending-entries list. Returns {deleted, last id scanned or false}.
PURGE_WAITING = """
local start = ARGV[2]
if start ~= '-' then start = '(' .. start end
local entries = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', ARGV[3])
local deleted = 0
for _, e in ipairs(entries) do
  local held = redis.pcall('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
  if held.err or #held == 0 then
    redis.call('XDEL', KEYS[1], e[1])
    deleted = deleted + 1
  end
end
local last = false
if #entries > 0 then last = entries[#entries][1] end
return {deleted, last}
"""

# KEYS: 10 band streams (band 9 first), dead-letter stream. ARGV: entry ids.
# Moves each entry back to the stream of its band with delivery count 0 and deletes it from
# the dead-letter stream. Returns the ids moved.
REQUEUE = """
local moved = {}
for i = 1, #ARGV do
  local e = redis.call('XRANGE', KEYS[11], ARGV[i], ARGV[i])
  if e[1] then
    local f = e[1][2]
    local m, band = nil, 0
    for j = 1, #f, 2 do
      if f[j] == 'm' then m = f[j + 1] elseif f[j] == 'band' then band = tonumber(f[j + 1]) or 0 end
    end
    band = math.max(0, math.min(9, math.floor(band)))
    if m then
      redis.call('XADD', KEYS[10 - band], '*', 'm', m, 'n', 0)
      redis.call('XDEL', KEYS[11], ARGV[i])
      moved[#moved + 1] = ARGV[i]
    end
  end
end
return moved
"""


class DeadLetterNotFound(LookupError):
    """No dead-letter entry has this id (in the queues searched)."""


class AmbiguousDeadLetter(LookupError):
    """A bare entry id found in several queues: it needs ``queue/entryid``."""


@dataclass
class DeadLetter:
    """One entry of a dead-letter stream."""

    queue: str
    entry_id: str
    data: bytes
    reason: str
    band: int
    time: Optional[float]

    @property
    def ref(self) -> str:
        return f"{self.queue}/{self.entry_id}"

    def envelope(self) -> Optional[Dict[str, Any]]:
        """The decoded envelope header, or None when the bytes are not one."""
        try:
            env = peek(self.data)
        except DecodeError:
            return None
        return env if isinstance(env["id"], str) and isinstance(env["task"], str) else None

    def summary(self) -> Dict[str, Any]:
        """The entry as JSON-ready fields (task name and id are None when undecodable)."""
        env = self.envelope() or {}
        return {"entry": self.entry_id, "queue": self.queue, "task": env.get("task"),
                "id": env.get("id"), "reason": self.reason, "band": self.band,
                "time": self.time}


def parse_ref(ref: str) -> Tuple[Optional[str], str]:
    """``queue/entryid`` or a bare ``entryid`` -> (queue or None, entry id)."""
    queue, _, entry_id = ref.rpartition("/")
    if not _ENTRY_ID.match(entry_id):
        raise ValueError(f"Not a dead-letter entry id: {ref!r} (expected [queue/]<ms>-<seq>)")
    return (queue or None), entry_id


class DeadLetters:
    """Read, requeue and purge the dead-letter streams of a :class:`RedisBroker`."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker
        self.client: Any = broker.client
        self.keys = broker.keys
        self._requeue = self.client.register_script(REQUEUE)

    def queues(self) -> List[str]:
        """Known queues plus any queue that has a dead-letter stream."""
        found = set(self.broker.queue_names())
        pattern = self.keys.deadletter("*")
        head, tail = pattern.split("*")
        for key in self.client.scan_iter(match=pattern, count=1000):
            name = key.decode() if isinstance(key, bytes) else key
            found.add(name[len(head):-len(tail)])
        return sorted(found)

    def _names(self, queues: Optional[Sequence[str]]) -> List[str]:
        return self.queues() if queues is None else list(queues)

    def count(self, queues: Optional[Sequence[str]] = None) -> Dict[str, int]:
        """Entries per queue (queues without any are left out)."""
        names = self._names(queues)
        p = self.client.pipeline(transaction=False)
        for queue in names:
            p.xlen(self.keys.deadletter(queue))
        return {q: int(n) for q, n in self._read(names, p) if n}

    def list(self, queues: Optional[Sequence[str]] = None,
             limit: Optional[int] = None) -> List[DeadLetter]:
        """The oldest ``limit`` entries (all when None) of ``queues``, oldest first."""
        names = self._names(queues)
        p = self.client.pipeline(transaction=False)
        for queue in names:
            p.xrange(self.keys.deadletter(queue), count=limit)
        out = [_entry(queue, row) for queue, rows in self._read(names, p) for row in rows]
        out.sort(key=lambda d: _id_key(d.entry_id))
        return out[:limit] if limit else out

    def get(self, ref: str, queues: Optional[Sequence[str]] = None) -> DeadLetter:
        """The entry ``queue/entryid``, or a bare id searched in ``queues`` (default all)."""
        queue, entry_id = parse_ref(ref)
        names = [queue] if queue else self._names(queues)
        p = self.client.pipeline(transaction=False)
        for name in names:
            p.xrange(self.keys.deadletter(name), entry_id, entry_id)
        found = [_entry(name, rows[0]) for name, rows in self._read(names, p) if rows]
        if not found:
            raise DeadLetterNotFound(f"No dead-letter entry {ref}")
        if len(found) > 1:
            where = ", ".join(d.ref for d in found)
            raise AmbiguousDeadLetter(f"Entry {ref} is in several queues: {where}")
        return found[0]

    def _read(self, names: Sequence[str], p: Any) -> List[Tuple[str, Any]]:
        """(queue, reply) of a pipeline of one read per queue; a key that is not a stream
        is skipped with a warning."""
        out: List[Tuple[str, Any]] = []
        for name, rows in zip(names, p.execute(raise_on_error=False)):
            if isinstance(rows, Exception):
                logger.warning("Skipping %s: %s", self.keys.deadletter(name), rows)
            else:
                out.append((name, rows))
        return out

    def requeue(self, refs: Iterable[str],
                queues: Optional[Sequence[str]] = None) -> Tuple[int, List[str]]:
        """Move the entries back to their queues; returns (how many, refs not requeued:
        not found, or an entry without a message)."""
        by_queue: Dict[str, List[DeadLetter]] = {}
        missing: List[str] = []
        for ref in refs:
            try:
                entry = self.get(ref, queues)
            except DeadLetterNotFound:
                missing.append(ref)
                continue
            by_queue.setdefault(entry.queue, []).append(entry)
        moved = 0
        for queue, entries in by_queue.items():
            done = set(self._move(queue, [e.entry_id for e in entries]))
            moved += len(done)
            missing += [e.ref for e in entries if e.entry_id not in done]
        return moved, missing

    def requeue_all(self, queues: Optional[Sequence[str]] = None) -> int:
        """Move every entry of ``queues`` (default all) back to its queue: those there
        when it starts, never one dead-lettered again meanwhile (a node serving the queue
        may take a requeued message and dead-letter it again at once: each is requeued
        once)."""
        total = 0
        for queue in self._names(queues):
            p = self.client.pipeline(transaction=False)
            p.xrevrange(self.keys.deadletter(queue), "+", "-", count=1)
            last: List[Any] = next((rows for _, rows in self._read([queue], p)), [])
            if not last:
                continue
            start, end = "-", _text(last[0][0])
            while True:
                p = self.client.pipeline(transaction=False)
                p.xrange(self.keys.deadletter(queue), start, end, count=BATCH)
                rows: List[Any] = next((rows for _, rows in self._read([queue], p)), [])
                if not rows:
                    break
                total += len(self._move(queue, [_text(entry_id) for entry_id, _ in rows]))
                start = "(" + _text(rows[-1][0])
        return total

    def _move(self, queue: str, entry_ids: Sequence[str]) -> List[str]:
        """Requeue these entries of ``queue``; returns the ids moved (an entry without a
        message stays, with a warning)."""
        keys = [*self.keys.streams(queue), self.keys.deadletter(queue)]
        moved: List[str] = []
        for i in range(0, len(entry_ids), BATCH):
            moved += [_text(x) for x in self._requeue(keys=keys,
                                                       args=list(entry_ids[i:i + BATCH]))]
        for left in sorted(set(entry_ids) - set(moved)):
            logger.warning("Dead-letter entry %s of %s holds no message: not requeued", left,
                           self.keys.deadletter(queue))
        return moved

    def purge(self, queues: Optional[Sequence[str]] = None) -> int:
        """Delete every dead-letter entry of ``queues`` (default all); returns how many."""
        total = 0
        for queue in self._names(queues):
            p = self.client.pipeline(transaction=True)
            p.xlen(self.keys.deadletter(queue))
            p.delete(self.keys.deadletter(queue))
            total += int(p.execute()[0])
        return total


def purge_queue(broker: Any, queue: str) -> int:
    """Delete ``queue``'s delayed and waiting messages; held (pending) entries stay.

    Delayed ones go first, so one promoted meanwhile is still found in its stream. Stream
    keys and consumer groups are kept: workers hold the groups.
    """
    p = broker.client.pipeline(transaction=True)
    p.zcard(broker.keys.delayed(queue))
    p.delete(broker.keys.delayed(queue), broker.keys.delayed_bodies(queue))
    total = int(p.execute()[0])
    script = broker.client.register_script(PURGE_WAITING)
    for stream in broker.keys.streams(queue):
        start: Any = "-"
        while start:
            deleted, start = script(keys=[stream], args=[GROUP, start, BATCH])
            total += int(deleted)
    return total


def _entry(queue: str, row: Any) -> DeadLetter:
    entry_id, fields = row
    f = {_text(k): v for k, v in fields.items()}
    return DeadLetter(
        queue=queue, entry_id=_text(entry_id), data=f.get("m", b""),
        reason=_text(f.get("reason", b"")), band=_int(f.get("band")),
        time=_float(f.get("time")),
    )


def _id_key(entry_id: str) -> Tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int:
    try:
        return min(9, max(0, int(value)))
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 <= number < 1e11 else None  # a time (seconds) before year 5138
