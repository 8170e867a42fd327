"""Serializers (json by default, msgpack, pickle only when accepted) and compression.

``dumps`` returns ``(content_type, bytes)``; ``loads`` refuses a content type that is not in
``accept`` with :class:`ContentDisallowed` and raises :class:`DecodeError` on bad bytes.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import sys
import uuid
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
    decimal = sys.modules.get("decimal")  # not imported: obj cannot be a Decimal
    if decimal is not None and isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_json_encoder = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))
_C_ENCODER_ARGS = (_json_default, json.encoder.encode_basestring, None, ":", ",", False, False,
                   True)  # default, str encoder, indent, separators, sort_keys, skipkeys, allow_nan


def _c_encoder() -> Any:
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    try:
        make({}, *_C_ENCODER_ARGS)
    except TypeError:  # no C speedups, or another signature: use JSONEncoder.encode
        return None
    return make


_c_make_encoder = _c_encoder()


def json_dumps(obj: Any) -> str:
    """Compact JSON, non-ASCII kept: ``_json_encoder.encode(obj)`` without its per-call set-up."""
    if _c_make_encoder is None or isinstance(obj, str):
        return _json_encoder.encode(obj)
    return "".join(_c_make_encoder({}, *_C_ENCODER_ARGS)(obj, 0))


def _pickle() -> Any:
    import pickle
    return pickle


def _msgpack() -> Any:
    try:
        import msgpack
    except ImportError:  # pragma: no cover - depends on the environment
        raise MultiQError("The msgpack serializer needs the 'msgpack' package") from None
    return msgpack


_DUMPERS: Dict[str, Callable[[Any], bytes]] = {
    JSON: lambda obj: json_dumps(obj).encode(),
    MSGPACK: lambda obj: _msgpack().packb(obj, use_bin_type=True, default=_json_default),
    PICKLE: lambda obj: _pickle().dumps(obj, protocol=_pickle().HIGHEST_PROTOCOL),
}
_LOADERS: Dict[str, Callable[[bytes], Any]] = {
    JSON: json.loads,
    MSGPACK: lambda data: _msgpack().unpackb(data, raw=False),
    PICKLE: lambda data: _pickle().loads(data),
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
    except RecursionError:
        raise DecodeError(f"Cannot decode {serializer_name(ctype)} content: nested too "
                          "deeply") from None
    except Exception as exc:
        raise DecodeError(f"Cannot decode {serializer_name(ctype)} content: {exc}") from exc


_COMPRESSORS: Dict[str, str] = {"zlib": "zlib", "bzip2": "bz2", "gzip": "gzip", "lzma": "lzma"}
_COMPRESSION_ALIASES = {
    "application/x-gzip": "gzip", "application/x-bz2": "bzip2", "bz2": "bzip2",
    "application/x-lzma": "lzma", "xz": "lzma", "application/zlib": "zlib",
}


def compression_name(method: str) -> str:
    name = _COMPRESSION_ALIASES.get(method, method)
    if name not in _COMPRESSORS:
        raise MultiQError(f"Unknown compression {method!r} (known: {', '.join(_COMPRESSORS)})")
    return name


def _codec(method: str) -> Any:
    """The module of a compression method, imported on first use (start-up time)."""
    return importlib.import_module(_COMPRESSORS[compression_name(method)])


def compress(data: bytes, method: str) -> bytes:
    return bytes(_codec(method).compress(data))


def decompress(data: bytes, method: str) -> bytes:
    """Raises DecodeError for bad data or an unknown method (a received message's ``ce``)."""
    try:
        return bytes(_codec(method).decompress(data))
    except MultiQError as exc:
        raise DecodeError(str(exc)) from None
    except Exception as exc:
        raise DecodeError(f"Cannot decompress {method} content: {exc}") from exc
