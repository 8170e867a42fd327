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
from typing import Any, Collection, Dict, List, NoReturn, Optional, Sequence, Tuple

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
            and parent_id is None and shadow is None and not headers
            and not compression and serializer == "json"):
        if not options:
            plain = _plain_envelope(id, task, queue, sent, args, kwargs, retries)
            if plain is not None:
                return plain
        elif options.keys() == _GROUP_OPTIONS and type(options["group_id"]) is str \
                and type(options["group_index"]) is int:  # a group's member, with its place
            plain = _plain_envelope(id, task, queue, sent, args, kwargs, retries)
            if plain is not None:
                return b'%s,"options":{"group_id":%s,"group_index":%d}}' % (
                    plain[:-1], _encode_str(options["group_id"]).encode(),
                    options["group_index"])
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
_GROUP_OPTIONS = frozenset(("group_id", "group_index"))
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
    """Decode the envelope only (never the body): raises DecodeError on bad bytes.

    Only its shape is checked here (a JSON object with ``id`` and ``task``): the fields
    are checked by :func:`from_envelope`."""
    try:
        env = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"Undecodable message: {exc}") from exc
    except RecursionError:
        raise DecodeError("Undecodable message: JSON nested too deeply") from None
    if type(env) is not dict:
        raise DecodeError("Message is not a multiq task envelope (a JSON object)")
    if "id" not in env or "task" not in env:
        field = "id" if "id" not in env else "task"
        raise DecodeError(f"Invalid message: {field} must be a non-empty string, not missing")
    return env


def decode(data: bytes, accept: Collection[str]) -> Message:
    """Decode an envelope and its body; ContentDisallowed / DecodeError on refusal."""
    env = peek(data)
    return from_envelope(env, accept)


_MISSING: Any = object()
# Fields the plain envelope of the hot path (json, no options) never has.
_UNUSUAL = frozenset(("priority", "eta", "expires", "countdown", "root_id", "parent_id",
                      "shadow", "headers", "options", "body", "ct", "ce"))


def from_envelope(env: Dict[str, Any], accept: Collection[str]) -> Message:
    """The message an envelope describes, each field checked: DecodeError names the first
    one that is not what the worker expects; ContentDisallowed refuses the body's type."""
    get = env.get
    id_, task, queue = get("id"), get("task"), get("queue", "multiq")
    retries, sent = get("retries", 0), get("sent", 0.0)
    if type(id_) is not str or not id_:
        _invalid("id", "a non-empty string", id_)
    if type(task) is not str or not task:
        _invalid("task", "a non-empty string (the task name)", task)
    if type(queue) is not str:
        _invalid("queue", "a string", queue)
    if type(retries) is not int or retries < 0:
        _invalid("retries", "a non-negative integer", retries)
    if type(sent) is not float or not -_INF < sent < _INF:
        sent = _time("sent", sent) or 0.0
    if "body" in env:
        args, kwargs = _body(env, accept)
    else:
        allowed = accept if isinstance(accept, frozenset) else serialization.accepted(accept)
        if serialization.JSON not in allowed:
            raise ContentDisallowed(f"Refusing json content; accept_content is {sorted(accept)}")
        args, kwargs = get("args", _MISSING), get("kwargs", _MISSING)
        if type(args) is not list:
            args = [] if args is _MISSING else _invalid("args", "a list", args)
        if type(kwargs) is not dict:  # (the keys of a JSON object are always strings)
            kwargs = {} if kwargs is _MISSING else _invalid("kwargs", "a mapping", kwargs)
    if _UNUSUAL.isdisjoint(env):
        return Message(id=id_, task=task, args=args, kwargs=kwargs, queue=queue,
                       retries=retries, sent=sent)
    _time("countdown", get("countdown"))
    has_body = "body" in env
    return Message(
        id=id_, task=task, args=args, kwargs=kwargs, queue=queue, retries=retries, sent=sent,
        priority=_priority(get("priority")), eta=_time("eta", get("eta")),
        expires=_time("expires", get("expires")), root_id=_ident("root_id", get("root_id")),
        parent_id=_ident("parent_id", get("parent_id")), shadow=_ident("shadow", get("shadow")),
        headers=_mapping("headers", get("headers")), options=_options(get("options")),
        ctype=get("ct", serialization.JSON) if has_body else serialization.JSON,
        cenc=(get("ce") or None) if has_body else None,
    )


