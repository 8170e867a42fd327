"""Drain: N counted tasks pre-queued (timed: an enqueue sample), then one worker started.

Two rates, as asked: the reference's ``(N-1)/(t_last-t_first)`` from the stamps the tasks
write, and ``N / (Popen -> last result stored)`` seen by the driver (polling every 20 ms).
Worker and redis-server CPU per task are sampled at the first and the last completion.

The same again with the ``noop`` task, whose only write is its result (figures ``noop-``):
completions are the result documents in the results db (polled with ``DBSIZE``), and the
first rate is ``(N-1)/(last - first date_done)`` of those documents (multiq and Celery
both stamp ``date_done`` when the task ends); systems without such a field are not run.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import psutil

from bench.apps.common import COUNTER, T_FIRST, T_LAST
from bench.context import COUNTER_DB, Bench
from bench.procs import ProcessError, tail
from bench.systems import Setting, System

POLL = 0.02
STALL = 30.0  # no completion for this long: give up


def drain_n(bench: Bench, setting: Setting) -> int:
    return max(2, bench.opts.n // setting.n_div)


def prequeue(bench: Bench, system: System, n: int,
             counted: bool = True) -> Tuple[float, List[str]]:
    """Send ``n`` counted (or ``noop``) tasks one by one; return the enqueue rate and the
    result keys."""
    keys_path = bench.path(f"{system.name}-keys", ".txt")
    out = bench.producer(system, "enqueue", "-n", str(n), *(["--counted"] if counted else []),
                         "--keys", str(keys_path))
    return float(out["rate"]), bench.read_keys(keys_path)


def _cpu(procs: List[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def _tree(pid: int) -> List[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def missing_keys(client: Any, keys: List[str]) -> List[str]:
    """The keys that do not exist yet."""
    missing: List[str] = []
    for low in range(0, len(keys), 1000):
        chunk = keys[low:low + 1000]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.exists(key)
        missing.extend(k for k, found in zip(chunk, pipe.execute()) if not found)
    return missing


Sample = Tuple[int, float, float]  # (tasks counted, workers' CPU s, redis CPU s)


def _until_counted(count: Callable[[], int], n: int, procs: List[Any], redis_proc: Any,
                   log: Path) -> Tuple[Optional[Sample], Sample, float]:
    """Wait until ``count()`` (tasks done) reaches ``n``: the samples at the first and last
    count, and when the count last moved."""
    def sample(done: int) -> Sample:
        return (done, sum(_cpu(_tree(p.pid)) for p in procs),
                _cpu([redis_proc]) if redis_proc else 0)

    first: Optional[Sample] = None
    last_done, last_change = 0, time.monotonic()
    while True:
        done = count()
        if done and first is None:
            first = sample(done)
        if done >= n:
            return first, sample(done), last_change
        if done != last_done:
            last_done, last_change = done, time.monotonic()
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise ProcessError(f"worker exited {dead[0].returncode} after {done}/{n} "
                               f"tasks; log:\n{tail(log)}")
        if time.monotonic() - last_change > STALL:
            raise ProcessError(f"stalled at {done}/{n} tasks; log:\n{tail(log)}")
        time.sleep(POLL)


def run(bench: Bench, system: System, setting: Setting, run_no: int,
        prefix: str = "", counted: bool = True) -> None:
    """One drain of one system and setting; adds its samples to the results (figures
    ``drain``, ``drain-wall``, ``worker-cpu`` and ``redis-cpu``, each after ``prefix``).
    Without ``counted``, of the ``noop`` task (see the module's docstring)."""
    n = drain_n(bench, setting)
    bench.flush()
    rate, keys = prequeue(bench, system, n, counted)
    if n == bench.opts.n and "enqueue" in bench.opts.only and not prefix and counted:
        bench.results.add("enqueue", system.name, "one-by-one", rate, n=n)
    counter = bench.redis.client(COUNTER_DB)
    store = bench.redis.client(system.results_db)
    redis_proc = psutil.Process(bench.redis.proc.pid) if bench.redis.proc else None
    log = bench.path(f"{system.name}-{setting.key}-drain")
    t0 = time.time()
    procs = [bench.procs.start(system.worker_argv(setting, bench.redis.url(1), i),
                               bench.env(system, BENCH_N=n), log if i == 1 else
                               bench.path(f"{system.name}-{setting.key}-drain-{i}"),
                               cwd=Path(bench.root(system)))
             for i in range(1, setting.procs + 1)]

    def count() -> int:
        return int(counter.get(COUNTER) or 0) if counted else int(store.dbsize())

    try:
        first, end, last_change = _until_counted(count, n, procs, redis_proc, log)
        missing = keys
        while True:
            missing = missing_keys(store, missing)
            if not missing:
                t_end = time.time()
                break
            if time.monotonic() - last_change > STALL:
                raise ProcessError(f"{len(missing)} results never stored; log:\n{tail(log)}")
            time.sleep(POLL)
        stamps = _stamps(counter) if counted else _done_stamps(store, keys)
    finally:
        for proc in procs:
            bench.procs.stop(proc, bench.opts.stop_grace)
        counter.close()
        store.close()
    common = {"note": setting.note, "compare_to": setting.compare_to, "n": n}
    stamped = (n - 1) / (stamps[1] - stamps[0])
    wall = n / (t_end - t0)
    bench.results.add(f"{prefix}drain", system.name, setting.key, stamped, **common)
    bench.results.add(f"{prefix}drain-wall", system.name, setting.key, wall, **common)
    if first is not None and end[0] > first[0]:
        tasks = end[0] - first[0]
        bench.results.add(f"{prefix}worker-cpu", system.name, setting.key,
                          (end[1] - first[1]) / tasks * 1e6, **common)
        if redis_proc is not None:
            bench.results.add(f"{prefix}redis-cpu", system.name, setting.key,
                              (end[2] - first[2]) / tasks * 1e6, **common)
    bench.say(f"run {run_no}: {prefix}drain {system.name} {setting.key} N={n}: {stamped:,.0f}/s "
              f"stamped, {wall:,.0f}/s wall (enqueue {rate:,.0f}/s)")


def _stamps(counter: Any) -> Tuple[float, float]:
    deadline = time.monotonic() + 10.0
    while True:
        first, last = counter.get(T_FIRST), counter.get(T_LAST)
        if first is not None and last is not None:
            return float(first), float(last)
        if time.monotonic() > deadline:
            raise ProcessError("the tasks did not stamp bench:t_first / bench:t_last")
        time.sleep(POLL)


def _done_stamps(store: Any, keys: List[str]) -> Tuple[float, float]:
    """The first and last ``date_done`` of the result documents at ``keys``."""
    stamps: List[float] = []
    for low in range(0, len(keys), 1000):
        for raw in store.mget(keys[low:low + 1000]):
            done = json.loads(raw).get("date_done")
            when = dt.datetime.fromisoformat(done)
            if when.tzinfo is None:  # (naive: UTC)
                when = when.replace(tzinfo=dt.timezone.utc)
            stamps.append(when.timestamp())
    return min(stamps), max(stamps)
