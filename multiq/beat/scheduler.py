"""The beat loop: hold the leader lease, send what is due, remember when in Redis.

Any number of beat processes (and ``worker -B``) may run. Only the holder of the lease
``<prefix>:beat:lock`` sends; it renews the lease every second, and when it dies another
takes over once the lease expires (a few seconds). Last-run times live in the hash
``<prefix>:beat:last``; a run is claimed by compare-and-set on that hash before its task is
sent, so even two processes that both believe they lead cannot send the same run twice.
After downtime a missed run is sent once, not once per missed interval.

The entries come from a source (``multiq.beat.source``): by default ``beat_schedule`` and the
dynamic table in Redis, or Django models with ``-S django``; the source is told of each run.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Dict, Optional, Set

from multiq import signals
from multiq.beat.source import EntrySource, load_source
from multiq.beat.table import Entry

logger = logging.getLogger("multiq.beat")

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# Takes the lease if it is free. A lock without an expiry (or not a string) is not a lease
# any beat made: it is replaced, and what it held is returned so it can be logged.
TAKE = """
local kind = redis.call('TYPE', KEYS[1]).ok
local old = false
if kind ~= 'none' then
  if kind == 'string' and redis.call('PTTL', KEYS[1]) >= 0 then return {0, false} end
  if kind == 'string' then old = redis.call('GET', KEYS[1]) else old = kind end
  redis.call('DEL', KEYS[1])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, old}
"""
CLAIM = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
"""


