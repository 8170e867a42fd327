"""Text for any value or exception, for logs, events and results: it never raises.

A task may raise an exception whose ``__str__`` or ``__repr__`` fails, or return an object
that cannot be shown; the worker still has to log, record and report it. These helpers
fall back from ``str`` to ``repr`` to the type's name (``"<unprintable MyError>"``).
"""
from __future__ import annotations

from typing import Any, Optional


def unprintable(value: Any) -> str:
    """The last resort: ``"<unprintable TypeName>"``."""
    return f"<unprintable {type(value).__name__}>"


def safe_repr(value: Any, limit: Optional[int] = None) -> str:
    """``repr(value)``, or :func:`unprintable` when that fails; cut to ``limit`` characters."""
    try:
        text = str.__str__(repr(value))  # a str subclass could misbehave further on
    except Exception:
        text = unprintable(value)
    if limit is not None and len(text) > limit:
        text = text[:limit - 3] + "..."
    return text


def safe_str(value: Any) -> str:
    """``str(value)``, else its :func:`safe_repr`."""
    try:
        return str.__str__(str(value))
    except Exception:
        return safe_repr(value)


def describe(exc: Any) -> str:
    """How a log line shows an exception: its ``repr``, e.g. ``ValueError('bad')``."""
    return safe_repr(exc)


def exception_args(exc: BaseException) -> Optional[tuple]:
    """``exc.args`` as a tuple, or None when reading them fails."""
    try:
        return tuple(exc.args)
    except Exception:
        return None
