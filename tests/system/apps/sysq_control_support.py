"""Shared by tests/system/test_control_*.py: nodes of ``sysq_control`` started from the
command line (alone or as a module-wide cluster), the ``multiq`` CLI run as a subprocess,
what the tasks recorded in db 3, a node's pool children.

Only processes a test started are ever signalled, by pid.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import psutil

APPS = Path(__file__).resolve().parent
REPO = APPS.parent.parent.parent
TASK = "sysq_control.{}".format
HOST = socket.gethostname()
WORKER_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "MULTIQ_NOSETPS": "1"}


def node(short: str) -> str:
    """The full node name of ``-n <short>@%h``."""
    return f"{short}@{HOST}"


def env_for(broker_url: str, backend_url: str) -> Dict[str, str]:
    """The environment of a node or a CLI run against these URLs."""
    env = dict(os.environ)
    env.update(WORKER_ENV)
    env.update(MULTIQ_BROKER_URL=broker_url, MULTIQ_RESULT_BACKEND=backend_url,
               PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(APPS), str(REPO)] + ([os.environ["PYTHONPATH"]]
                                  if os.environ.get("PYTHONPATH") else []))
    return env


class CLIRun:
    """What ``multiq ...`` did: ``code``, ``out``, ``err``, ``seconds`` (wall time)."""

    def __init__(self, proc: subprocess.CompletedProcess, seconds: float) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.seconds = seconds

    def __repr__(self) -> str:
        return (f"<CLIRun code={self.code} {self.seconds:.3f}s\n--- stdout\n{self.out}"
                f"--- stderr\n{self.err}>")


def cli(env: Dict[str, str], *args: str, timeout: float = 30.0) -> CLIRun:
    """``python -m multiq -A sysq_control <args>`` run to its end."""
    argv = [sys.executable, "-m", "multiq", "-A", "sysq_control", *args]
    began = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=str(APPS), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)
    return CLIRun(proc, time.monotonic() - began)


def start_node(start_worker: Any, *args: str, **options: Any) -> Any:
    """Start ``python -m multiq -A sysq_control worker ...`` with the ``start_worker``
    fixture (``pool`` defaults to solo; ``hostname``, ``wait_ready``, ``env`` pass)."""
    env = dict(WORKER_ENV)
    env.update(options.pop("env", None) or {})
    return start_worker("sysq_control", *args, cwd=APPS, env=env, **options)


def cold_stop(workers: Sequence[Any], timeout: float = 10.0) -> None:
    """SIGQUIT (cold shutdown: running tasks are not waited for) every live node."""
    for w in workers:
        if w.alive:
            w.send_signal(signal.SIGQUIT)
    for w in workers:
        try:
            w.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass  # the process tracker kills it


def records(rec: Any) -> List[List[str]]:
    """Everything the tasks recorded, in order, as ``[tag, what, pid, time]``."""
    return [x.decode().split(":") for x in rec.lrange("runs", 0, -1)]


def recorded(rec: Any, tag: str, what: Optional[str] = None) -> List[List[str]]:
    return [r for r in records(rec) if r[0] == tag and (what is None or r[1] == what)]


def live(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def child_pids(pid: int) -> List[int]:
    """The live (non-zombie) direct children of ``pid``."""
    try:
        kids = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    return sorted(k.pid for k in kids if live(k))


def flat(replies: Optional[Sequence[Dict[str, Any]]]) -> Dict[str, Any]:
    """``[{node: reply}, ...]`` → ``{node: reply}``, refusing duplicates."""
    out: Dict[str, Any] = {}
    for reply in replies or ():
        for name, body in reply.items():
            assert name not in out, f"two replies from {name}: {replies}"
            out[name] = body
    return out


def wait_results(results: Sequence[Any], timeout: float) -> None:
    """Wait until every result is ready (without raising the tasks' errors)."""
    deadline = time.monotonic() + timeout
    for r in results:
        r.get(timeout=max(0.1, deadline - time.monotonic()), propagate=False)


def stream_events(broker: Any, key: str = "multiq:events") -> List[Dict[str, Any]]:
    """Every event in the broker's event stream, decoded, oldest first."""
    import json

    return [json.loads(fields[b"e"]) for _, fields in broker.xrange(key)]
