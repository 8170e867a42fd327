"""The no-op task of ``bench.cluster``; URLs from ``$BENCH_CLUSTER_BROKER_URL`` and
``$BENCH_CLUSTER_BACKEND_URL`` (a ``redis+cluster://`` URL may be both)."""
from __future__ import annotations

import os
from typing import Any

from multiq import MultiQ

NOOP = "bench.cluster.noop"

app = MultiQ(
    "bench_cluster",
    broker=os.environ.get("BENCH_CLUSTER_BROKER_URL", "redis://127.0.0.1:6379/1"),
    backend=os.environ.get("BENCH_CLUSTER_BACKEND_URL", "redis://127.0.0.1:6379/2"),
)


@app.task(name=NOOP)
def noop(i: Any) -> Any:
    """Return ``i`` (its result is stored)."""
    return i
