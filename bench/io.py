"""I/O-bound work: N tasks that each wait half a second, on one node of many green threads
or coroutines.

N (``--io-n``, 10,000) of the setting's task are pre-queued with the bulk API, then one worker
is started; the figure is the seconds from its Popen until the N-th task counted itself
(``bench:done``). multiq's ``asyncio1000`` runs ``asleep_count`` (``await asyncio.sleep``) on
``-P asyncio -c 1000``; the ``gevent1000`` settings run ``sleep_count`` (``time.sleep``,
cooperative once patched) on ``-P gevent -c 1000``. With 1,000 at a time, 10,000 half-second
waits take 5 s at best.
"""
from __future__ import annotations

import time
from pathlib import Path

from bench.apps.common import COUNTER
from bench.context import COUNTER_DB, Bench
from bench.procs import ProcessError, tail
from bench.systems import Setting, System

POLL = 0.02
STALL = 30.0


def run(bench: Bench, system: System, setting: Setting, run_no: int) -> None:
    n = bench.opts.io_n
    bench.flush()
    keys_path = bench.path(f"{system.name}-io-keys", ".txt")
    bench.producer(system, "batch", "-n", str(n), "--task", setting.task, "--keys",
                   str(keys_path), timeout=120 + n / 100)
    counter = bench.redis.client(COUNTER_DB)
    log = bench.path(f"{system.name}-{setting.key}-io")
    t0 = time.perf_counter()
    proc = bench.procs.start(system.worker_argv(setting, bench.redis.url(1)),
                             bench.env(system, BENCH_N=n), log, cwd=Path(bench.root(system)))
    try:
        last_done, last_change = 0, time.monotonic()
        while True:
            done = int(counter.get(COUNTER) or 0)
            if done >= n:
                seconds = time.perf_counter() - t0
                break
            if done != last_done:
                last_done, last_change = done, time.monotonic()
            if proc.poll() is not None:
                raise ProcessError(f"worker exited {proc.returncode} after {done}/{n} tasks; "
                                   f"log:\n{tail(log)}")
            if time.monotonic() - last_change > STALL:
                raise ProcessError(f"stalled at {done}/{n} tasks; log:\n{tail(log)}")
            time.sleep(POLL)
    finally:
        bench.procs.stop(proc, bench.opts.stop_grace)
        counter.close()
    for key, compare_to in ((setting.key, setting.compare_to), *setting.also):
        bench.results.add("io", system.name, key, seconds, n=n, compare_to=compare_to,
                          note=setting.note)
    bench.say(f"run {run_no}: io {system.name} {setting.key} N={n}: {seconds:.2f} s")
