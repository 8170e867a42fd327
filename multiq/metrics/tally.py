"""A batch's metric writes: counted in the process first, then one HINCRBY per field the
batch changes, recorded with its acknowledgements.

:func:`tally` is pure (a batch of commit items in, the increments out); :func:`record`
puts them on the batch's :class:`~multiq.broker.wire.Commands`. Only what ends a message's
stay on a node counts: a finished run (by its outcome's state, with its run time and the
time it waited for its run) and a revoke; a redelivery is not an outcome.
"""
from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, NamedTuple, Optional, Sequence, Tuple

from multiq.metrics.families import BOUNDS, BUCKETS, SUM
from multiq.metrics.families import field as key_field
from multiq.worker.items import Done, Revoked

if TYPE_CHECKING:
    from multiq.keys import Keys
    from multiq.worker.items import Item

REVOKED = "REVOKED"


@dataclass
class Counts:
    """Increments by hash field, for each of the three metric hashes."""

    tasks: Dict[str, int] = field(default_factory=dict)
    runtime: Dict[str, int] = field(default_factory=dict)
    wait: Dict[str, int] = field(default_factory=dict)
    runtime_sum: Dict[str, int] = field(default_factory=dict)  # microseconds
    wait_sum: Dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tasks or self.runtime or self.wait)


def tally(batch: Sequence[Item], now: Optional[float] = None) -> Counts:
    """What ``batch`` adds to the counters (``now``: when runs without an end time
    ended)."""
    counts = Counts()
    tasks, runtime, wait = counts.tasks, counts.runtime, counts.wait
    runtime_sum, wait_sum = counts.runtime_sum, counts.wait_sum
    for item in batch:
        if isinstance(item, Done):
            req, state, ran = item.req, item.outcome.state, True
        elif isinstance(item, Revoked):
            req, state, ran = item.req, REVOKED, False
        else:
            continue
        m = req.message
        name, queue = m.task, req.delivery.queue
        f = _TASKS.get((name, state, queue)) or _task_field(name, state, queue)
        tasks[f] = tasks.get(f, 0) + 1
        start = req.time_start
        if not ran or not start:
            continue
        series = _SERIES.get((name, queue)) or _series(name, queue)
        end = req.time_done or (now if now is not None else time.time())
        seconds = end - start if end > start else 0.0
        f = series.buckets[bisect_left(BUCKETS, seconds)]
        runtime[f] = runtime.get(f, 0) + 1
        runtime_sum[series.sum] = runtime_sum.get(series.sum, 0) + round(seconds * 1e6)
        due = max(m.sent or 0.0, m.eta or 0.0)  # when it was sent, or its eta if later
        if due > 0:
            seconds = start - due if start > due else 0.0
            f = series.buckets[bisect_left(BUCKETS, seconds)]
            wait[f] = wait.get(f, 0) + 1
            wait_sum[series.sum] = wait_sum.get(series.sum, 0) + round(seconds * 1e6)
    return counts


class _Series(NamedTuple):
    """The fields of one (name, queue) histogram series."""

    buckets: Tuple[str, ...]  # of each bound in BOUNDS, ``+Inf`` last
    sum: str


# fields made once per series (bounded: task names are few, but nothing enforces it)
_TASKS: Dict[Tuple[str, str, str], str] = {}
_SERIES: Dict[Tuple[str, str], _Series] = {}
_CACHE_MAX = 10_000


def _task_field(name: str, state: str, queue: str) -> str:
    if len(_TASKS) >= _CACHE_MAX:
        _TASKS.clear()
    f = _TASKS[name, state, queue] = key_field(name, state, queue)
    return f


def _series(name: str, queue: str) -> _Series:
    if len(_SERIES) >= _CACHE_MAX:
        _SERIES.clear()
    head = key_field(name, queue)[:-1]  # '["<name>","<queue>"'
    series = _SERIES[name, queue] = _Series(
        tuple(f'{head},"{bound}"]' for bound in BOUNDS), f'{head},"{SUM}"]')
    return series


def record(pipe: Any, keys: Keys, counts: Counts) -> None:
    """Put the increments on ``pipe`` (a Commands or a pipeline)."""
    for key, parts in ((keys.metrics_tasks, (counts.tasks,)),
                       (keys.metrics_runtime, (counts.runtime, counts.runtime_sum)),
                       (keys.metrics_wait, (counts.wait, counts.wait_sum))):
        for part in parts:
            for f, n in part.items():
                pipe.execute_command("HINCRBY", key, f, n)
