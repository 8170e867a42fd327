"""What a send tells ``before_task_publish`` and ``after_task_publish``, with Celery's
arguments, before the message is encoded.

``before_task_publish`` receivers get ``body`` (``(args, kwargs, embed)``, embed being the
callbacks, errbacks, chain and chord), ``exchange``, ``routing_key`` (the queue), ``headers``
(Celery's protocol headers: ``task``, ``id``, ``root_id``, ``parent_id``, ``eta``...,
with the send's own ``headers``), ``properties``, ``declare`` and ``retry_policy``. Headers a
receiver adds (a trace context, say) travel in the message and reach the worker's
``request.headers``; the protocol ones are the send's and cannot be changed there.
Nothing of this is built unless a receiver is connected (or ``task_send_sent_event`` is
on).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from multiq import signals


class Outgoing(NamedTuple):
    """One task message about to be sent."""

    name: str
    task_id: str
    queue: str
    args: List[Any]
    kwargs: Dict[str, Any]
    headers: Dict[str, Any]  # the send's own headers (receivers' additions join them)
    options: Dict[str, Any]
    eta: Optional[float]
    expires: Optional[float]
    root_id: Optional[str]
    parent_id: Optional[str]
    priority: Optional[int]
    shadow: Optional[str]
    origin: str

    def body(self) -> Tuple[List[Any], Dict[str, Any], Dict[str, Any]]:
        o = self.options
        return self.args, self.kwargs, {"callbacks": o.get("link"), "errbacks": o.get("link_error"),
                                        "chain": o.get("chain"), "chord": o.get("chord")}

    def protocol(self) -> Dict[str, Any]:
        """Celery's protocol 2 headers of this message."""
        from multiq.events import safe_repr

        o = self.options
        return {
            "lang": "py", "task": self.name, "id": self.task_id, "shadow": self.shadow,
            "eta": _iso(self.eta), "expires": _iso(self.expires), "group": o.get("group_id"),
            "group_index": o.get("group_index"), "retries": 0,
            "timelimit": list(o.get("timelimit") or (None, None)),
            "root_id": self.root_id or self.task_id,
            "parent_id": self.parent_id, "argsrepr": safe_repr(self.args),
            "kwargsrepr": safe_repr(self.kwargs), "origin": self.origin,
            "ignore_result": bool(o.get("ignore_result")), "stamps": {},
            "replaced_task_nesting": o.get("replaced_task_nesting") or 0,
        }

    def properties(self) -> Dict[str, Any]:
        return {"correlation_id": self.task_id, "reply_to": None, "delivery_mode": 2,
                "priority": self.priority, "content_type": "application/json",
                "content_encoding": "utf-8"}


def before(out: Outgoing, retry_policy: Any) -> Dict[str, Any]:
    """Send ``before_task_publish``; the headers to encode: the send's and those receivers
    added."""
    if not signals.before_task_publish.has_receivers():
        return out.headers
    protocol = out.protocol()
    headers = {**protocol, **out.headers}
    signals.before_task_publish.send(
        sender=out.name, body=out.body(), exchange="", routing_key=out.queue,
        headers=headers, properties=out.properties(), declare=[], retry_policy=retry_policy)
    for key, value in headers.items():
        if key not in protocol:
            out.headers[key] = value
    return out.headers


def after(out: Outgoing) -> None:
    """Send ``after_task_publish`` (the message is in Redis)."""
    if signals.after_task_publish.has_receivers():
        signals.after_task_publish.send(
            sender=out.name, body=out.body(), exchange="", routing_key=out.queue,
            headers={**out.protocol(), **out.headers})


def _iso(when: Optional[float]) -> Optional[str]:
    return None if when is None else dt.datetime.fromtimestamp(when, dt.timezone.utc).isoformat()
