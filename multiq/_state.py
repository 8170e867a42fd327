"""What the API modules share at run time: the current app, the apps made in this
process, the running task's request stack, and how new task ids are made.

Standard library only, and imported by the API modules (app, task, canvas, result, trace)
instead of each other, so none needs another at import time just to find the current app.
"""
from __future__ import annotations

import os
import threading
from contextvars import ContextVar
from typing import Any, Callable, List, Optional

#: Per thread: ``current`` app, and the app's send-path state (``batch``, ``capture``,
#: ``deferred``: see MultiQ.publish_batch, multiq.canvas.capture, deferred_publishes).
local = threading.local()
#: The requests of the tasks running in this context, innermost last (None: none ever ran
#: here). Each thread has its own context, so its own stack. A list, changed in place by
#: ``Task.push_request`` / ``pop_request``, which a synchronous call always leaves as it
#: found it before anything can await; the asyncio Tasks a coroutine starts share its list
#: (they see its request), and :func:`multiq.trace.atrace` gives each call it awaits a new
#: list, in its own context: concurrent coroutine tasks never see each other's requests.
tasks: ContextVar[Optional[List[Any]]] = ContextVar("multiq_tasks", default=None)
apps: List[Any] = []  # every app made in this process, in order
chosen: List[Any] = []  # the app ``set_default()`` chose (at most one)
_fallback: List[Any] = []  # the app made on demand when there is none
make_default: Optional[Callable[[], Any]] = None  # set by multiq.app

_VARIANT = "89ab"


def current_app() -> Any:
    """This thread's current app, else the one ``set_default()`` chose, else the app made
    last in this process (a default one if none was made)."""
    app = getattr(local, "current", None) or (chosen[0] if chosen else None) \
        or (apps[-1] if apps else None)
    if app is None:
        if not _fallback and make_default is not None:
            _fallback.append(make_default())
        app = _fallback[0] if _fallback else None
    return app


def task_stack() -> Optional[List[Any]]:
    """The requests of the tasks running in this thread or asyncio Task, innermost last
    (None: none ever ran here)."""
    return tasks.get()


def new_id() -> str:
    """A random (version 4) UUID as text, like ``str(uuid.uuid4())`` at half the cost."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"
