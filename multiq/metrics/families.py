"""What the nodes count in Redis, and how a hash field names its labels.

Both sides use this module: the nodes' writes (:mod:`multiq.metrics.tally`) and the
exporter's reads (:mod:`multiq.metrics.collect`). A field is the JSON array of its labels
(``["add","SUCCESS","celery"]``): any text a task or queue name holds stays unambiguous.
A histogram keeps one non-cumulative count per bucket (``+Inf`` above the last bound)
and its sum in microseconds (an integer: HINCRBY is cheaper than HINCRBYFLOAT, and adds
up exactly); its count is the sum of its buckets, so the two never disagree.
"""
from __future__ import annotations

import json
from bisect import bisect_left
from typing import Dict, Optional, Tuple

#: the outcomes counted in ``multiq_tasks_total``
STATES = ("SUCCESS", "FAILURE", "RETRY", "REVOKED", "REJECTED")
#: upper bounds (seconds) of the run time and queue wait buckets
BUCKETS: Tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                              10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
INF = "+Inf"
SUM = "sum_us"  # a histogram's sum, in whole microseconds (HINCRBY, exact)
#: each bound as it appears in a field (and in the ``le`` label)
BOUNDS: Tuple[str, ...] = tuple(repr(b) for b in BUCKETS) + (INF,)


def field(*labels: str) -> str:
    """The hash field of one series (or one bucket of it)."""
    return json.dumps(labels, separators=(",", ":"))


_PARSED: Dict[Tuple[bytes, int], Optional[Tuple[str, ...]]] = {}  # an exporter's reads
_PARSED_MAX = 100_000


def labels(raw: bytes, size: int) -> Optional[Tuple[str, ...]]:
    """The labels a field names, or None when it is not an array of ``size`` strings
    (remembered: an exporter reads the same fields at every scrape)."""
    key = (raw, size)
    try:
        return _PARSED[key]
    except KeyError:
        pass
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    found = _PARSED[key] = _parse(raw, size)
    return found


def _parse(raw: bytes, size: int) -> Optional[Tuple[str, ...]]:
    try:
        value = json.loads(raw)
    except ValueError:  # (UnicodeDecodeError included)
        return None
    if type(value) is not list or len(value) != size \
            or not all(type(v) is str for v in value):
        return None
    return tuple(value)


def bucket(seconds: float) -> str:
    """The bound of the bucket ``seconds`` falls in: the lowest bound at or above it."""
    return BOUNDS[bisect_left(BUCKETS, seconds)]