def _body(env: Dict[str, Any], accept: Collection[str]) -> Tuple[List[Any], Dict[str, Any]]:
    """``[args, kwargs]`` from the serialized body (base64 text, ``ct``, ``ce``)."""
    ctype, cenc, body = env.get("ct", serialization.JSON), env.get("ce"), env["body"]
    if type(ctype) is not str:
        _invalid("ct", "a content type string", ctype)
    if cenc is not None and type(cenc) is not str:
        _invalid("ce", "a compression name or null", cenc)
    if type(body) is not str:
        _invalid("body", "base64 text", body)
    try:
        raw = base64.b64decode(body)
    except ValueError as exc:
        raise DecodeError(f"Undecodable message body: {exc}") from exc
    if cenc:
        raw = serialization.decompress(raw, cenc)
    payload = serialization.loads(raw, ctype, accept)
    if type(payload) not in (list, tuple) or len(payload) != 2:
        raise DecodeError("Message body is not [args, kwargs]")
    args, kwargs = payload
    if type(args) is not list:
        args = list(args) if type(args) is tuple else _invalid("args", "a list", args)
    if not isinstance(kwargs, dict) or not all(type(k) is str for k in kwargs):
        _invalid("kwargs", "a mapping with string keys", kwargs)
    return args, kwargs


def _invalid(field: str, expected: str, value: Any) -> NoReturn:
    """Raise the DecodeError of a field that is not what it must be."""
    import reprlib  # (only for refusals)

    raise DecodeError(f"Invalid message: {field} must be {expected}, not "
                      f"{type(value).__name__} {reprlib.repr(value)}")


def _time(field: str, value: Any) -> Optional[float]:
    """Epoch seconds (or a number of seconds): a finite int or float, or None."""
    if value is None or (type(value) in (float, int) and -_INF < value < _INF):
        return value
    return _invalid(field, "a finite number or null", value)


def _priority(value: Any) -> Optional[int]:
    if value is None or (type(value) is int and 0 <= value <= 9):
        return value
    return _invalid("priority", "an integer from 0 to 9 or null", value)


def _ident(field: str, value: Any) -> Optional[str]:
    if value is None or type(value) is str:
        return value
    return _invalid(field, "a string or null", value)


def _mapping(field: str, value: Any) -> Dict[str, Any]:
    if type(value) is dict:
        return value
    return {} if value is None else _invalid(field, "a mapping or null", value)


def _options(value: Any) -> Dict[str, Any]:
    """The ``options`` mapping, with each option the worker reads checked."""
    options = _mapping("options", value)
    if not options:
        return options
    for name in ("link", "link_error"):
        links = options.get(name)
        if links is not None:
            for sig in links if type(links) is list else (links,):
                _signature(f"options.{name}", sig)
    steps = options.get("chain")
    if steps is not None:
        if type(steps) is not list:
            _invalid("options.chain", "a list of signatures", steps)
        for sig in steps:
            _signature("options.chain", sig)
    member = options.get("chord")
    if member is not None and not (type(member) is dict and type(member.get("id")) is str
                                   and type(member.get("i")) is int):
        _invalid("options.chord", 'a chord membership {"id": str, "i": int}', member)
    for name in ("chord_of", "group_id"):
        if options.get(name) is not None and type(options[name]) is not str:
            _invalid(f"options.{name}", "a string", options[name])
    limits = options.get("timelimit")
    if limits is not None and not (type(limits) in (list, tuple) and len(limits) == 2
                                   and all(_seconds(x) for x in limits)):
        _invalid("options.timelimit", "a [hard, soft] pair of seconds (numbers or null)",
                 limits)
    ignore = options.get("ignore_result")
    if ignore is not None and type(ignore) is not bool:
        _invalid("options.ignore_result", "true, false or null", ignore)
    return options


def _seconds(value: Any) -> bool:
    """Whether ``value`` is a time limit: None, or a finite non-negative int or float."""
    return value is None or (type(value) in (int, float) and 0 <= value < _INF)


def _signature(field: str, sig: Any) -> None:
    """A callback signature as it travels: a mapping with a task name."""
    if type(sig) is not dict or type(sig.get("task")) is not str or not sig["task"]:
        _invalid(field, "a signature (a mapping with a task name) or a list of them", sig)
    for key, kind in (("args", list), ("kwargs", dict), ("options", dict)):
        if sig.get(key) is not None and type(sig[key]) is not kind:
            _invalid(f"{field} {key}", f"a {kind.__name__}", sig[key])
