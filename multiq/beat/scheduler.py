"""The beat loop: hold the leader lease, send what is due, remember when in Redis.

Any number of beat processes (and ``worker -B``) may run. Only the holder of the lease
``<prefix>:beat:lock`` sends; it renews the lease every second, and when it dies another
takes over once the lease expires (a few seconds). Last-run times live in the hash
``<prefix>:beat:last``; a run is claimed by compare-and-set on that hash before its task is
sent, so even two processes that both believe they lead cannot send the same run twice.
After downtime a missed run is sent once, not once per missed interval.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Dict, Optional

from multiq import signals
from multiq.beat.table import BeatTable, Entry

logger = logging.getLogger("multiq.beat")

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
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
                 lease: float = 5.0) -> None:
        self.app = app
        self.table = BeatTable(app)
        self.max_interval = float(max_interval or app.conf.beat_max_loop_interval or 5)
        self.lease = lease
        self.ident = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.leader = False
        self._stop = threading.Event()
        broker = app.broker
        self.lock_key = broker.keys.beat_lock
        self.last_key = broker.keys.beat_last
        self._renew = broker.client.register_script(RENEW)
        self._claim = broker.client.register_script(CLAIM)

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
        entries = self.table.list()
        client = self.app.broker.client
        lasts = {k.decode(): v for k, v in client.hgetall(self.last_key).items()}
        now = time.time()
        wait = min(self.max_interval, self.lease / 3)
        for name, entry in entries.items():
            entry.schedule.tz = zone
            raw = lasts.get(name)
            if raw is None:  # first sighting: its first run is one period from now
                client.hsetnx(self.last_key, name, repr(now))
                due = entry.schedule.next_after(_at(now, zone))
            else:
                due = entry.schedule.next_after(_at(float(raw), zone))
                if due.timestamp() <= now:
                    if self._claim(keys=[self.last_key], args=[name, raw, repr(now)]):
                        self.send(entry)
                    due = entry.schedule.next_after(_at(now, zone))
            wait = min(wait, max(due.timestamp() - time.time(), 0.01))
        self._forget_removed(entries, lasts)
        return wait

    def send(self, entry: Entry) -> None:
        logger.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            task = self.app.tasks.get(entry.task)
            if task is not None:
                task.apply_async(entry.args, entry.kwargs, **entry.options)
            else:
                self.app.send_task(entry.task, entry.args, entry.kwargs, **entry.options)
        except Exception as exc:
            logger.error("Scheduler: could not send %s (%s): %r", entry.name, entry.task, exc)

    def _forget_removed(self, entries: Dict[str, Entry], lasts: Dict[str, Any]) -> None:
        gone = [name for name in lasts if name not in entries]
        if gone:
            self.app.broker.client.hdel(self.last_key, *gone)

    # -- the lease -----------------------------------------------------------------------

    def hold_lease(self) -> bool:
        client = self.app.broker.client
        ms = int(self.lease * 1000)
        if self.leader and self._renew(keys=[self.lock_key], args=[self.ident, ms]):
            return True
        was = self.leader
        self.leader = bool(client.set(self.lock_key, self.ident, nx=True, px=ms))
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
