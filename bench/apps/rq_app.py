"""RQ job functions (RQ keeps results by default: ``result_ttl`` 500 s)."""
from __future__ import annotations

from typing import Any

from bench.apps.common import count

QUEUE = "bench"


def noop(i: Any) -> Any:
    """Return ``i``."""
    return i


def noop_count(i: Any) -> Any:
    """Count the completion, return ``i``."""
    count()
    return i
