"""multiq app: ``noop`` and the counted ``noop_count``; results in the backend db."""
from __future__ import annotations

from typing import Any

from bench.apps.common import BACKEND_URL, BROKER_URL, count
from multiq import MultiQ

app = MultiQ("bench", broker=BROKER_URL, backend=BACKEND_URL)


@app.task
def noop(i: Any) -> Any:
    """Return ``i``."""
    return i


@app.task
def noop_count(i: Any) -> Any:
    """Count the completion, return ``i``."""
    count()
    return i
