"""The order of the measurements: every run goes over all figures and systems in turn."""
from __future__ import annotations

import traceback
from typing import Any, Callable, List

from bench import canvas, drain, enqueue, io, metrics, multi, node
from bench.context import Bench
from bench.procs import ProcessError
from bench.systems import SYSTEMS, System, baseline


def available(bench: Bench) -> List[System]:
    """The selected systems that are installed (with ``--baseline``, the other checkout
    right after multiq); a note for each one that is not."""
    found = []
    for name in bench.opts.systems:
        system = SYSTEMS[name]
        if system.installed():
            found.append(system)
            if name == "multiq" and bench.opts.baseline is not None:
                found.append(baseline(bench.opts.baseline))
        else:
            bench.notes.append(f"{name}: not installed, skipped (pip install -e '.[bench]')")
            bench.say(bench.notes[-1])
    return found


def _attempt(bench: Bench, figure: str, system: System, setting: str,
             fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn(bench, system, *args)``; on failure record the error and go on."""
    try:
        fn(bench, system, *args)
    except (ProcessError, Exception) as exc:  # noqa: B014 - ProcessError named for clarity
        detail = str(exc) if isinstance(exc, ProcessError) else traceback.format_exc(limit=3)
        bench.results.get(figure, system.name, setting).errors.append(detail[-2000:])
        bench.say(f"{figure} {system.name} {setting} FAILED: {detail.strip()[-600:]}")


def run_all(bench: Bench) -> None:
    systems = available(bench)
    for run_no in range(1, bench.opts.runs + 1):
        for figures in (_enqueue, _drain, _node, _multi, _canvas_timing, _roundtrips, _io,
                        _metrics):
            figures(bench, systems, run_no)


def _enqueue(bench: Bench, systems: List[System], run_no: int) -> None:
    only = bench.opts.only
    if "enqueue" not in only:
        return
    for system in systems:
        pre_queued = "drain" in only and any(s.n_div == 1 for s in system.drain)
        if not pre_queued:
            _attempt(bench, "enqueue", system, "one-by-one", enqueue.one_by_one, run_no)
        _attempt(bench, "enqueue", system, "batch", enqueue.batch, run_no)


def _drain(bench: Bench, systems: List[System], run_no: int) -> None:
    if "drain" not in bench.opts.only:
        return
    for system in systems:
        for setting in system.settings(system.drain, bench.opts.quick):
            _attempt(bench, "drain", system, setting.key, drain.run, setting, run_no)
            if system.stamped_results:
                _attempt(bench, "noop-drain", system, setting.key, drain.run, setting, run_no,
                         "noop-", False)


def _node(bench: Bench, systems: List[System], run_no: int) -> None:
    only = set(bench.opts.only)
    if not {"startup", "memory", "latency"} & only:
        return
    first = "startup" if "startup" in only else "rss" if "memory" in only else "latency-p50"
    for system in systems:
        for setting in system.settings(system.node, bench.opts.quick):
            if setting.key.endswith("-bare") and not {"startup", "memory"} & only:
                continue
            _attempt(bench, first, system, setting.key, node.run, setting, run_no)


def _multi(bench: Bench, systems: List[System], run_no: int) -> None:
    if "multi" not in bench.opts.only:
        return
    for system in systems:
        if system.multi:
            _attempt(bench, "multi-start", system, multi.SETTING, multi.run, run_no)


def _canvas_timing(bench: Bench, systems: List[System], run_no: int) -> None:
    only = bench.opts.only
    if not {"chord", "chain"} & set(only):
        return
    figure = "chord" if "chord" in only else "chain"
    for system in systems:
        for setting in system.settings(system.canvas, bench.opts.quick):
            _attempt(bench, figure, system, setting.key, canvas.timing, setting, run_no)


def _roundtrips(bench: Bench, systems: List[System], run_no: int) -> None:
    if "roundtrips" not in bench.opts.only:
        return
    for system in systems:
        for setting in system.settings(system.canvas, bench.opts.quick):
            _attempt(bench, "roundtrips", system, setting.key, canvas.roundtrips, setting,
                     run_no)


def _io(bench: Bench, systems: List[System], run_no: int) -> None:
    if "io" not in bench.opts.only:
        return
    for system in systems:
        for setting in system.settings(system.io, bench.opts.quick):
            _attempt(bench, "io", system, setting.key, io.run, setting, run_no)


def _metrics(bench: Bench, systems: List[System], run_no: int) -> None:
    if "metrics" not in bench.opts.only:
        return
    for system in systems:
        if system.name != "multiq":
            continue
        for setting in system.settings(system.drain, bench.opts.quick):
            _attempt(bench, "metrics-drain", system, setting.key, metrics.run, setting, run_no)
        _attempt(bench, "metrics-scrape", system, "scrape", metrics.scrape, run_no)
