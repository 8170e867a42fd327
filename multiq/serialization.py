"""Serializers (json by default, msgpack, pickle only when accepted) and compression.

``dumps`` returns ``(content_type, bytes)``; ``loads`` refuses a content type that is not in
``accept`` with :class:`ContentDisallowed` and raises :class:`DecodeError` on bad bytes.
"""
from __future__ import annotations

import bz2
import datetime as dt
import decimal
import gzip
import json
import lzma
import pickle
import uuid
import zlib
from typing import Any, Callable, Collection, Dict, Tuple

from multiq.exceptions import ContentDisallowed, DecodeError, MultiQError

JSON = "application/json"
MSGPACK = "application/x-msgpack"
PICKLE = "application/x-python-serialize"

_ALIASES = {
    "json": JSON, JSON: JSON,
    "msgpack": MSGPACK, MSGPACK: MSGPACK, "application/msgpack": MSGPACK,
    "pickle": PICKLE, PICKLE: PICKLE,
}
_NAMES = {JSON: "json", MSGPACK: "msgpack", PICKLE: "pickle"}


def content_type(name: str) -> str:
    """The MIME content type of a serializer name (``"json"`` → ``application/json``)."""
    try:
        return _ALIASES[name.lower()]
    except (KeyError, AttributeError):
        raise MultiQError(f"Unknown serializer {name!r} (known: json, msgpack, pickle)") from None


def serializer_name(ctype: str) -> str:
    return _NAMES.get(_ALIASES.get(ctype, ctype), ctype)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, dt.datetime):
        return obj.isoformat()
    if isinstance(obj, (dt.date, dt.time)):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_json_encoder = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


def json_dumps(obj: Any) -> str:
    return _json_encoder.encode(obj)


def _msgpack() -> Any:
    try:
        import msgpack
    except ImportError:  # pragma: no cover - depends on the environment
        raise MultiQError("The msgpack serializer needs the 'msgpack' package") from None
    return msgpack


_DUMPERS: Dict[str, Callable[[Any], bytes]] = {
    JSON: lambda obj: json_dumps(obj).encode(),
    MSGPACK: lambda obj: _msgpack().packb(obj, use_bin_type=True, default=_json_default),
    PICKLE: lambda obj: pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL),
}
_LOADERS: Dict[str, Callable[[bytes], Any]] = {
    JSON: json.loads,
    MSGPACK: lambda data: _msgpack().unpackb(data, raw=False),
    PICKLE: pickle.loads,
}


def dumps(obj: Any, serializer: str = "json") -> Tuple[str, bytes]:
    """Serialize ``obj``; returns the content type and the bytes."""
    ctype = content_type(serializer)
    try:
        return ctype, _DUMPERS[ctype](obj)
    except (TypeError, ValueError, OverflowError) as exc:
        raise MultiQError(f"Cannot serialize with {serializer}: {exc}") from exc


def accepted(accept: Collection[str]) -> frozenset:
    """Normalise an ``accept_content`` list to a set of content types."""
    return frozenset(content_type(name) for name in accept)


def loads(data: bytes, ctype: str, accept: Collection[str]) -> Any:
    """Deserialize ``data``; refuses content types outside ``accept`` (names or MIME types)."""
    ctype = _ALIASES.get(ctype, ctype)
    allowed = accept if isinstance(accept, frozenset) else accepted(accept)
    if ctype not in allowed:
        raise ContentDisallowed(
            f"Refusing to deserialize content of type {serializer_name(ctype)} ({ctype}); "
            f"accept_content allows {sorted(serializer_name(c) for c in allowed)}"
        )
    try:
        return _LOADERS[ctype](data)
    except KeyError:
        raise DecodeError(f"Unknown content type {ctype!r}") from None
    except Exception as exc:
        raise DecodeError(f"Cannot decode {serializer_name(ctype)} content: {exc}") from exc


_COMPRESSORS: Dict[str, Tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    "zlib": (zlib.compress, zlib.decompress),
    "bzip2": (bz2.compress, bz2.decompress),
    "gzip": (gzip.compress, gzip.decompress),
    "lzma": (lzma.compress, lzma.decompress),
}
_COMPRESSION_ALIASES = {
    "application/x-gzip": "gzip", "application/x-bz2": "bzip2", "bz2": "bzip2",
    "application/x-lzma": "lzma", "xz": "lzma", "application/zlib": "zlib",
}


def compression_name(method: str) -> str:
    name = _COMPRESSION_ALIASES.get(method, method)
    if name not in _COMPRESSORS:
        raise MultiQError(f"Unknown compression {method!r} (known: {', '.join(_COMPRESSORS)})")
    return name


def compress(data: bytes, method: str) -> bytes:
    return _COMPRESSORS[compression_name(method)][0](data)


def decompress(data: bytes, method: str) -> bytes:
    try:
        return _COMPRESSORS[compression_name(method)][1](data)
    except MultiQError:
        raise
    except Exception as exc:
        raise DecodeError(f"Cannot decompress {method} content: {exc}") from exc
