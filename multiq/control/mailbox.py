"""Remote control over Redis: a command is PUBLISHed to every node; replies come back on a
list named after the call's ticket.

The caller knows which nodes are alive from their heartbeats, so it stops waiting as soon
as every live addressed node has answered; only a node that stays silent makes it wait the
whole timeout. Each call has its own reply list, so a late reply never leaks into the next.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from multiq.broker.base import Broker

REPLY_TTL = 10
logger = logging.getLogger("multiq.control")


class Mailbox:
    """The caller's side."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def live_nodes(self, destination: Optional[Sequence[str]] = None) -> List[str]:
        names = sorted({_hostname(c, info) for c, info in self.broker.live_nodes().items()})
        if destination:
            names = [n for n in names if n in set(destination)]
        return names

    def call(self, method: str, arguments: Optional[Dict[str, Any]] = None,
             destination: Optional[Sequence[str]] = None, timeout: float = 1.0,
             reply: bool = True, limit: Optional[int] = None) -> List[Dict[str, Any]]:
        """Send a command; return ``[{node: reply}, ...]`` in the order replies came."""
        expected = set(self.live_nodes(destination))
        ticket = uuid.uuid4().hex
        key = self.broker.keys.reply(ticket)
        message = {"method": method, "arguments": arguments or {},
                   "destination": list(destination) if destination else None,
                   "ticket": ticket if reply else None, "reply_to": key if reply else None,
                   "expires": time.time() + max(timeout, 0.1) + 1.0}
        self.broker.client.publish(self.broker.keys.control, json.dumps(message))
        if not reply or not expected:
            return []  # nobody alive is addressed: no reply can come
        want = limit or (len(destination) if destination else None)
        return self._collect(key, expected, timeout, want)

    def _collect(self, key: str, expected: set, timeout: float,
                 limit: Optional[int]) -> List[Dict[str, Any]]:
        replies: List[Dict[str, Any]] = []
        seen: set = set()
        deadline = time.monotonic() + timeout
        while True:
            if expected and expected <= seen:
                break
            if limit is not None and len(seen) >= limit:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            item = self.broker.client.blpop([key], timeout=max(left, 0.01))
            if item is None:
                break
            body = _reply(item[1])
            if body is None:
                logger.warning("Skipping a malformed reply in %s: %r", key, item[1][:200])
                continue
            for node, value in body.items():
                if node not in seen:
                    seen.add(node)
                    replies.append({node: value})
        self.broker.client.delete(key)
        return replies


def _hostname(consumer: str, info: Dict[str, Any]) -> str:
    """The node name a heartbeat record gives (its consumer name's when it has none)."""
    name = info.get("hostname")
    return name if isinstance(name, str) and name else consumer.split("|")[0]


def _reply(data: bytes) -> Optional[Dict[str, Any]]:
    """A reply ``{node: value}`` as a node sends it, or None."""
    try:
        body = json.loads(data)
    except ValueError:
        return None
    return body if isinstance(body, dict) and body else None


def parse_command(data: bytes, reply_prefix: str) -> Tuple[Optional[Dict[str, Any]], str]:
    """A control message checked field by field: (message, "") or (None, what is wrong)."""
    try:
        message = json.loads(data)
    except ValueError:
        return None, "not JSON"
    if not isinstance(message, dict):
        return None, "not a JSON object"
    checks = (
        ("method", lambda v: isinstance(v, str) and v),
        ("arguments", lambda v: v is None or isinstance(v, dict)),
        ("destination", lambda v: v is None or (isinstance(v, list)
                                                and all(isinstance(d, str) for d in v))),
        ("expires", lambda v: v is None or (type(v) in (int, float) and v == v)),
        ("reply_to", lambda v: v is None or (isinstance(v, str)
                                             and v.startswith(reply_prefix))),
    )
    for name, ok in checks:
        if not ok(message.get(name)):
            return None, f"bad {name}: {message.get(name)!r}"[:200]
    return message, ""


def send_reply(client: Any, reply_to: str, node: str, value: Any) -> None:
    """The node's side: push one reply and let the list expire on its own."""
    from multiq.serialization import json_dumps

    pipe = client.pipeline(transaction=False)
    pipe.rpush(reply_to, json_dumps({node: value}))
    pipe.expire(reply_to, REPLY_TTL)
    pipe.execute()
