"""A :class:`~multiq.metrics.collect.Snapshot` as Prometheus text (format 0.0.4).

:func:`families` names what a snapshot shows (``multiq_*``); :func:`celery_names` renames
them as celery-exporter names its own, so dashboards made for it read these; any other
prefix replaces ``multiq`` alone. :func:`render` writes the text.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from multiq.metrics.collect import Histogram, Snapshot

Labels = Tuple[Tuple[str, str], ...]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PREFIX = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
#: celery-exporter's counter for each outcome state
CELERY_STATES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried",
                 "REVOKED": "revoked", "REJECTED": "rejected"}


@dataclass
class Family:
    """One metric family: its samples are (name suffix, labels, value)."""

    name: str
    kind: str  # counter, gauge or histogram
    help: str
    samples: List[Tuple[str, Labels, float]] = field(default_factory=list)


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can start a metric name, else ValueError."""
    if not _PREFIX.match(prefix or ""):
        raise ValueError(f"A metric prefix is letters, digits and underscores, not starting "
                         f"with a digit: {prefix!r}")
    return prefix


def render(snap: Snapshot, prefix: str = "multiq") -> str:
    """The exposition text of ``snap`` with its families named after ``prefix``."""
    fams = families(snap)
    if check_prefix(prefix) == "celery":
        fams = celery_names(fams)
    elif prefix != "multiq":
        fams = [_renamed(f, prefix + f.name[len("multiq"):]) for f in fams]
    return text(fams)


def families(snap: Snapshot) -> List[Family]:
    """The ``multiq_*`` families of ``snap``."""
    tasks = Family("multiq_tasks_total", "counter",
                   "Tasks that ended on a node, by outcome (kept in Redis by the nodes).")
    for (name, state, queue), n in sorted(snap.tasks.items()):
        tasks.samples.append(("", (("name", name), ("state", state), ("queue", queue)), n))
    out = [tasks,
           _histogram("multiq_task_runtime_seconds", "Seconds a task's run took.",
                      snap.runtime),
           _histogram("multiq_task_queue_wait_seconds", "Seconds from when a message was "
                      "due (sent, or its eta) to the start of its run.", snap.wait)]
    length = Family("multiq_queue_length", "gauge",
                    "Messages waiting in a queue, by priority band.")
    delayed = Family("multiq_queue_delayed", "gauge",
                     "Countdown, eta and retry messages not yet due.")
    reserved = Family("multiq_queue_reserved", "gauge",
                      "Messages delivered to nodes and not yet acknowledged.")
    dead = Family("multiq_queue_deadletters", "gauge", "Messages in the dead-letter stream.")
    for q in snap.queues:
        for band, n in sorted(q.waiting.items()):
            length.samples.append(("", (("queue", q.name), ("band", str(band))), n))
        delayed.samples.append(("", (("queue", q.name),), q.delayed))
        reserved.samples.append(("", (("queue", q.name),), q.reserved))
        dead.samples.append(("", (("queue", q.name),), q.deadletters))
    out += [length, delayed, reserved, dead]
    states = Counter("ready" if n.ready else "starting" for n in snap.nodes)
    workers = Family("multiq_workers", "gauge",
                     "Nodes by state: ready, starting, or lost (liveness expired, not yet "
                     "recovered).")
    for state, n in (("ready", states["ready"]), ("starting", states["starting"]),
                     ("lost", snap.lost)):
        workers.samples.append(("", (("state", state),), n))
    up = Family("multiq_worker_up", "gauge", "1 for each node name whose heartbeat is alive.")
    active = Family("multiq_worker_active_tasks", "gauge", "Tasks a node runs now.")
    by_host: Dict[str, int] = {}
    for node in snap.nodes:
        by_host[node.hostname] = by_host.get(node.hostname, 0) + node.active
    for host, n in sorted(by_host.items()):
        up.samples.append(("", (("hostname", host),), 1))
        active.samples.append(("", (("hostname", host),), n))
    return [*out, workers, up, active]


def _histogram(name: str, help: str, series: Dict[Tuple[str, str], Histogram]) -> Family:
    fam = Family(name, "histogram", help)
    for (task, queue), h in sorted(series.items()):
        labels: Labels = (("name", task), ("queue", queue))
        for le, n in h.cumulative():
            fam.samples.append(("_bucket", (*labels, ("le", le)), n))
        fam.samples.append(("_sum", labels, h.sum))
        fam.samples.append(("_count", labels, h.count))
    return fam


def celery_names(fams: Iterable[Family]) -> List[Family]:
    """The families as celery-exporter names them where it has them (its metric and
    label names: ``queue_name``), the others with the ``celery`` prefix."""
    by_name = {f.name: f for f in fams}
    out: List[Family] = []
    tasks = by_name.pop("multiq_tasks_total")
    per_state: Dict[str, Family] = {
        state: Family(f"celery_task_{word}_total", "counter", f"Tasks {word}.")
        for state, word in CELERY_STATES.items()}
    rest = Family("celery_tasks_total", "counter", tasks.help)
    for suffix, labels, value in tasks.samples:
        d = dict(labels)
        target = per_state.get(d["state"])
        if target is None:
            rest.samples.append((suffix, labels, value))
        else:
            target.samples.append((suffix, (("name", d["name"]),
                                            ("queue_name", d["queue"])), value))
    out += [*per_state.values(), rest]
    out.append(_renamed(by_name.pop("multiq_task_runtime_seconds"), "celery_task_runtime",
                        {"queue": "queue_name"}))
    length = by_name.pop("multiq_queue_length")
    totals: Dict[str, float] = {}
    for _, labels, value in length.samples:
        queue = dict(labels)["queue"]
        totals[queue] = totals.get(queue, 0) + value
    out.append(Family("celery_queue_length", "gauge", "Messages waiting in a queue.",
                      [("", (("queue_name", q),), n) for q, n in totals.items()]))
    out.append(_renamed(by_name.pop("multiq_worker_up"), "celery_worker_up"))
    out.append(_renamed(by_name.pop("multiq_worker_active_tasks"),
                        "celery_worker_tasks_active"))
    out += [_renamed(f, "celery" + f.name[len("multiq"):]) for f in by_name.values()]
    return out


def _renamed(fam: Family, name: str, labels: Optional[Dict[str, str]] = None) -> Family:
    renames = labels or {}
    samples = [(suffix, tuple((renames.get(k, k), v) for k, v in ls), value)
               for suffix, ls, value in fam.samples]
    return Family(name, fam.kind, fam.help, samples)


def text(fams: Iterable[Family]) -> str:
    """The text format of ``fams``."""
    lines: List[str] = []
    pairs: Dict[Tuple[str, str], str] = {}  # (label, value) -> its text: most repeat
    for fam in fams:
        lines.append(f"# HELP {fam.name} {escape_help(fam.help)}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        for suffix, labels, value in fam.samples:
            if labels:
                parts = []
                for pair in labels:
                    text_ = pairs.get(pair)
                    if text_ is None:
                        text_ = pairs[pair] = f'{pair[0]}="{escape_label(pair[1])}"'
                    parts.append(text_)
                lines.append(f"{fam.name}{suffix}{{{','.join(parts)}}} {number(value)}")
            else:
                lines.append(f"{fam.name}{suffix} {number(value)}")
    return "\n".join(lines) + "\n"


def escape_label(value: str) -> str:
    """A label value as the text format writes it: backslash, quote, newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
