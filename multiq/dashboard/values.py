"""Small conversions of what Redis returns (bytes) into typed values."""
from __future__ import annotations

from typing import Any, Optional


def text(value: Any) -> Any:
    """Bytes decoded as UTF-8 (bad bytes replaced); anything else as it is."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def number(value: Any) -> Optional[float]:
    """A finite float, or None when ``value`` is not one."""
    try:
        result = float(text(value))
    except (TypeError, ValueError):
        return None
    return result if result == result and abs(result) != float("inf") else None
