"""Signals: hooks that user code connects to (``task_prerun.connect``).

A receiver is called with ``sender`` and keyword arguments; a receiver that raises is
logged and never stops the caller.
"""
from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Callable, List, Optional, Tuple

logger = logging.getLogger(__name__)

Receiver = Callable[..., Any]


class Signal:
    """A named hook with receivers, optionally filtered by sender."""

    def __init__(self, name: str, providing_args: Optional[List[str]] = None) -> None:
        self.name = name
        self.providing_args = providing_args or []
        self._receivers: List[Tuple[Any, Any, bool]] = []
        self._lock = threading.Lock()

    def connect(
        self, receiver: Optional[Receiver] = None, *, sender: Any = None, weak: bool = False
    ) -> Any:
        """Connect ``receiver``; usable as ``@sig.connect`` or ``@sig.connect(sender=...)``."""
        if receiver is None:
            def decorator(fun: Receiver) -> Receiver:
                self.connect(fun, sender=sender, weak=weak)
                return fun
            return decorator
        ref: Any = _make_ref(receiver) if weak else receiver
        with self._lock:
            if not any(r is ref or r == ref for r, s, _ in self._receivers if s == sender):
                self._receivers.append((ref, sender, weak))
        return receiver

    def disconnect(self, receiver: Receiver, *, sender: Any = None) -> bool:
        """Disconnect ``receiver``; returns whether it was connected."""
        with self._lock:
            before = len(self._receivers)
            self._receivers = [
                (r, s, w) for r, s, w in self._receivers
                if not ((r() if w else r) == receiver and s == sender)
            ]
            return len(self._receivers) != before

    @property
    def receivers(self) -> List[Receiver]:
        live = []
        for ref, _sender, weak in list(self._receivers):
            fun = ref() if weak else ref
            if fun is not None:
                live.append(fun)
        return live

    def has_receivers(self) -> bool:
        return bool(self._receivers)

    def send(self, sender: Any = None, **named: Any) -> List[Tuple[Receiver, Any]]:
        """Call every receiver whose sender filter matches; errors are logged, not raised."""
        responses: List[Tuple[Receiver, Any]] = []
        if not self._receivers:
            return responses
        for ref, want, weak in list(self._receivers):
            fun = ref() if weak else ref
            if fun is None or not _sender_matches(want, sender):
                continue
            try:
                responses.append((fun, fun(signal=self, sender=sender, **named)))
            except Exception as exc:  # a receiver must never break the caller
                logger.exception("Signal receiver %r for %s raised: %r", fun, self.name, exc)
                responses.append((fun, exc))
        return responses

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


def _sender_matches(want: Any, sender: Any) -> bool:
    if want is None:
        return True
    if want is sender or want == sender:
        return True
    return isinstance(want, str) and getattr(sender, "name", None) == want


def _make_ref(fun: Receiver) -> Any:
    if hasattr(fun, "__self__") and hasattr(fun, "__func__"):
        return weakref.WeakMethod(fun)
    return weakref.ref(fun)


task_sent = Signal("task_sent")
before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
task_received = Signal("task_received")
task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_failure = Signal("task_failure")
task_retry = Signal("task_retry")
task_revoked = Signal("task_revoked")
task_rejected = Signal("task_rejected")
task_unknown = Signal("task_unknown")
worker_init = Signal("worker_init")
worker_ready = Signal("worker_ready")
worker_shutdown = Signal("worker_shutdown")
worker_process_init = Signal("worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown")
beat_init = Signal("beat_init")
import_modules = Signal("import_modules")
