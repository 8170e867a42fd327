"""Detaching a node (python-daemon) while its launcher waits to hear that it is ready.

The launcher forks; the fork opens a ``DaemonContext`` (double fork, ``setsid``, std streams
to ``/dev/null``, working directory, umask, uid/gid) and runs the node, which reports over
a pipe: ``PID <pid>`` once it is a daemon, ``WAITING <reason>`` while it cannot reach
Redis yet, then ``READY`` once it consumes, or ``ERROR <reason>`` if it cannot start. The
launcher exits 0 on READY and non-zero, with the reason, on anything else — so a supervisor
knows a node really started rather than merely forked. A node still not ready when the
launcher stops waiting is stopped (TERM, then KILL), so a failed start leaves nothing running.
"""
from __future__ import annotations

import grp
import os
import pwd
import select
import signal
import time
from typing import Callable, List, Optional, Tuple, Union

DAEMON_ENV = "MULTIQ_DETACHED"  # set in a detached node, so a HUP re-exec stays detached
EX_TEMPFAIL = 75


class Reporter:
    """The daemon's side of the readiness pipe (a no-op without a pipe)."""

    def __init__(self, fd: Optional[int]) -> None:
        self.fd = fd

    def _line(self, text: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, text.replace("\n", " | ").encode("utf-8", "replace") + b"\n")
        except OSError:
            pass

    def _send(self, text: str) -> None:
        """The last word: the launcher stops reading after it."""
        if self.fd is None:
            return
        try:
            self._line(text)
        finally:
            os.close(self.fd)
            self.fd = None

    def started(self) -> None:
        self._line(f"PID {os.getpid()}")

    def waiting(self, reason: str) -> None:
        self._line("WAITING " + reason)

    def ready(self) -> None:
        self._send("READY")

    def error(self, reason: str) -> None:
        self._send("ERROR " + reason)


def parse_umask(value: Union[str, int, None]) -> Optional[int]:
    """Umask from the command line, always octal (``022``, ``0o22`` and ``22`` are 0o22)."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    return int(value.lower().removeprefix("0o"), 8)


def resolve_uid(user: Union[str, int, None]) -> Optional[int]:
    if user is None or user == "":
        return None
    if isinstance(user, int) or str(user).isdigit():
        return int(user)
    return pwd.getpwnam(str(user)).pw_uid


def resolve_gid(group: Union[str, int, None], uid: Optional[int]) -> Optional[int]:
    if group is None or group == "":
        return pwd.getpwuid(uid).pw_gid if uid is not None else None
    if isinstance(group, int) or str(group).isdigit():
        return int(group)
    return grp.getgrnam(str(group)).gr_gid


def detach(
    run: Callable[[Reporter], int], *, workdir: Optional[str] = None,
    umask: Optional[int] = None, uid: Optional[int] = None, gid: Optional[int] = None,
    timeout: float = 60.0, on_failure: Optional[Callable[[str], None]] = None,
    on_waiting: Optional[Callable[[str], None]] = None,
) -> int:
    """In the launcher: start ``run`` as a daemon and wait for its report; returns the exit
    code the launcher should use. ``on_waiting`` hears why the node is not ready yet."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the daemon, checked by the system tests
        os.close(read_fd)
        _become_daemon(run, write_fd, workdir, umask, uid, gid)
    os.close(write_fd)
    os.waitpid(pid, 0)  # the first fork exits as soon as the daemon exists
    waited: List[str] = []

    def heard(reason: str) -> None:
        waited.append(reason)
        if on_waiting is not None:
            on_waiting(reason)

    reply, daemon_pid = _read_reply(read_fd, timeout, heard)
    os.close(read_fd)
    if reply == "READY":
        return 0
    if reply == "TIMEOUT":
        stopped = daemon_pid is not None and _stop(daemon_pid)
        reason = f"the node is not ready after {timeout:g}s" + (
            f" ({waited[-1]})" if waited else "") + (
            "; it was stopped" if stopped else "; it may still be running")
    else:
        reason = reply[6:] if reply.startswith("ERROR ") else \
            "the node exited before it was ready"
    if on_failure is not None:
        on_failure(reason)
    if reply.startswith("ERROR 73") or "already exists" in reply:
        return 73
    return EX_TEMPFAIL if reply == "TIMEOUT" else 1


def _become_daemon(run: Callable[[Reporter], int], write_fd: int, workdir: Optional[str],
                   umask: Optional[int], uid: Optional[int], gid: Optional[int]) -> None:
    import daemon

    reporter = Reporter(write_fd)
    code = 1
    try:
        context = daemon.DaemonContext(
            working_directory=workdir or os.getcwd(), umask=0o22 if umask is None else umask,
            uid=uid if uid is not None else os.getuid(),
            gid=gid if gid is not None else os.getgid(),
            files_preserve=[write_fd], detach_process=True, signal_map={},
            prevent_core=False,
        )
        context.open()
        os.environ[DAEMON_ENV] = "1"
        reporter.started()
        code = run(reporter)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:
        reporter.error(f"{type(exc).__name__}: {exc}")
        code = 1
    finally:
        if reporter.fd is not None:
            reporter.error(f"the node exited with code {code} before it was ready")
        os._exit(code)


def _read_reply(fd: int, timeout: float,
                on_waiting: Callable[[str], None]) -> Tuple[str, Optional[int]]:
    """The daemon's last word (``READY``, ``ERROR ...``, or ``EOF`` / ``TIMEOUT``) and its
    pid; each ``WAITING`` line on the way goes to ``on_waiting``."""
    deadline = time.monotonic() + timeout
    data, pid = b"", None
    while True:
        while b"\n" in data:
            raw, data = data.split(b"\n", 1)
            line = raw.decode("utf-8", "replace")
            if line.startswith("PID ") and line[4:].isdigit():
                pid = int(line[4:])
            elif line.startswith("WAITING "):
                on_waiting(line[8:])
            else:
                return line, pid
        left = deadline - time.monotonic()
        if left <= 0:
            return "TIMEOUT", pid
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return ("EOF" if not data.strip() else data.decode("utf-8", "replace").strip()), pid
        data += chunk


def _stop(pid: int, grace: float = 10.0) -> bool:
    """TERM the daemon (a warm stop, also while it waits for Redis), KILL it after ``grace``
    seconds; True once it is gone."""
    import psutil

    try:
        proc = psutil.Process(pid)
        for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            proc.send_signal(signum)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if proc.status() == psutil.STATUS_ZOMBIE:  # gone, not reaped yet
                    return True
                time.sleep(0.05)
    except psutil.NoSuchProcess:
        return True
    return False
