"""The message envelope: what travels from a client to a worker.

An envelope is always JSON, so a worker can read who sent what even when the body is
unreadable. With the default json serializer and no compression, ``args`` and ``kwargs`` sit
in the envelope itself (decoded in one ``json.loads``); otherwise ``body`` holds the
serialized ``[args, kwargs]`` as base64 text, described by ``ct`` (content type) and
``ce`` (compression).
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any, Collection, Dict, List, Optional

from multiq import serialization
from multiq.exceptions import ContentDisallowed, DecodeError

VERSION = 1


@dataclass
class Message:
    """A task invocation, as sent and as received."""

    id: str
    task: str
    args: List[Any] = field(default_factory=list)
    kwargs: Dict[str, Any] = field(default_factory=dict)
    queue: str = "multiq"
    priority: Optional[int] = None
    eta: Optional[float] = None  # epoch seconds
    expires: Optional[float] = None  # epoch seconds
    retries: int = 0
    headers: Dict[str, Any] = field(default_factory=dict)
    options: Dict[str, Any] = field(default_factory=dict)  # link, link_error, timelimit, ...
    root_id: Optional[str] = None
    parent_id: Optional[str] = None
    shadow: Optional[str] = None
    sent: float = 0.0
    ctype: str = serialization.JSON
    cenc: Optional[str] = None

    def encode(self, serializer: str = "json", compression: Optional[str] = None) -> bytes:
        """The envelope's bytes."""
        env: Dict[str, Any] = {
            "v": VERSION, "id": self.id, "task": self.task, "queue": self.queue,
            "retries": self.retries, "sent": self.sent or time.time(),
        }
        for key in ("priority", "eta", "expires", "root_id", "parent_id", "shadow"):
            value = getattr(self, key)
            if value is not None:
                env[key] = value
        if self.headers:
            env["headers"] = self.headers
        if self.options:
            env["options"] = self.options
        ctype = serialization.content_type(serializer)
        if ctype == serialization.JSON and not compression:
            env["args"] = list(self.args)
            env["kwargs"] = self.kwargs
        else:
            _, body = serialization.dumps([list(self.args), self.kwargs], serializer)
            if compression:
                body = serialization.compress(body, compression)
                env["ce"] = serialization.compression_name(compression)
            env["ct"] = ctype
            env["body"] = base64.b64encode(body).decode()
        return serialization.json_dumps(env).encode()


def peek(data: bytes) -> Dict[str, Any]:
    """Decode the envelope only (never the body): raises DecodeError on bad bytes."""
    try:
        env = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"Undecodable message: {exc}") from exc
    if not isinstance(env, dict) or "id" not in env or "task" not in env:
        raise DecodeError("Message is not a multiq task envelope")
    return env


def decode(data: bytes, accept: Collection[str]) -> Message:
    """Decode an envelope and its body; ContentDisallowed / DecodeError on refusal."""
    env = peek(data)
    return from_envelope(env, accept)


def from_envelope(env: Dict[str, Any], accept: Collection[str]) -> Message:
    if "body" in env:
        ctype = env.get("ct", serialization.JSON)
        try:
            raw = base64.b64decode(env["body"])
        except (ValueError, TypeError) as exc:
            raise DecodeError(f"Undecodable message body: {exc}") from exc
        if env.get("ce"):
            raw = serialization.decompress(raw, env["ce"])
        payload = serialization.loads(raw, ctype, accept)
        try:
            args, kwargs = payload
        except (TypeError, ValueError) as exc:
            raise DecodeError("Message body is not [args, kwargs]") from exc
    else:
        ctype = serialization.JSON
        allowed = accept if isinstance(accept, frozenset) else serialization.accepted(accept)
        if ctype not in allowed:
            raise ContentDisallowed(f"Refusing json content; accept_content is {sorted(accept)}")
        args, kwargs = env.get("args", []), env.get("kwargs", {})
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise DecodeError("Message args must be a list and kwargs a mapping")
    return Message(
        id=str(env["id"]), task=str(env["task"]), args=list(args), kwargs=kwargs,
        queue=env.get("queue", "multiq"), priority=env.get("priority"), eta=env.get("eta"),
        expires=env.get("expires"), retries=int(env.get("retries", 0)),
        headers=env.get("headers") or {}, options=env.get("options") or {},
        root_id=env.get("root_id"), parent_id=env.get("parent_id"), shadow=env.get("shadow"),
        sent=env.get("sent", 0.0), ctype=ctype, cenc=env.get("ce"),
    )
