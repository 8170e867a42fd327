"""Enqueue rates: one call at a time, and through the bulk API where the system has one.

One-by-one samples also come from the drain's pre-queue (as in the reference); this module
adds standalone runs when there are none. Bulk sends go in chunks of 1,000.
"""
from __future__ import annotations

from bench.context import Bench
from bench.systems import System

CHUNK = 1000
BATCH_API = {"multiq": "group(...).apply_async()", "celery": "group(...).apply_async()",
             "rq": "Queue.enqueue_many", "dramatiq": "group(...).run()"}


def one_by_one(bench: Bench, system: System, run_no: int) -> None:
    bench.flush()
    n = bench.opts.n
    out = bench.producer(system, "enqueue", "-n", str(n), "--counted")
    bench.results.add("enqueue", system.name, "one-by-one", out["rate"], n=n)
    bench.say(f"run {run_no}: enqueue {system.name} one-by-one N={n}: {out['rate']:,.0f}/s")
    bench.flush()


def batch(bench: Bench, system: System, run_no: int) -> None:
    bench.flush()
    n = bench.opts.n
    out = bench.producer(system, "batch", "-n", str(n), "--counted", "--chunk", str(CHUNK))
    api = BATCH_API.get(system.client_name, "bulk API")
    series = bench.results.get("enqueue", system.name, "batch", n=n,
                               note=f"{api}, {CHUNK} per call")
    if "na" in out:
        series.na = str(out["na"])
        bench.say(f"run {run_no}: enqueue {system.name} batch: n/a ({out['na']})")
    else:
        series.samples.append(float(out["rate"]))
        bench.say(f"run {run_no}: enqueue {system.name} batch N={n}: {out['rate']:,.0f}/s")
    bench.flush()
