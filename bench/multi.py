"""``multi start`` / ``stopwait`` of 4 idle nodes (``-c 2``), multiq and ``celery multi``.

Three times per run: ``start`` until it returns (multiq's waits for the nodes to be
ready, Celery's does not), ``start`` until all 4 nodes answer a broadcast ping (a client
process started and connected beforehand pings every 0.1 s), and ``stopwait``. Node pids
are read from the pidfiles in our own run dir, so whatever survives is stopped by pid.
"""
from __future__ import annotations

import json
import select
import subprocess
import time
from pathlib import Path
from typing import Dict, List

from bench.context import Bench
from bench.procs import ProcessError, pid_alive, poll, read_pid, tail
from bench.systems import NODES, System

SETTING = "4 nodes -c 2"


def _wait_line(proc: subprocess.Popen, want: str, timeout: float, log: Path) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.strip() == want:
                return
            if not line:
                break
    raise ProcessError(f"ping client not ready; log:\n{tail(log)}")


def _node_pids(rundir: Path) -> Dict[str, int]:
    pids = {}
    for name in NODES:
        pid = read_pid(rundir / f"{name}.pid")
        if pid:
            pids[name] = pid
    return pids


def _adopt_late(bench: Bench, rundir: Path, wait: float = 5.0) -> None:
    """Adopt the nodes of an unfinished start, giving the detaching ones time to write
    their pidfiles."""
    deadline = time.monotonic() + wait
    while len(_node_pids(rundir)) < len(NODES) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in _node_pids(rundir).values():
        bench.procs.adopt(pid)


def run(bench: Bench, system: System, run_no: int) -> None:
    """One start / ready / stopwait cycle of ``system``'s ``multi``."""
    bench.flush()
    rundir = bench.path(f"{system.name}-multi", "")
    rundir.mkdir()
    env, cwd = bench.env(system), Path(bench.root(system))
    ping_log = bench.path(f"{system.name}-ping")
    pinger = bench.procs.start(
        bench.producer_argv(system, "ping-wait", "--expect", str(len(NODES)), "--timeout",
                            "120"), env, ping_log, cwd=cwd, stdout_pipe=True)
    adopted: List[int] = []
    launched = False
    try:
        _wait_line(pinger, "ready", 60.0, ping_log)
        launched = True
        t0 = time.time()
        bench.procs.run(system.multi_argv("start", rundir), env,
                        bench.path(f"{system.name}-multi-start"), timeout=180.0, cwd=cwd)
        started = time.time() - t0
        out, _ = pinger.communicate(timeout=150.0)
        answer = json.loads(out.strip().splitlines()[-1])
        if "t_all" not in answer:
            raise ProcessError(f"ping client: {answer}")
        ready = float(answer["t_all"]) - t0
        pids = poll(lambda: _node_pids(rundir) if len(_node_pids(rundir)) == len(NODES)
                    else None, timeout=10.0, interval=0.05, what="pidfiles")
        for pid in pids.values():
            bench.procs.adopt(pid)
            adopted.append(pid)
        t1 = time.time()
        bench.procs.run(system.multi_argv("stopwait", rundir), env,
                        bench.path(f"{system.name}-multi-stopwait"), timeout=180.0, cwd=cwd)
        stopped = time.time() - t1
        left = [pid for pid in adopted if pid_alive(pid)]
        if left:
            raise ProcessError(f"stopwait returned but nodes {left} still run")
    finally:
        bench.procs.stop(pinger, grace=2.0)
        if not adopted and launched:  # failed or interrupted: stop what the pidfiles name
            _adopt_late(bench, rundir)
        bench.procs.cleanup_adopted()
    bench.results.add("multi-start", system.name, SETTING, started)
    bench.results.add("multi-ready", system.name, SETTING, ready)
    bench.results.add("multi-stopwait", system.name, SETTING, stopped)
    bench.say(f"run {run_no}: multi {system.name}: start {started:.2f} s, all answer ping "
              f"{ready:.2f} s, stopwait {stopped:.2f} s")
