"""Pid files: created atomically, locked while the node lives, never trusted blindly.

The file holds ``<pid>\\n`` (mode 0644). The node keeps an exclusive ``flock`` on it for its
whole life, so "is the file held?" has a sure answer: a file nobody locks is stale, whatever
pid it names. Where locks are unavailable, the pid is checked with psutil: gone, a zombie,
or another program all count as stale.
"""
from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from typing import IO, TYPE_CHECKING, Optional

from multiq.exceptions import MultiQError

if TYPE_CHECKING:  # imported when used: a node writing its pid file does not need it
    import psutil


#: Beside a node's pid file: the command line ``multi`` started it with (secrets masked),
#: and those secrets (supervisor/launch.py). They go when the pid file goes.
ARGV_SUFFIX = ".argv"
SECRET_SUFFIX = ".secret"


class PidfileHeld(MultiQError):
    """A live node holds the pid file."""

    def __init__(self, path: str, pid: Optional[int]) -> None:
        self.path, self.pid = path, pid
        super().__init__(f"ERROR: Pidfile ({path}) already exists.\n"
                         f"Seems we're already running? (pid: {pid})")


class Pidfile:
    """One node's pid file."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self._handle: Optional[IO[str]] = None

    def read_pid(self) -> Optional[int]:
        """The pid in the file; None when missing, empty or broken."""
        try:
            with open(self.path) as fh:
                text = fh.read()
        except FileNotFoundError:
            return None
        except OSError:
            return None
        line = text.split("\n", 1)[0].strip()
        if not text.endswith("\n") or not line.isdigit():
            return None
        return int(line)

    def is_locked(self) -> bool:
        """Whether a live process holds the file's lock."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def owner(self) -> Optional[psutil.Process]:
        """The live node that owns this file, or None if the file is missing or stale."""
        pid = self.read_pid()
        if pid is None or not self.is_locked():
            return None
        return node_process(pid)

    def is_stale(self) -> bool:
        return os.path.exists(self.path) and self.owner() is None

    def remove_if_stale(self) -> bool:
        """Remove a stale file; returns True if one was removed."""
        if self.is_stale():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            return True
        return False

    def acquire(self) -> None:
        """Create the file for this process, replacing a stale one; PidfileHeld if live."""
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        for _ in range(5):
            owner = self.owner()
            if owner is not None and owner.pid != os.getpid():
                raise PidfileHeld(self.path, owner.pid)
            self.remove_if_stale()
            if os.path.exists(self.path) and self.read_pid() == os.getpid():
                os.unlink(self.path)  # our own pid (re-exec, or a reused pid in a container)
            if self._create(directory):
                return
        raise PidfileHeld(self.path, self.read_pid())

    def _create(self, directory: str) -> bool:
        fd, tmp = tempfile.mkstemp(prefix=".pid-", dir=directory)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
            os.fchmod(fd, 0o644)
            os.fsync(fd)
            try:
                os.link(tmp, self.path)  # atomic, and fails if the name exists
            except FileExistsError:
                return False
        finally:
            os.close(fd)
            os.unlink(tmp)
        handle = open(self.path)  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        if self.read_pid() != os.getpid():
            handle.close()
            return False
        os.set_inheritable(handle.fileno(), False)
        self._handle = handle
        return True

    def release(self, keep_argv: bool = False) -> None:
        """Remove the file if it is still ours, and drop the lock.

        The command line ``multi`` saved beside it, and its secrets, go first (so whoever
        sees the pid file gone sees them gone too), unless the node is about to start again
        in place."""
        try:
            if self.read_pid() == os.getpid():
                if not keep_argv:
                    _unlink(self.path + ARGV_SUFFIX)
                    _unlink(self.path + SECRET_SUFFIX)
                os.unlink(self.path)
        except OSError:
            pass
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:  # gone already, or not ours to remove: the pid file still goes
        pass


def node_process(pid: int) -> Optional[psutil.Process]:
    """The process ``pid`` if it is alive, not a zombie, and a multiq program."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return proc if "multiq" in cmdline else None
