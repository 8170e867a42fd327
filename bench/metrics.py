"""The cost of the counters the nodes keep for Prometheus, and of a scrape.

``metrics-drain``: each multiq drain setting drained twice in the same run, as ``multiq``
(counters on, the default) and as ``multiq-nometrics`` (``--without-metrics``); the ratio
column of the second row is on over off (the target: at least 0.95). ``metrics-scrape``:
a fresh client process seeds ``--metric-queues`` (100) queues, each with waiting, held and
delayed messages and counters of two task names, plus four nodes, then times 50 calls of
``multiq.metrics.scrape`` after three warm-up calls; the sample is their median, in ms
(the target: at most 50 ms).
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Dict, List

from bench import drain
from bench.context import Bench
from bench.systems import Setting, System

SCRAPES, WARMUP = 50, 3
NODES = 4


def without_metrics(system: System) -> System:
    """``system`` (multiq) whose nodes run with ``--without-metrics``."""
    return dataclasses.replace(system, name=f"{system.name}-nometrics",
                               base=(*system.base, "--without-metrics"),
                               client=system.client_name)


def run(bench: Bench, system: System, setting: Setting, run_no: int) -> None:
    """Drain with the counters on, then off, one after the other."""
    drain.run(bench, system, setting, run_no, prefix="metrics-")
    drain.run(bench, without_metrics(system), setting, run_no, prefix="metrics-")


def scrape(bench: Bench, system: System, run_no: int) -> None:
    bench.flush()
    queues = bench.opts.metric_queues
    out = bench.producer(system, "scrape", "--queues", str(queues), "-n", str(SCRAPES))
    ms = float(statistics.median(out["samples_ms"]))
    bench.results.add("metrics-scrape", system.name, "scrape", ms,
                      note=f"{queues} queues, {NODES} nodes")
    bench.say(f"run {run_no}: metrics-scrape {system.name} {queues} queues: {ms:.1f} ms "
              f"(median of {SCRAPES}; max {max(out['samples_ms']):.1f} ms)")


# -- in the client process (bench.producer scrape) ------------------------------------


def seed(app: Any, queues: int) -> None:
    """Queues with messages in several states, counters as nodes leave them, live nodes."""
    from multiq.keys import GROUP
    from multiq.metrics.families import BOUNDS, SUM
    from multiq.metrics.tally import Counts, record

    broker = app.broker
    names = [f"bench-q{i:03d}" for i in range(queues)]
    broker.declare(names)
    counts = Counts()
    for q in names:
        for i in range(3):
            app.send_task("noop", (i,), queue=q, priority=5 if i == 2 else None)
        app.send_task("noop", (0,), queue=q, countdown=3600)
        for task in ("bench.noop", "bench.noop_count"):
            for state, n in (("SUCCESS", 1000), ("FAILURE", 10), ("RETRY", 5)):
                counts.tasks[_field(task, state, q)] = n
            for bound in BOUNDS[:6]:
                counts.runtime[_field(task, q, bound)] = 100
                counts.wait[_field(task, q, bound)] = 100
            counts.runtime_sum[_field(task, q, SUM)] = 12_500_000
            counts.wait_sum[_field(task, q, SUM)] = 3_500_000
    p = broker.client.pipeline(transaction=False)
    record(p, broker.keys, counts)
    for q in names:
        p.xreadgroup(GROUP, "bench@host|held", {broker.keys.stream(q, 0): ">"}, count=1)
    p.execute()
    for i in range(NODES):
        consumer = f"bench{i}@host|{i}"
        broker.heartbeat(consumer, {"hostname": f"bench{i}@host", "consumer": consumer,
                                    "ready": True, "active": i, "time": time.time()}, 600)


def time_scrapes(app: Any, n: int) -> Dict[str, Any]:
    from multiq.metrics import scrape as scrape_text

    for _ in range(WARMUP):
        text = scrape_text(app)
    samples: List[float] = []
    for _ in range(n):
        start = time.perf_counter()
        scrape_text(app)
        samples.append((time.perf_counter() - start) * 1000.0)
    return {"n": n, "samples_ms": samples, "bytes": len(text)}


def _field(*labels: str) -> str:
    from multiq.metrics.families import field

    return field(*labels)
