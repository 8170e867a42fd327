"""Shared by tests/system/test_node_*.py: starting prefork nodes of ``sysq_node`` from the
command line, finding their pool children, reading what the tasks recorded in db 3.

Only processes a test started are ever signalled, by pid.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import psutil

APPS = Path(__file__).resolve().parent
TASK = "sysq_node.{}".format
WORKER_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}
DEADLETTER = "multiq:q:{multiq}:deadletter"


def start_node(start_worker: Any, *args: str, **options: Any) -> Any:
    """Start ``python -m multiq -A sysq_node worker -P prefork ...`` with the ``start_worker``
    fixture (``hostname``, ``wait_ready``, ``env``, ``log_path`` pass through)."""
    env = dict(WORKER_ENV)
    env.update(options.pop("env", None) or {})
    options.setdefault("pool", "prefork")
    return start_worker("sysq_node", *args, cwd=APPS, env=env, **options)


def node_env(worker_env: Dict[str, str], **extra: str) -> Dict[str, str]:
    """The environment of a node started by hand (``multiq worker -D`` and the like)."""
    env = dict(worker_env)
    env.update(WORKER_ENV)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(APPS), str(APPS.parent.parent.parent)]
        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def multiq_cmd(*args: str) -> List[str]:
    return [sys.executable, "-m", "multiq", "-A", "sysq_node", *args]


def run_cli(args: Sequence[str], env: Dict[str, str], cwd: Path,
            timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run a command to its end (the launcher of a detached node returns when it is ready)."""
    return subprocess.run(list(args), env=env, cwd=str(cwd), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def live(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def pid_alive(pid: int) -> bool:
    try:
        return live(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def children(pid: int) -> List[psutil.Process]:
    """The live (non-zombie) direct children of ``pid``."""
    try:
        kids = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    return [k for k in kids if live(k)]


def child_pids(pid: int) -> List[int]:
    return sorted(k.pid for k in children(pid))


def title(proc: Any) -> str:
    """The process title (setproctitle rewrites the command line)."""
    if not isinstance(proc, psutil.Process):
        proc = psutil.Process(int(proc))
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


def records(rec: Any) -> List[str]:
    """Everything the tasks recorded (``<tag>:<what>:<pid>``), in order."""
    return [x.decode() for x in rec.lrange("runs", 0, -1)]


def recorded(rec: Any, tag: str, what: str = "start") -> List[int]:
    """The pids that recorded ``what`` for ``tag``."""
    prefix = f"{tag}:{what}:"
    return [int(x[len(prefix):]) for x in records(rec) if x.startswith(prefix)]


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_exit(pid: int, timeout: float) -> float:
    """Wait for a process that is not our child to be gone; returns the seconds it took."""
    began = time.monotonic()
    deadline = began + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            raise AssertionError(f"process {pid} still alive after {timeout:.0f}s")
        time.sleep(0.02)
    return time.monotonic() - began


def wait_results(results: Sequence[Any], timeout: float) -> None:
    """Wait until every result is ready (without raising the tasks' errors)."""
    deadline = time.monotonic() + timeout
    for r in results:
        r.get(timeout=max(0.1, deadline - time.monotonic()), propagate=False)


def deadletters(broker: Any) -> List[Dict[str, Any]]:
    """The default queue's dead-letter entries, fields decoded (``m`` kept as bytes)."""
    out = []
    for entry_id, fields in broker.xrange(DEADLETTER):
        item = {k.decode(): (v if k == b"m" else v.decode()) for k, v in fields.items()}
        item["entry_id"] = entry_id
        out.append(item)
    return out


def find_node_processes(marker: str) -> List[psutil.Process]:
    """Live processes whose command line contains ``marker`` (a unique path of the test):
    only to check that a failed start left nothing behind, never to signal them."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or ()) and live(proc):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def describe(pid: Optional[int]) -> str:
    if pid is None:
        return "no pid"
    return f"pid {pid}: alive={pid_alive(pid)} children={child_pids(pid)}"
