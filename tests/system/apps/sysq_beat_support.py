"""Shared by tests/system/test_beat_*.py: starting ``multiq beat`` and workers of the
``sysq_beat`` app from the command line, reading what it recorded in db 3.

Only processes a test started are ever signalled, by pid; every one is registered with the
``process_tracker`` fixture so teardown stops the survivors.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from helpers import REPO_ROOT, WorkerProcess

APPS = Path(__file__).resolve().parent
APP = "sysq_beat"
TICK = "sysq_beat.tick"
SENDING = "Sending due task tick (sysq_beat.tick)"
LEADS = "now sends the periodic tasks"
STARTING = "beat: Starting..."

_numbers = itertools.count(1)


def beat_env(worker_env: Dict[str, str], **extra: str) -> Dict[str, str]:
    """The environment of a ``sysq_beat`` process: the test's Redis, the app on the path."""
    env = dict(worker_env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(APPS), str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def beat_cmd(*args: str) -> List[str]:
    return [sys.executable, "-m", "multiq", "-A", APP, "beat", *args]


def start_beat(tracker: Any, env: Dict[str, str], directory: Path, *args: str,
               wait: Optional[str] = STARTING, timeout: float = 15.0) -> WorkerProcess:
    """``multiq -A sysq_beat beat -l info --max-interval 1 <args>`` in the foreground, its
    stdout and stderr in ``directory/beat-N.log``; waits for ``wait`` in that log."""
    number = next(_numbers)
    log_path = Path(directory) / f"beat-{number}.log"
    argv = beat_cmd("-l", "info", "--max-interval", "1", *args)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=str(directory), env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    tracker.track(proc)
    beat = WorkerProcess(proc, log_path, argv)
    if wait:
        beat.wait_for_log(wait, timeout=timeout)
    return beat


def start_beat_worker(start_worker: Any, *args: str, env: Optional[Dict[str, str]] = None,
                      **options: Any) -> WorkerProcess:
    """A ``sysq_beat`` worker (``-P solo``) through the ``start_worker`` fixture."""
    full = {"PYTHONDONTWRITEBYTECODE": "1"}
    full.update(env or {})
    return start_worker(APP, *args, cwd=APPS, env=full, **options)


def records(rec: Any, key: str) -> List[Tuple[float, int]]:
    """``(epoch, pid)`` of everything recorded under ``key`` (runs, sent, beat_init)."""
    out = []
    for raw in rec.lrange(key, 0, -1):
        when, _, pid = raw.decode().partition("|")
        out.append((float(when), int(pid)))
    return out


def times(rec: Any, key: str) -> List[float]:
    return [when for when, _pid in records(rec, key)]


def gaps(values: List[float]) -> List[float]:
    return [round(b - a, 3) for a, b in zip(values, values[1:])]


def sending_lines(text: str) -> int:
    return text.count(SENDING)
