"""Remote control over Redis: a command is PUBLISHed to every node; replies come back on a
list named after the call's ticket.

The caller knows which nodes are alive from their heartbeats, so it stops waiting as soon
as every live addressed node has answered; only a node that stays silent makes it wait the
whole timeout. Each call has its own reply list, so a late reply never leaks into the next.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any, Dict, List, Optional, Sequence

REPLY_TTL = 10


class Mailbox:
    """The caller's side."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker

    def live_nodes(self, destination: Optional[Sequence[str]] = None) -> List[str]:
        names = sorted({info.get("hostname", c.split("|")[0])
                        for c, info in self.broker.live_nodes().items()})
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
            body = json.loads(item[1])
            for node, value in body.items():
                if node not in seen:
                    seen.add(node)
                    replies.append({node: value})
        self.broker.client.delete(key)
        return replies


def send_reply(client: Any, reply_to: str, node: str, value: Any) -> None:
    """The node's side: push one reply and let the list expire on its own."""
    from multiq.serialization import json_dumps

    pipe = client.pipeline(transaction=False)
    pipe.rpush(reply_to, json_dumps({node: value}))
    pipe.expire(reply_to, REPLY_TTL)
    pipe.execute()
