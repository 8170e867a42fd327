"""Shared by tests/system/test_multi_*.py: running ``multiq multi`` as a subprocess and
looking at the nodes it manages (pid files, process trees, logs, heartbeats in Redis).

Every command runs with the app directory (this one) as its working directory and with
``--pidfile=<tmp>/run/%n.pid --logfile=<tmp>/log/%n%I.log``. After each command every pid
named in a pid file is registered, with its children, with the ``process_tracker`` fixture,
so whatever a test leaves running is killed (by pid) at teardown.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import psutil

APPS = Path(__file__).resolve().parent
APP = "sysq_multi"
HOST = socket.gethostname()
TASK = "sysq_multi.{}".format
PIDFILE_CONTENT = re.compile(r"[0-9]+\n")


def multiq_bin() -> str:
    """The ``multiq`` console script of the running interpreter's environment."""
    beside = Path(sys.executable).with_name("multiq")
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("multiq")
    if found is None:
        raise FileNotFoundError("the multiq console script is not installed")
    return found


def full(name: str) -> str:
    """``w1`` → ``w1@<this host>``."""
    return name if "@" in name else f"{name}@{HOST}"


@dataclass(repr=False)
class Run:
    """One finished ``multiq multi`` command."""

    argv: List[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __repr__(self) -> str:  # what pytest shows in a failed assert
        return (f"\n$ {' '.join(self.argv)}\nexit {self.returncode} after {self.seconds:.2f}s\n"
                f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}")


class Multi:
    """Runs ``multiq multi VERB ...`` for one test, with its own run/ and log/ directories."""

    def __init__(self, base: Path, env: Dict[str, str], tracker: Any) -> None:
        self.run_dir = Path(base) / "run"
        self.log_dir = Path(base) / "log"
        self.env = dict(env)
        self.env.pop("MULTIQ_APP", None)
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.tracker = tracker
        self.files = [f"--pidfile={self.run_dir}/%n.pid", f"--logfile={self.log_dir}/%n%I.log"]

    def __call__(self, verb: str, *args: str, timeout: float = 90.0) -> Run:
        argv = [multiq_bin(), "multi", verb, *self.files, *args]
        began = time.monotonic()
        try:
            proc = subprocess.run(argv, cwd=str(APPS), env=self.env, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        finally:
            self.track()
        return Run(argv, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - began)

    # -- files -------------------------------------------------------------------------------

    def pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name.partition('@')[0]}.pid"

    def pid(self, name: str) -> Optional[int]:
        """The pid in ``name``'s pid file if the file holds exactly ``<pid>\\n``."""
        try:
            text = self.pidfile(name).read_text()
        except FileNotFoundError:
            return None
        return int(text) if PIDFILE_CONTENT.fullmatch(text) else None

    def logfile(self, name: str, index: int = 0) -> Path:
        short = name.partition("@")[0]
        return self.log_dir / (f"{short}-{index}.log" if index else f"{short}.log")

    def log(self, name: str, index: int = 0) -> str:
        try:
            return self.logfile(name, index).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def track(self) -> None:
        """Register every pid named in a pid file, and its children, for teardown."""
        if not self.run_dir.is_dir():
            return
        for path in self.run_dir.glob("*.pid"):
            pid = self.pid(path.stem)
            if pid is None or not alive(pid):
                continue
            for p in tree(pid):
                self.tracker.track(p)


# -- processes ---------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False


def children(pid: int) -> List[int]:
    """Live direct children of ``pid`` (the pool processes of a node)."""
    try:
        kids = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    return sorted(k.pid for k in kids if alive(k.pid))


def tree(pid: int) -> List[int]:
    """``pid`` and all its live descendants."""
    try:
        proc = psutil.Process(pid)
        kids = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [pid, *sorted(k.pid for k in kids if alive(k.pid))]


def procs_like(text: str) -> List[str]:
    """``pid: cmdline`` of every live process whose command line contains ``text``."""
    out = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or ())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if text in cmdline and proc.pid != os.getpid() and alive(proc.pid):
            out.append(f"{proc.pid}: {cmdline}")
    return out


# -- Redis -------------------------------------------------------------------------------------


def heartbeats(broker: Any) -> Dict[str, Dict[str, Any]]:
    """Full node name → the heartbeat info of every live node (``multiq:node:<consumer>``)."""
    out = {}
    for key in broker.scan_iter(match="multiq:node:*"):
        raw = broker.get(key)
        if raw is None:
            continue
        info = json.loads(raw)
        out[info["hostname"]] = info
    return out
