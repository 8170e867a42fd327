"""What the overview shows, read from Redis: queues, live nodes, throughput, percentiles."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from multiq.dashboard.values import number, text
from multiq.keys import BANDS, GROUP, DashboardKeys

WINDOW = 15 * 60


@dataclass
class QueueInfo:
    """One queue: waiting messages per band (9 first), delayed, held by nodes, dead."""

    name: str
    bands: Dict[int, int] = field(default_factory=dict)
    delayed: int = 0
    held: int = 0
    deadletters: int = 0

    @property
    def waiting(self) -> int:
        return sum(self.bands.values())

    def to_json(self) -> Dict[str, Any]:
        return {**asdict(self), "bands": {str(b): n for b, n in self.bands.items()},
                "waiting": self.waiting}


def queues(broker: Any, names: Sequence[str]) -> List[QueueInfo]:
    """These queues' figures, in one pipeline."""
    k = broker.keys
    names = sorted(names)
    pipe = broker.client.pipeline(transaction=False)
    for queue in names:
        for band in BANDS:
            pipe.xlen(k.stream(queue, band))
            pipe.xpending(k.stream(queue, band), GROUP)
        pipe.zcard(k.delayed(queue))
        pipe.xlen(k.deadletter(queue))
    replies = iter(pipe.execute(raise_on_error=False))
    out = []
    for queue in names:
        info = QueueInfo(queue)
        for band in BANDS:
            length, pending = _int(next(replies)), next(replies)
            held = int(pending.get("pending") or 0) if isinstance(pending, dict) else 0
            info.held += held
            info.bands[band] = max(0, length - held)  # acks delete: what is left waits
        info.delayed, info.deadletters = _int(next(replies)), _int(next(replies))
        out.append(info)
    return out


def nodes(broker: Any, now: Optional[float] = None) -> List[Dict[str, Any]]:
    """The live nodes (their heartbeat key has not expired), with a ``state``."""
    now = time.time() if now is None else now
    out = []
    for consumer, info in sorted(broker.live_nodes().items()):
        seen = number(info.get("time"))
        out.append({**info, "consumer": consumer,
                    "hostname": str(info.get("hostname") or consumer.split("|")[0]),
                    "state": "online" if info.get("ready") else "starting",
                    "last_beat": None if seen is None else round(now - seen, 1)})
    return out


def throughput(client: Any, keys: DashboardKeys, now: Optional[float] = None,
               window: int = WINDOW) -> Dict[str, List[int]]:
    """Tasks succeeded and failed in each second of the last ``window`` seconds, oldest
    first, with the seconds themselves (``t``)."""
    end = int(time.time() if now is None else now)
    start = end - window + 1
    minutes = list(range(start // 60, end // 60 + 1))
    pipe = client.pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(keys.rate(minute))
    counts: Dict[str, int] = {}
    for row in pipe.execute():
        counts.update({text(f): int(v) for f, v in row.items()})
    seconds = list(range(start, end + 1))
    return {"t": seconds, "succeeded": [counts.get(f"{s}:s", 0) for s in seconds],
            "failed": [counts.get(f"{s}:f", 0) for s in seconds]}


def percentiles(client: Any, keys: DashboardKeys,
                points: Sequence[int] = (50, 90, 99)) -> Dict[str, Dict[str, Optional[float]]]:
    """Queue wait and runtime percentiles (seconds) over the latest 1,000 tasks."""
    pipe = client.pipeline(transaction=False)
    for kind in ("wait", "runtime"):
        pipe.lrange(keys.samples(kind), 0, -1)
    out = {}
    for kind, raw in zip(("wait", "runtime"), pipe.execute()):
        values = sorted(v for v in (number(x) for x in raw) if v is not None)
        out[kind] = {f"p{p}": _rank(values, p) for p in points}
        out[kind]["n"] = len(values)
    return out


def _rank(values: List[float], p: int) -> Optional[float]:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(p / 100 * len(values) + 0.5) - 1))
    return values[index]


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) else 0
