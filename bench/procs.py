"""Processes the bench starts, and stopping exactly those (by pid and creation time)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, TypeVar

import psutil

T = TypeVar("T")


class ProcessError(RuntimeError):
    """A process the bench started failed or timed out."""


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file (empty when missing)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


class Procs:
    """Starts subprocesses in their own session and stops them, and only them, at the end.

    A process is remembered as a ``psutil.Process`` (pid plus creation time), so a pid
    reused by another program is never signalled.
    """

    def __init__(self) -> None:
        self._popens: List[subprocess.Popen] = []
        self._adopted: List[psutil.Process] = []

    def start(self, argv: Sequence[str], env: Dict[str, str], log: Path,
              cwd: Optional[Path] = None, stdout_pipe: bool = False) -> subprocess.Popen:
        """Start ``argv`` with stderr (and stdout unless piped) to ``log``."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                list(argv), env=env, cwd=str(cwd) if cwd else None, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else out, stderr=out,
                start_new_session=True, text=stdout_pipe,
            )
        self._popens.append(proc)
        return proc

    def run(self, argv: Sequence[str], env: Dict[str, str], log: Path,
            timeout: float = 120.0, cwd: Optional[Path] = None) -> str:
        """Run to completion; return stdout; raise ``ProcessError`` on failure or timeout."""
        proc = self.start(argv, env, log, cwd=cwd, stdout_pipe=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProcessError(f"{' '.join(argv[:6])}... timed out; log:\n{tail(log)}") from None
        finally:
            self.stop(proc)  # only does something if it still runs (timeout, Ctrl-C)
        if proc.returncode != 0:
            raise ProcessError(f"{' '.join(argv[:6])}... exited {proc.returncode}; "
                               f"log:\n{tail(log)}")
        return out

    def adopt(self, pid: int) -> None:
        """Remember a process started on our behalf (e.g. a detached node from its pidfile)."""
        try:
            self._adopted.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass

    def tree(self, proc: subprocess.Popen) -> List[psutil.Process]:
        """``proc`` and its descendants, alive now."""
        try:
            root = psutil.Process(proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, proc: subprocess.Popen, grace: float = 1.0) -> None:
        """TERM ``proc``, give it ``grace`` seconds, then KILL what is left of its tree.

        The bench is done with the worker (and flushes Redis next): it need not wait for
        a complete warm shutdown.
        """
        tree = self.tree(proc)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        _kill(tree)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5.0)
        self._forget(proc)

    def _forget(self, proc: subprocess.Popen) -> None:
        if proc in self._popens:
            self._popens.remove(proc)

    def cleanup(self) -> None:
        """Stop every process still alive that we started or adopted."""
        for proc in list(self._popens):
            self.stop(proc, grace=5.0)
        self.cleanup_adopted()

    def cleanup_adopted(self) -> None:
        """TERM the adopted processes still alive, then KILL them and their descendants."""
        roots = [p for p in self._adopted if _alive(p)]
        tree = {c for p in roots for c in _children(p)} | set(roots)
        for p in roots:
            _send(p, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while any(_alive(p) for p in roots) and time.monotonic() < deadline:
            time.sleep(0.02)
        _kill(list(tree))
        self._adopted.clear()


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _children(p: psutil.Process) -> List[psutil.Process]:
    try:
        return p.children(recursive=True)
    except psutil.Error:
        return []


def _send(p: psutil.Process, sig: int) -> None:
    try:
        if p.is_running():
            p.send_signal(sig)
    except (psutil.Error, ProcessLookupError):
        pass


def _kill(procs: List[psutil.Process], timeout: float = 5.0) -> None:
    """KILL and wait until gone (a zombie left for init to reap counts as gone)."""
    alive = [p for p in procs if _alive(p)]
    for p in alive:
        _send(p, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
        alive = [p for p in alive if _alive(p)]


def tree_memory(pid: int) -> Dict[str, float]:
    """Sum of RSS and PSS (MB) of ``pid`` and its descendants, and how many processes."""
    root = psutil.Process(pid)
    rss = pss = 0
    procs = [root, *root.children(recursive=True)]
    for p in procs:
        info = p.memory_full_info()
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return {"rss": rss / 2**20, "pss": pss / 2**20, "procs": float(len(procs))}


def poll(predicate: Callable[[], Optional[T]], timeout: float, interval: float,
         what: str, alive: Optional[subprocess.Popen] = None, log: Optional[Path] = None) -> T:
    """Call ``predicate`` every ``interval`` s until it returns non-None; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value is not None:
            return value
        if alive is not None and alive.poll() is not None:
            raise ProcessError(f"{what}: process {alive.pid} exited {alive.returncode}; "
                               f"log:\n{tail(log) if log else ''}")
        if time.monotonic() >= deadline:
            raise ProcessError(f"{what}: not within {timeout:.0f}s; "
                               f"log:\n{tail(log) if log else ''}")
        time.sleep(interval)


def read_pid(path: Path) -> Optional[int]:
    """The pid in a pidfile, or None."""
    try:
        return int(path.read_text().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (not a zombie)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
