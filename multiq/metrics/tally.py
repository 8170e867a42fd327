"""A batch's metric writes: counted in the process first, then one HINCRBY (or
HINCRBYFLOAT, for sums) per field the batch changes, recorded with its acknowledgements.

:func:`tally` is pure (a batch of commit items in, the increments out); :func:`record`
puts them on the batch's :class:`~multiq.broker.wire.Commands`. Only what ends a message's
stay on a node counts: a finished run (by its outcome's state, with its run time and the
time it waited for its run) and a revoke; a redelivery is not an outcome.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

from multiq.metrics.families import SUM, bucket
from multiq.metrics.families import field as key_field
from multiq.worker.items import Done, Revoked

if TYPE_CHECKING:
    from multiq.keys import Keys
    from multiq.worker.items import Item, Request

REVOKED = "REVOKED"


@dataclass
class Counts:
    """Increments by hash field, for each of the three metric hashes."""

    tasks: Dict[str, int] = field(default_factory=dict)
    runtime: Dict[str, int] = field(default_factory=dict)
    wait: Dict[str, int] = field(default_factory=dict)
    runtime_sum: Dict[str, float] = field(default_factory=dict)
    wait_sum: Dict[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tasks or self.runtime or self.wait)


def tally(batch: Sequence[Item], now: Optional[float] = None) -> Counts:
    """What ``batch`` adds to the counters (``now``: when runs without an end time
    ended)."""
    counts = Counts()
    tasks, runtime, wait = counts.tasks, counts.runtime, counts.wait
    for item in batch:
        if isinstance(item, Done):
            req, state, ran = item.req, item.outcome.state, True
        elif isinstance(item, Revoked):
            req, state, ran = item.req, REVOKED, False
        else:
            continue
        name, queue = req.message.task, req.delivery.queue
        f = _field(name, state, queue)
        tasks[f] = tasks.get(f, 0) + 1
        start = req.time_start
        if not ran or not start:
            continue
        group = _field(name, queue)[:-1]  # '["<name>","<queue>"': a bucket's field head
        end = req.time_done or (now if now is not None else time.time())
        _observe(runtime, counts.runtime_sum, group, max(0.0, end - start))
        waited = _waited(req, start)
        if waited is not None:
            _observe(wait, counts.wait_sum, group, waited)
    return counts


_FIELDS: Dict[Tuple[str, ...], str] = {}  # labels -> field: made once per series
_FIELDS_MAX = 10_000


def _field(*labels: str) -> str:
    f = _FIELDS.get(labels)
    if f is None:
        if len(_FIELDS) >= _FIELDS_MAX:
            _FIELDS.clear()
        f = _FIELDS[labels] = key_field(*labels)
    return f


def _waited(req: Request, start: float) -> Optional[float]:
    """Seconds from when the message was due (sent, or its eta) to its run's start."""
    m = req.message
    due = max(m.sent or 0.0, m.eta or 0.0)
    return max(0.0, start - due) if due > 0 else None


def _observe(buckets: Dict[str, int], sums: Dict[str, float], group: str,
             seconds: float) -> None:
    f = f'{group},"{bucket(seconds)}"]'
    buckets[f] = buckets.get(f, 0) + 1
    s = f'{group},"{SUM}"]'
    sums[s] = sums.get(s, 0.0) + seconds


def record(pipe: Any, keys: Keys, counts: Counts) -> None:
    """Put the increments on ``pipe`` (a Commands or a pipeline)."""
    for key, ints, floats in ((keys.metrics_tasks, counts.tasks, None),
                              (keys.metrics_runtime, counts.runtime, counts.runtime_sum),
                              (keys.metrics_wait, counts.wait, counts.wait_sum)):
        for f, n in ints.items():
            pipe.execute_command("HINCRBY", key, f, n)
        for f, x in (floats or {}).items():
            pipe.execute_command("HINCRBYFLOAT", key, f, repr(x))
