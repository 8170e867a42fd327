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
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple

from multiq import serialization
from multiq.exceptions import ContentDisallowed, DecodeError

VERSION = 1
_encode_str = json.encoder.encode_basestring  # what the json encoder does to a str


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
        return envelope(
            self.id, self.task, self.queue, self.sent or time.time(), self.args, self.kwargs,
            retries=self.retries, priority=self.priority, eta=self.eta, expires=self.expires,
            root_id=self.root_id, parent_id=self.parent_id, shadow=self.shadow,
            headers=self.headers, options=self.options, serializer=serializer,
            compression=compression,
        )


def envelope(
    id: str, task: str, queue: str, sent: float, args: Sequence[Any], kwargs: Dict[str, Any],
    *, retries: int = 0, priority: Optional[int] = None, eta: Optional[float] = None,
    expires: Optional[float] = None, root_id: Optional[str] = None,
    parent_id: Optional[str] = None, shadow: Optional[str] = None,
    headers: Optional[Dict[str, Any]] = None, options: Optional[Dict[str, Any]] = None,
    serializer: str = "json", compression: Optional[str] = None,
) -> bytes:
    """The bytes of a message's envelope, made without a :class:`Message` (the send path)."""
    if (priority is None and eta is None and expires is None and root_id is None
            and parent_id is None and shadow is None and not headers and not options
            and not compression and serializer == "json"):
        plain = _plain_envelope(id, task, queue, sent, args, kwargs, retries)
        if plain is not None:
            return plain
    env: Dict[str, Any] = {
        "v": VERSION, "id": id, "task": task, "queue": queue, "retries": retries, "sent": sent,
    }
    for name, value in (("priority", priority), ("eta", eta), ("expires", expires),
                        ("root_id", root_id), ("parent_id", parent_id), ("shadow", shadow)):
        if value is not None:
            env[name] = value
    if headers:
        env["headers"] = headers
    if options:
        env["options"] = options
    if not compression and (serializer == "json" or
                            serialization.content_type(serializer) == serialization.JSON):
        env["args"] = args if isinstance(args, list) else list(args)
        env["kwargs"] = kwargs
    else:
        ctype, body = serialization.dumps([list(args), kwargs], serializer)
        if compression:
            body = serialization.compress(body, compression)
            env["ce"] = serialization.compression_name(compression)
        env["ct"] = ctype
        env["body"] = base64.b64encode(body).decode()
    return serialization.json_dumps(env).encode()


_INF = float("inf")
_HEADS: Dict[Tuple[str, str], str] = {}  # (task, queue) -> their part of a plain envelope


def _plain_envelope(id: str, task: str, queue: str, sent: float, args: Sequence[Any],
                    kwargs: Dict[str, Any], retries: int) -> Optional[bytes]:
    """The most common envelope (json, no options) put together from cached pieces: the
    same bytes as the general path, in half the time. None for unusual types."""
    if (type(id) is not str or type(task) is not str or type(queue) is not str
            or type(sent) is not float or not -_INF < sent < _INF or type(retries) is not int
            or type(args) not in (list, tuple) or type(kwargs) is not dict):
        return None
    head = _HEADS.get((task, queue))
    if head is None:
        if len(_HEADS) > 4096:
            _HEADS.clear()
        head = _HEADS[task, queue] = f',"task":{_encode_str(task)},"queue":{_encode_str(queue)}'
    return (f'{{"v":{VERSION},"id":{_encode_str(id)}{head},"retries":{retries},'
            f'"sent":{sent!r},"args":{serialization.json_dumps(args)},'
            f'"kwargs":{serialization.json_dumps(kwargs) if kwargs else "{}"}}}').encode()


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
