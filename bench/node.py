"""One worker session for start-up, idle memory and round-trip latency.

One ``noop`` task is pre-queued; start-up is worker Popen -> its result stored (polled
every 5 ms). The worker is then left idle for ``settle`` seconds and RSS/PSS are summed over
its process tree. Finally a fresh client process does 20 warm-up and ``latency_samples``
sequential ``send -> get`` round trips against that warm worker, then (multiq) as many
``await adelay() -> await aget()`` on one event loop.
"""
from __future__ import annotations

import time
from pathlib import Path

from bench.context import Bench
from bench.procs import poll, tree_memory
from bench.results import percentile
from bench.systems import Setting, System


def run(bench: Bench, system: System, setting: Setting, run_no: int) -> None:
    """One session; records what ``bench.opts.only`` asks for."""
    only = bench.opts.only
    bench.flush()
    keys_path = bench.path(f"{system.name}-key", ".txt")
    bench.producer(system, "enqueue", "-n", "1", "--keys", str(keys_path))
    key = bench.read_keys(keys_path)[0]
    store = bench.redis.client(system.results_db)
    log = bench.path(f"{system.name}-{setting.key}-node")
    common = {"note": setting.note, "compare_to": setting.compare_to}
    done = []
    t0 = time.perf_counter()
    proc = bench.procs.start(system.worker_argv(setting, bench.redis.url(1)), bench.env(system),
                             log, cwd=Path(bench.root(system)))
    try:
        startup = poll(lambda: time.perf_counter() - t0 if store.exists(key) else None,
                       timeout=60.0, interval=0.005, what="first result", alive=proc, log=log)
        if "startup" in only:
            bench.results.add("startup", system.name, setting.key, startup, **common)
            done.append(f"start-up {startup:.2f} s")
        if "memory" in only:
            time.sleep(bench.opts.settle)
            mem = tree_memory(proc.pid)
            note = f"{setting.note + '; ' if setting.note else ''}{mem['procs']:.0f} procs"
            bench.results.add("rss", system.name, setting.key, mem["rss"],
                              compare_to=setting.compare_to, note=note)
            bench.results.add("pss", system.name, setting.key, mem["pss"],
                              compare_to=setting.compare_to, note=note)
            done.append(f"PSS {mem['pss']:.1f} MB ({mem['procs']:.0f} procs)")
        if "latency" in only and not setting.key.endswith("-bare"):
            n = bench.opts.latency_samples
            out = bench.producer(system, "latency", "-n", str(n), timeout=60 + n * 0.2)
            samples = out["samples_ms"]
            p50, p99 = percentile(samples, 50), percentile(samples, 99)
            bench.results.add("latency-p50", system.name, setting.key, p50, n=n, **common)
            bench.results.add("latency-p99", system.name, setting.key, p99, n=n, **common)
            done.append(f"latency p50 {p50:.2f} ms, p99 {p99:.2f} ms")
            out = bench.producer(system, "alatency", "-n", str(n), timeout=60 + n * 0.2)
            if "na" not in out:  # (systems with an awaitable client)
                samples = out["samples_ms"]
                p50, p99 = percentile(samples, 50), percentile(samples, 99)
                bench.results.add("alatency-p50", system.name, setting.key, p50, n=n, **common)
                bench.results.add("alatency-p99", system.name, setting.key, p99, n=n, **common)
                done.append(f"await aget p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    finally:
        bench.procs.stop(proc, bench.opts.stop_grace)
        store.close()
    bench.say(f"run {run_no}: node {system.name} {setting.key}: {', '.join(done)}")