class Beat:
    """One beat process (or thread, with ``worker -B``)."""

    def __init__(self, app: Any, max_interval: Optional[float] = None,
                 lease: float = 5.0, source: Optional[EntrySource] = None) -> None:
        self.app = app
        self.source = source if source is not None \
            else load_source(app, app.conf.get("beat_scheduler"))
        self.max_interval = float(max_interval or app.conf.beat_max_loop_interval or 5)
        self.lease = lease
        self.ident = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leader = False
        self._broken: Set[str] = set()  # entries whose schedule failed (warned once)
        self._stop = threading.Event()
        broker = app.broker
        self.lock_key = broker.keys.beat_lock
        self.last_key = broker.keys.beat_last
        self._renew = broker.client.register_script(RENEW)
        self._claim = broker.client.register_script(CLAIM)
        self._take = broker.client.register_script(TAKE)

    # -- the loop ------------------------------------------------------------------------

    def run(self, on_first_tick: Optional[Any] = None) -> None:
        signals.beat_init.send(sender=self)
        logger.info("beat: Starting...")
        first = True
        while not self._stop.is_set():
            try:
                wait = self.tick()
            except Exception as exc:  # Redis away, a bad entry: log, wait, go on
                logger.error("beat: %s: %s", type(exc).__name__, exc)
                self.leader = False
                wait = 1.0
            if first and on_first_tick is not None:
                on_first_tick()
                first = False
            self._stop.wait(wait)
        self.release()

    def stop(self) -> None:
        self._stop.set()

    def tick(self) -> float:
        """Renew or take the lease; if leading, send every due entry. Returns the wait."""
        if not self.hold_lease():
            return min(1.0, self.max_interval)
        zone = self.app.conf.timezone or "UTC"  # crontabs read the app's wall clock
        entries = self.source.list()
        lasts = self._lasts()
        wait = min(self.max_interval, self.lease / 3)
        for name, entry in entries.items():
            try:
                due = self._visit(entry, lasts.get(name.encode()), zone)
            except Exception as exc:  # one broken entry must not hold up the others
                if name not in self._broken:  # once, not at every tick
                    self._broken.add(name)
                    logger.warning("beat: skipping entry %r: %s: %s", name,
                                   type(exc).__name__, exc)
                continue
            self._broken.discard(name)
            wait = min(wait, max(due - time.time(), 0.01))
        self._forget_removed(entries, lasts)
        return wait

    def _visit(self, entry: Entry, raw: Optional[bytes], zone: str) -> float:
        """Send ``entry`` if it is due (``raw``: its stored last run); returns when it is
        due next (epoch seconds)."""
        client, now = self.app.broker.client, time.time()
        if entry.schedule.tz is None:  # a schedule with its own zone keeps it
            entry.schedule.tz = zone
        last = _last_run(raw, zone)
        if raw is None:  # first sighting: one period from now, or from the source's last run
            seed = now if entry.last_run_at is None else min(entry.last_run_at, now)
            raw = repr(seed).encode()
            if not client.hsetnx(self.last_key, entry.name, raw) or seed == now:
                return entry.schedule.next_after(_at(seed, zone)).timestamp()
            last = _at(seed, zone)
        elif last is None:  # garbage: start again as if first seen, once
            logger.warning("beat: %s holds %r for %r, not a time: reset to now",
                           self.last_key, raw[:80], entry.name)
            self._claim(keys=[self.last_key], args=[entry.name, raw, repr(now)])
            return entry.schedule.next_after(_at(now, zone)).timestamp()
        due = entry.schedule.next_after(last).timestamp()
        if due > now:
            return due
        if self._claim(keys=[self.last_key], args=[entry.name, raw, repr(now)]) \
                and self.send(entry):
            self._note_run(entry, now)
        return entry.schedule.next_after(_at(now, zone)).timestamp()

    def _lasts(self) -> Dict[bytes, bytes]:
        """The stored last runs by entry name (as bytes: a name that is not UTF-8 is still
        found, and forgotten once no entry has it)."""
        return dict(self.app.broker.client.hgetall(self.last_key))

    def send(self, entry: Entry) -> bool:
        """Send one run of ``entry``; False (logged) when it could not be sent."""
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            task = self.app.tasks.get(entry.task)
            if task is not None:
                task.apply_async(entry.args, entry.kwargs, **entry.options)
            else:
                self.app.send_task(entry.task, entry.args, entry.kwargs, **entry.options)
        except Exception as exc:
            logger.error("Scheduler: could not send %s (%s): %r", entry.name, entry.task, exc)
            return False
        return True

    def _note_run(self, entry: Entry, at: float) -> None:
        try:
            self.source.ran(entry, at)
        except Exception as exc:  # the run went out; its source failing must not stop beat
            logger.error("beat: could not record the run of %r: %s: %s", entry.name,
                         type(exc).__name__, exc)

    def _forget_removed(self, entries: Dict[str, Entry], lasts: Dict[bytes, Any]) -> None:
        names = {name.encode() for name in entries}
        gone = [name for name in lasts if name not in names]
        if gone:
            self.app.broker.client.hdel(self.last_key, *gone)

    # -- the lease -----------------------------------------------------------------------

    def hold_lease(self) -> bool:
        ms = int(self.lease * 1000)
        if self.leader and self._renew(keys=[self.lock_key], args=[self.ident, ms]):
            return True
        was = self.leader
        taken, old = self._take(keys=[self.lock_key], args=[self.ident, ms])
        self.leader = bool(taken)
        if old is not None:
            logger.warning("beat: %s held %r, not a lease (no expiry): replaced",
                           self.lock_key, old[:80])
        if self.leader and not was:
            logger.info("beat: this process (%s) now sends the periodic tasks", self.ident)
        elif was and not self.leader:
            logger.warning("beat: lost the leader lease; another beat sends now")
        return self.leader

    def release(self) -> None:
        if not self.leader:
            return
        try:
            client = self.app.broker.client
            if client.get(self.lock_key) == self.ident.encode():
                client.delete(self.lock_key)
        except Exception:
            pass
        self.leader = False


def _last_run(raw: Optional[bytes], zone: str) -> Optional[dt.datetime]:
    """A stored last-run time, or None when there is none or it is not a time."""
    if raw is None:
        return None
    try:
        return _at(float(raw), zone)
    except (ValueError, OverflowError, OSError):  # not a number, nan, out of range
        return None


def _at(epoch: float, zone: str) -> dt.datetime:
    from multiq.schedules import _zone
    return dt.datetime.fromtimestamp(epoch, _zone(zone))


class EmbeddedBeat:
    """``worker -B``: beat in a thread of the node (a component with start/stop)."""

    def __init__(self, app: Any, max_interval: Optional[float] = None) -> None:
        self.beat = Beat(app, max_interval)
        self._thread = threading.Thread(target=self.beat.run, name="beat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.beat.stop()
        self._thread.join(timeout)
