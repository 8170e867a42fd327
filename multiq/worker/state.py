"""What one worker process knows right now: revoked ids and counters."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Set

from multiq import _state

_local = threading.local()


def current_request() -> Any:
    """The request of the task running in this thread or asyncio Task, if any (to set
    parent ids)."""
    stack = _state.tasks.get()
    return stack[-1] if stack else None


class WorkerState:
    """Revoked ids and per-task totals, shared by the worker's threads."""

    def __init__(self) -> None:
        self.revoked: Set[str] = set()
        self.total: Counter = Counter()
        self.lock = threading.Lock()
        self.clock = 0  # a logical clock: advanced by every control command received

    def is_revoked(self, task_id: str) -> bool:
        return task_id in self.revoked

    def add_revoked(self, ids: Any) -> None:
        with self.lock:
            self.revoked.update(ids)

    def replace_revoked(self, ids: Set[str]) -> None:
        with self.lock:
            self.revoked = ids

    def count(self, name: str) -> None:
        self.total[name] += 1
