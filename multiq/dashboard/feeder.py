"""The thread that folds the events stream into the history, from where it last stopped.

Several dashboards may share one Redis: only the holder of the lease ``dash:feeder`` reads
and writes, so nothing is counted twice; another takes over when the holder's lease
expires. The read position lives in Redis (``dash:pos``): a dashboard started after
downtime first catches up on what the stream still holds (it keeps the last 10,000
events), then follows it live.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

from multiq.dashboard.history import History
from multiq.dashboard.values import text

logger = logging.getLogger("multiq.dashboard")

# KEYS: lease. ARGV: holder, ms. Takes a free lease or renews our own; 1 if we hold it.
LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class Feeder:
    """Reads ``events`` after ``dash:pos`` in batches and folds each into the history."""

    def __init__(self, client: Any, stream: str, history: History, lease: float = 10.0,
                 batch: int = 500, trim_every: float = 30.0) -> None:
        self.client = client
        self.stream = stream
        self.history = history
        self.keys = history.keys
        self.lease = lease
        self.batch = batch
        self.trim_every = trim_every
        self.ident = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease = client.register_script(LEASE)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._trimmed = 0.0

    def hold(self) -> bool:
        return bool(self._lease(keys=[self.keys.feeder],
                                args=[self.ident, int(self.lease * 1000)]))

    def step(self, block_ms: Optional[int] = None) -> int:
        """Fold the next batch (waiting up to ``block_ms`` for one); returns how many
        entries were read. Call only while holding the lease."""
        position = text(self.client.get(self.keys.pos)) or "0-0"
        reply = self.client.xread({self.stream: position}, count=self.batch, block=block_ms)
        entries: List[Tuple[str, Dict[str, Any]]] = []
        last = position
        for _, rows in reply or ():
            for entry_id, fields in rows:
                last = text(entry_id)
                body = _decode(fields)
                if body is not None:
                    entries.append((last, body))
        if last != position:
            self.history.fold(entries, last)
        if time.monotonic() - self._trimmed >= self.trim_every:
            self._trimmed = time.monotonic()
            self.history.trim()
        return len(entries) if last != position else 0

    def catch_up(self) -> int:
        """Fold everything the stream holds after the stored position (when the lease is
        free or ours); returns how many entries."""
        total = 0
        while self.hold():
            n = self.step()
            total += n
            if n == 0:
                break
        return total

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.hold():
                    self.step(block_ms=500)
                else:
                    self._stop.wait(self.lease / 3)
            except Exception as exc:  # Redis away: log, wait, go on
                logger.warning("dashboard: reading events failed: %s: %s",
                               type(exc).__name__, exc)
                self._stop.wait(1.0)
        self._release()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="dashboard-feeder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _release(self) -> None:
        try:
            if text(self.client.get(self.keys.feeder)) == self.ident:
                self.client.delete(self.keys.feeder)
        except Exception:  # Redis away: the lease expires by itself
            pass


def _decode(fields: Dict[Any, Any]) -> Optional[Dict[str, Any]]:
    try:
        body = json.loads(fields[b"e"])
    except (KeyError, ValueError):
        return None
    return body if isinstance(body, dict) else None
