"""The dashboard's collaborators for one app, made once and handed to every route."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, List, Optional, Set

from multiq.dashboard.feeder import Feeder
from multiq.dashboard.history import History
from multiq.dashboard.search import Search
from multiq.dashboard.security import Authenticator
from multiq.dashboard.settings import DashboardSettings
from multiq.keys import DashboardKeys

logger = logging.getLogger("multiq.dashboard")
#: seconds between two scans of the keyspace for dead-letter streams of unknown queues
SCAN_EVERY = 60.0


class Dashboard:
    """The app, its broker's Redis, the history (write and read sides), the settings."""

    def __init__(self, app: Any, settings: DashboardSettings) -> None:
        self.app = app
        self.settings = settings
        broker = app.broker
        self.broker = broker
        self.client = broker.client
        self.keys = DashboardKeys(broker.keys.prefix)
        self.history = History(self.client, self.keys, settings.history_max_tasks,
                               settings.history_max_age)
        self.search = Search(self.client, self.keys)
        self.auth = Authenticator(settings.credentials)
        self.feeder: Optional[Feeder] = Feeder(self.client, broker.keys.events, self.history) \
            if settings.feed else None
        self._scan_lock = threading.Lock()
        self._scanned: Set[str] = set()
        self._scanned_at = float("-inf")

    @property
    def read_only(self) -> bool:
        return self.settings.read_only

    def deadletters(self) -> Any:
        from multiq.broker.deadletter import DeadLetters

        return DeadLetters(self.broker)

    def queue_names(self) -> List[str]:
        """The known queues, and those with a dead-letter stream (found by a scan of the
        keyspace, done at most once a minute: it reads every key)."""
        with self._scan_lock:
            if time.monotonic() - self._scanned_at >= SCAN_EVERY:
                self._scanned = set(self.deadletters().queues())
                self._scanned_at = time.monotonic()
            scanned = set(self._scanned)
        return sorted(scanned | set(self.broker.queue_names()))

    def beat(self) -> Any:
        from multiq.dashboard.beatview import BeatView

        return BeatView(self.app)

    def start(self) -> None:
        """Catch up on the events the stream holds, then follow it in a thread."""
        if self.feeder is None:
            return
        try:
            self.feeder.catch_up()
        except Exception as exc:  # Redis away at start: the thread keeps trying
            logger.warning("dashboard: could not catch up on events: %s: %s",
                           type(exc).__name__, exc)
        self.feeder.start()

    def stop(self) -> None:
        if self.feeder is not None:
            self.feeder.stop()
