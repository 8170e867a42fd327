"""Events: what tasks and nodes do, in a capped Redis stream (``multiq:events``).

Nodes send them only when events are enabled (``-E``, ``worker_send_task_events`` or the
``enable_events`` command). On the hot path an event is one more ``XADD`` in the pipeline
that already carries the task's ack, never a round trip of its own. Field names follow
Celery's (``type``, ``uuid``, ``hostname``, ``timestamp``, ``runtime``, ...).
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, Iterator, Optional

from multiq import describe
from multiq.serialization import json_dumps

MAXLEN = 10_000


def event(type_: str, **fields: Any) -> Dict[str, Any]:
    return {"type": type_, "timestamp": time.time(), "pid": os.getpid(), **fields}


def add(pipe: Any, stream: str, fields: Dict[str, Any]) -> None:
    """Queue an event in a pipeline."""
    pipe.xadd(stream, {"e": json_dumps(fields)}, maxlen=MAXLEN, approximate=True)


def safe_repr(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut to ``limit`` characters; never raises (see :mod:`multiq.describe`)."""
    return describe.safe_repr(value, limit)


class EventReceiver:
    """Reads events as they come: ``EventReceiver(app, handlers={"task-failed": f}).capture()``.

    A handler keyed ``"*"`` receives every event.
    """

    def __init__(self, app: Any, handlers: Optional[Dict[str, Callable[[Dict], Any]]] = None,
                 from_start: bool = False) -> None:
        self.app = app
        self.handlers = handlers or {}
        self.last_id = "0-0" if from_start else "$"
        self.should_stop = False

    def itercapture(self, limit: Optional[int] = None, timeout: Optional[float] = None,
                    block: float = 0.5) -> Iterator[Dict[str, Any]]:
        broker = self.app.broker
        stream = broker.keys.events
        if self.last_id == "$":  # resolve now, so nothing sent from here on is missed
            info = broker.client.xrevrange(stream, count=1)
            self.last_id = info[0][0].decode() if info else "0-0"
        count, deadline = 0, None if timeout is None else time.monotonic() + timeout
        while not self.should_stop:
            wait = block if deadline is None else min(block, deadline - time.monotonic())
            if wait <= 0:
                return
            reply = broker.client.xread({stream: self.last_id}, count=100,
                                        block=max(1, int(wait * 1000)))
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    self.last_id = entry_id.decode()
                    try:
                        body = json.loads(fields[b"e"])
                    except (KeyError, ValueError):
                        continue
                    yield body
                    count += 1
                    if limit is not None and count >= limit:
                        return

    def capture(self, limit: Optional[int] = None, timeout: Optional[float] = None) -> None:
        """Call the handlers for each event until ``limit`` events or ``timeout`` seconds."""
        for body in self.itercapture(limit=limit, timeout=timeout):
            handler = self.handlers.get(body.get("type", "")) or self.handlers.get("*")
            if handler is not None:
                handler(body)
