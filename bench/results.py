"""Figures, their samples, medians and multiq/peer ratios."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple


@dataclass(frozen=True)
class Figure:
    unit: str
    higher_is_better: bool
    description: str


_DRAIN: Dict[str, Figure] = {
    "drain": Figure("tasks/s", True, "(N-1)/(t_last-t_first), time.time() stamped in the tasks"),
    "drain-wall": Figure("tasks/s", True, "N / (worker Popen -> last result stored)"),
    "worker-cpu": Figure("us/task", False, "worker process tree CPU, first..last completion"),
    "redis-cpu": Figure("us/task", False, "redis-server CPU, first..last completion"),
}
# the same for the plain noop task, completions counted as result documents (bench.drain)
_NOOP_DRAIN: Dict[str, Figure] = {
    "noop-drain": Figure("tasks/s", True,
                         "noop task, results counted: (N-1)/(last-first date_done)"),
    **{f"noop-{name}": Figure(f.unit, f.higher_is_better,
                              f"noop task, results counted: {f.description}")
       for name, f in _DRAIN.items() if name != "drain"},
}

FIGURES: Dict[str, Figure] = {
    "enqueue": Figure("tasks/s", True, "producer process, N sends timed with perf_counter"),
    **_DRAIN, **_NOOP_DRAIN,
    "latency-p50": Figure("ms", False, "sequential send->get against a warm worker"),
    "latency-p99": Figure("ms", False, "sequential send->get against a warm worker"),
    "alatency-p50": Figure("ms", False, "sequential await adelay() -> await aget(), warm worker"),
    "alatency-p99": Figure("ms", False, "sequential await adelay() -> await aget(), warm worker"),
    "startup": Figure("s", False, "worker Popen -> first pre-queued task's result stored"),
    "rss": Figure("MB", False, "idle node: RSS summed over the node and its children"),
    "pss": Figure("MB", False, "idle node: PSS summed over the node and its children"),
    "multi-start": Figure("s", False, "`multi start` of 4 nodes (-c 2) until it returns"),
    "multi-ready": Figure("s", False, "`multi start` until all 4 nodes answer ping"),
    "multi-stopwait": Figure("s", False, "`multi stopwait` of the 4 nodes until it returns"),
    "chord": Figure("s", False, "chord(add.s(i, i) x N)(tsum.s()): send -> callback .get() "
                                "returns, warm worker"),
    "chain": Figure("ms", False, "chain of N add tasks: send -> last .get() returns, "
                                 "warm worker"),
    "io": Figure("s", False, "N tasks each waiting 0.5 s, pre-queued: worker Popen -> N-th "
                             "done"),
    "metrics-drain": Figure("tasks/s", True, "drain as `drain`, the nodes' Prometheus counters "
                                             "on (multiq) and off (multiq-nometrics)"),
    "metrics-drain-wall": Figure("tasks/s", True, "drain-wall, counters on and off"),
    "metrics-worker-cpu": Figure("us/task", False, "worker-cpu, counters on and off"),
    "metrics-redis-cpu": Figure("us/task", False, "redis-cpu, counters on and off"),
    "metrics-scrape": Figure("ms", False, "one multiq.metrics.scrape() of --metric-queues "
                                          "queues: median of 50, fresh client"),
    "roundtrips": Figure("trips/task", False, "worker's request bursts to Redis per header "
                                              "task: N-task chord minus the same N as a group"),
}

Key = Tuple[str, str, str]  # figure, system, setting
SETTING_ORDER = ("one-by-one", "batch", "solo", "threads4", "prefork2")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in 0..100."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100.0
    low = int(math.floor(pos))
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


@dataclass
class Series:
    """All samples of one figure for one system and setting."""

    figure: str
    system: str
    setting: str
    compare_to: str
    note: str = ""
    n: Optional[int] = None
    samples: List[float] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    na: str = ""

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.samples) if self.samples else None

    def to_json(self, ratio: Optional[float]) -> Dict[str, Any]:
        fig = FIGURES[self.figure]
        return {
            "figure": self.figure, "system": self.system, "setting": self.setting,
            "note": self.note, "n": self.n, "unit": fig.unit,
            "higher_is_better": fig.higher_is_better, "runs": len(self.samples),
            "median": self.median, "min": min(self.samples) if self.samples else None,
            "max": max(self.samples) if self.samples else None, "samples": self.samples,
            "compare_to": self.compare_to, "multiq_over_peer": ratio,
            "errors": self.errors, "na": self.na or None,
        }


class Results:
    """Collects samples in the order figures are first seen."""

    def __init__(self) -> None:
        self.series: Dict[Key, Series] = {}

    def get(self, figure: str, system: str, setting: str, *, note: str = "",
            compare_to: str = "", n: Optional[int] = None) -> Series:
        key = (figure, system, setting)
        if key not in self.series:
            self.series[key] = Series(figure, system, setting, compare_to or setting, note, n)
        return self.series[key]

    def add(self, figure: str, system: str, setting: str, value: float, **kw: Any) -> None:
        self.get(figure, system, setting, **kw).samples.append(float(value))

    def ratio(self, s: Series) -> Optional[float]:
        """multiq's median over this peer's, for the multiq setting it is compared with."""
        if s.system == "multiq":
            return None
        mine = self.series.get((s.figure, "multiq", s.compare_to))
        if mine is None or mine.median is None or mine.median < 0 or not s.median:
            return None  # (below 0: a difference that is noise around nothing)
        return mine.median / s.median

    def ordered(self) -> List[Series]:
        """By figure, then setting (as multiq names it), multiq first, peers in run order."""
        figures = list(FIGURES)
        systems = ["multiq", "multiq-base", "celery", "rq", "dramatiq"]
        insertion = {id(s): i for i, s in enumerate(self.series.values())}
        group: Dict[Tuple[str, str], int] = {}
        for s in self.series.values():
            known = SETTING_ORDER.index(s.compare_to) if s.compare_to in SETTING_ORDER else -1
            group.setdefault((s.figure, s.compare_to),
                             known if known >= 0 else len(SETTING_ORDER) + len(group))

        def key(s: Series) -> Tuple[int, int, int, int]:
            rank = systems.index(s.system) if s.system in systems else len(systems)
            return (figures.index(s.figure), group[(s.figure, s.compare_to)], rank,
                    insertion[id(s)])
        return sorted(self.series.values(), key=key)
