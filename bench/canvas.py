"""Canvas figures: chord and chain latency, and the chord's round trips to Redis per task.

``timing``: one worker started; a fresh client warms it (a chord of 10, a chain of 3: every
pool process has run a task and both paths once), then times ``chord(add.s(i, i) for i in
range(N))(tsum.s())`` from send until the callback's ``.get()`` returns, then a chain of
``chain_length`` ``add`` tasks until the last one's ``.get()`` returns.

``roundtrips``: the worker reaches Redis only through a counting proxy (``bench.proxy``):
its broker and result backend URLs name the proxy's one port (with their own databases, so
the worker still sees one server, as in ``timing``); the client goes straight to Redis, so
only the worker's traffic is counted. After the warm-up and 0.3 s of
quiet each, the client sends the N header tasks as a plain group, then as the chord. The
figure is (worker bursts in the chord's window - bursts in the group's window) / N: the
round trips a header task makes for the chord beyond what the same task makes alone (its
fetch, ack and result write); 0 when the chord's count rides in the result write. The
callback task's own trips count too (1/N of one task's).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

from bench.context import BACKEND_DB, BROKER_DB, Bench
from bench.proxy import CountingProxy
from bench.systems import Setting, System

TIMEOUT = 120.0  # for one chord or chain to finish, in the client


def timing(bench: Bench, system: System, setting: Setting, run_no: int) -> None:
    """One worker session: one chord and one chain sample (whichever ``--only`` asks)."""
    n, length = bench.opts.chord_size, bench.opts.chain_length
    bench.flush()
    log = bench.path(f"{system.name}-{setting.key}-canvas")
    proc = bench.procs.start(system.worker_argv(setting, bench.redis.url(BROKER_DB)),
                             bench.env(system), log, cwd=Path(bench.root(system)))
    try:
        out = bench.producer(system, "canvas", "--chord-size", str(n), "--chain-length",
                             str(length), "--timeout", str(TIMEOUT), timeout=4 * TIMEOUT)
    finally:
        bench.procs.stop(proc, bench.opts.stop_grace)
    common = {"note": setting.note, "compare_to": setting.compare_to}
    done = []
    if "chord" in bench.opts.only:
        bench.results.add("chord", system.name, setting.key, out["chord_s"], n=n, **common)
        done.append(f"chord of {n} {out['chord_s']:.3f} s")
    if "chain" in bench.opts.only:
        chain_ms = out["chain_s"] * 1000.0
        bench.results.add("chain", system.name, setting.key, chain_ms, n=length, **common)
        done.append(f"chain of {length} {chain_ms:.1f} ms")
    bench.say(f"run {run_no}: canvas {system.name} {setting.key}: {', '.join(done)}")


def roundtrips(bench: Bench, system: System, setting: Setting, run_no: int) -> None:
    """One worker session behind the counting proxy: a group, then a chord, of N."""
    n = bench.opts.chord_size
    bench.flush()
    proxy = CountingProxy(("127.0.0.1", bench.redis.port))
    proxy.start()
    broker = f"redis://127.0.0.1:{proxy.port}/{BROKER_DB}"
    backend = f"redis://127.0.0.1:{proxy.port}/{BACKEND_DB}"
    env = bench.env(system, BENCH_BROKER_URL=broker, BENCH_BACKEND_URL=backend)
    log = bench.path(f"{system.name}-{setting.key}-roundtrips")
    proc = bench.procs.start(system.worker_argv(setting, broker), env, log,
                             cwd=Path(bench.root(system)))
    try:
        out = bench.producer(system, "roundtrips", "--chord-size", str(n), "--timeout",
                             str(TIMEOUT), timeout=4 * TIMEOUT)
    finally:
        bench.procs.stop(proc, bench.opts.stop_grace)
        proxy.stop()
    group: Dict[str, int] = proxy.bursts(*out["group"])
    chord: Dict[str, int] = proxy.bursts(*out["chord"])
    extra = (sum(chord.values()) - sum(group.values())) / n
    names = {f"db{BROKER_DB}": "broker conns", f"db{BACKEND_DB}": "backend conns"}
    parts = ", ".join(f"{names.get(k, k)} {(chord.get(k, 0) - group.get(k, 0)) / n:+.2f}"
                      for k in sorted({*chord, *group}))
    series = bench.results.get("roundtrips", system.name, setting.key, n=n,
                               compare_to=setting.compare_to)
    series.samples.append(extra)
    series.note = f"{setting.note + '; ' if setting.note else ''}last run: {parts}"
    bench.say(f"run {run_no}: roundtrips {system.name} {setting.key} N={n}: {extra:+.3f} "
              f"per header task ({parts}; group {group}, chord {chord})")
